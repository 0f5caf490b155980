//! The member's side: the catalog they can claim from, and claims (their fulfilment is in
//! `fulfilment`).

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Catalog<'a> {
    points_available: i64,
    rewards: Vec<reward::Offered<'a>>,
}

/// The rewards the member can claim now: active, in their window, for their tier; each with
/// the stock left, the member's remaining limit, whether their available points suffice and
/// whether a claim would go through.
pub(super) async fn catalog(
    app: &App,
    req: &Request,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let now = app.deps.clock.now();
    let today = program_date(rules.time_zone, now);
    let items = store.rewards().await?;
    let shown: Vec<&RewardItem> =
        items.iter().filter(|i| i.reward.active && i.reward.in_window(now)).collect();
    let counters: Vec<String> = shown
        .iter()
        .filter_map(|i| {
            reward::period(&i.reward, today).map(|p| keys::reward_limit_sk(&i.reward.reward_id, &p))
        })
        .collect();
    let read = store.reward_read(id.as_str(), &counters, None).await?;
    let mut member = live_member(read.member.clone())?;
    // Lots due to expire today are not spendable, as the next write would expire them.
    points::settle(&mut member, rules, today, now);
    let mut rewards: Vec<reward::Offered> = shown
        .iter()
        .filter_map(|i| {
            reward::offer(
                &i.reward,
                i.claimed,
                &member,
                read.count(&i.reward.reward_id, reward::period(&i.reward, today).as_deref()),
                now,
            )
        })
        .collect();
    rewards.sort_by(|a, b| a.price.cmp(&b.price).then_with(|| a.name.cmp(b.name)));
    Ok(http::json(200, &Catalog { points_available: member.available_points(now, None), rewards }))
}

/// A claim as the member, the order system and operators see it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClaimView<'a> {
    claim_id: &'a str,
    reward_id: &'a str,
    name: &'a str,
    reward_version: u64,
    kind: RewardKind,
    price: i64,
    status: ClaimStatus,
    claimed_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipped_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    points_returned: i64,
}

pub(super) fn claim_view(c: &Claim) -> ClaimView<'_> {
    ClaimView {
        claim_id: &c.claim_id,
        reward_id: &c.reward_id,
        name: &c.name,
        reward_version: c.reward_version,
        kind: c.kind,
        price: c.price,
        status: c.status,
        claimed_at: c.claimed_at,
        coupon_code: c.coupon_code.as_deref(),
        shipped_at: c.shipped_at,
        cancelled_at: c.cancelled_at,
        note: c.note.as_deref(),
        points_returned: c.points_returned,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claimed<'a> {
    #[serde(flatten)]
    claim: ClaimView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon: Option<loyalty::views::CouponView<'a>>,
    /// The balance and what the member may spend, after the claim.
    points: i64,
    points_available: i64,
}

/// Claims a reward: one read, the rules, one transaction of the member (version-checked) with
/// its ledger entries, the receipt of the Idempotency-Key, the claim, the reward's stock
/// counter, the member's limit counter and, for a coupon reward, the coupon.
pub(super) async fn claim(app: &App, req: &Request, id: &str) -> Result<Answer, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    let body: ClaimRequest = json_body(req)?;
    let key = http::idempotency_key(req)?.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "a claim needs an Idempotency-Key header: a retry under the same key is the same claim",
        )
    })?;
    http::id_param(&body.reward_id, "rewardId", "invalid_reward_id")?;
    claim_as(app, &id, body, &key).await
}

pub(super) async fn claim_as(
    app: &App,
    id: &MemberId,
    body: ClaimRequest,
    key: &str,
) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let fingerprint = http::fingerprint(&body);
    let claim_id = reward::claim_id(id.as_str(), key);
    let receipt_sk = keys::receipt_sk(keys::REWARD_SCOPE, key);
    let (answer, claimed) = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            let mut sks = vec![receipt_sk.clone()];
            sks.extend(
                reward::periods(today).iter().map(|p| keys::reward_limit_sk(&body.reward_id, p)),
            );
            let read = store.reward_read(id.as_str(), &sks, Some(&body.reward_id)).await?;
            if let Some(r) = read.receipt {
                return replay(
                    &r.fingerprint,
                    &fingerprint,
                    Answer { status: r.status, body: r.body },
                    "idempotency_key_reused",
                    "this Idempotency-Key",
                )
                .map(|a| Attempt::Answer((a, None)));
            }
            let mut member = live_member(read.member.clone())?;
            // A member's own claims count against their per-minute write limit, as activities do.
            loyalty::limits::count_member_write(&mut member.write_window, rules, now)?;
            let item = read.reward.as_ref().ok_or_else(reward_not_found)?;
            let reward = &item.reward;
            let period = reward::period(reward, today);
            let claims_in_period = read.count(&reward.reward_id, period.as_deref());
            let read_version = member.version;
            member.version += 1;
            let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
            let done = reward::claim(
                &mut member,
                reward,
                item.claimed,
                claims_in_period,
                body.price,
                &claim_id,
                rules,
                now,
            )
            .map_err(refused_claim)?;
            entries.push(done.entry);
            let mut claim = done.claim;
            let issued =
                reward.coupon.as_ref().filter(|_| reward.kind == RewardKind::Coupon).map(|t| {
                    coupon::issue(&app.codes, t, id.as_str(), &reward::grant(&claim_id), 0, now)
                });
            claim.coupon_code = issued.as_ref().map(|c| c.code.clone());
            let answer = Answer::created(&Claimed {
                claim: claim_view(&claim),
                coupon: issued.as_ref().map(|c| loyalty::views::CouponView::of(c, now)),
                points: member.wallet.balance.0,
                points_available: member.available_points(now, None),
            })?;
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            writes.push(store.put(
                &Receipt::new(
                    id.as_str(),
                    keys::REWARD_SCOPE,
                    key,
                    fingerprint.clone(),
                    answer.status,
                    answer.body.clone(),
                    now,
                ),
                Some(Cond::absent()),
            )?);
            writes.push(store.new_claim_write(id.as_str(), claim)?);
            let take = writes.len();
            writes.push(store.reward_take_write(reward)?);
            if let (Some(p), Some(limit)) = (&period, reward.per_member_limit) {
                writes.push(store.limit_take_write(
                    id.as_str(),
                    &reward.reward_id,
                    p,
                    limit,
                    reward::counter_expires_at(reward, rules, today),
                )?);
            }
            if let Some(c) = &issued {
                // The coupon with its grant slot, as every coupon is written.
                writes.extend(store.coupon_writes(c, None)?);
            }
            // The stock ran out or an operator changed the reward since the read: read again at
            // once, which tells which (no backoff: nothing to wait for).
            let judge: Judge<ApiError> = Box::new(move |failed: &[usize]| {
                if failed.contains(&take) {
                    Failed::ReadAgainNow
                } else {
                    Failed::Contended
                }
            });
            Ok(Attempt::CommitOr(
                writes,
                (answer, Some((reward.reward_id.clone(), reward.price))),
                judge,
            ))
        })
        .await?;
    if let Some((reward_id, price)) = claimed {
        tracing::info!(member_id = %id, %reward_id, price, "reward claimed");
    }
    Ok(answer)
}

/// The member's claims, newest first: for the member, or for support (operators).
pub(super) async fn claims(
    app: &App,
    req: &Request,
    id: &str,
    support: bool,
) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    match support {
        true => app.deps.caller(req).require_operator()?,
        false => app.deps.caller(req).require_member(&id)?,
    }
    let mut claims = app.deps.store.claims(id.as_str()).await?;
    claims
        .sort_by(|a, b| b.claimed_at.cmp(&a.claimed_at).then_with(|| a.claim_id.cmp(&b.claim_id)));
    Ok(http::json(
        200,
        &serde_json::json!({ "claims": claims.iter().map(claim_view).collect::<Vec<_>>() }),
    ))
}
