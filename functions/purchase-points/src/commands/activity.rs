//! Activities a member's token may report (check-in, review, share): points within the
//! rules' daily cap, once per activity key.

use crate::{live_member, points_refusal, replay, Answer, App};
use loyalty::calendar::program_date;
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::MemberId;
use loyalty::points::{self, ActivityKind, ActivityRequest, PointsError};
use loyalty::store::change::Attempt;
use loyalty::store::keys;
use loyalty::store::receipt::Receipt;
use loyalty::store::Cond;
use loyalty::ApiError;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Earned {
    #[serde(rename = "type")]
    kind: ActivityKind,
    points_earned: i64,
    points: i64,
    activity_points_today: i64,
}

pub async fn activity(
    app: &App,
    id: &MemberId,
    req: ActivityRequest,
    idempotency_key: Option<String>,
) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    if let Some(r) = &req.ref_id {
        http::id_param(r, "refId", "invalid_ref_id")?;
    }
    let fingerprint = http::fingerprint(&req);
    store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            // The receipt that makes the activity once-only (check-in per day, review per order,
            // share per Idempotency-Key when one is sent), and for a review the order it reviews.
            let (receipt_key, order_sk) = match (req.kind, &req.ref_id) {
                (ActivityKind::Checkin, _) => (Some(format!("checkin#{today}")), None),
                (ActivityKind::Review, Some(r)) => {
                    (Some(format!("review#{r}")), Some(keys::order_sk(r)))
                }
                (ActivityKind::Review, None) => {
                    return Err(ApiError::bad_request(
                        "ref_id_required",
                        "a review names the order it reviews in refId",
                    ))
                }
                (ActivityKind::Share, _) => {
                    (idempotency_key.as_ref().map(|k| format!("share#{k}")), None)
                }
            };
            let receipt_sk =
                receipt_key.as_ref().map(|k| keys::receipt_sk(keys::ACTIVITY_SCOPE, k));
            let sks: Vec<String> = receipt_sk.iter().chain(order_sk.iter()).cloned().collect();
            let mut read = store.points_read(id.as_str(), &sks).await?;
            if let Some(sk) = &receipt_sk {
                if let Some(r) = read.take::<Receipt>(sk)? {
                    return match req.kind {
                        ActivityKind::Checkin => Err(points_refusal(PointsError::AlreadyCheckedIn)),
                        ActivityKind::Review => Err(points_refusal(PointsError::AlreadyReviewed)),
                        ActivityKind::Share => replay(
                            &r.fingerprint,
                            &fingerprint,
                            Answer { status: r.status, body: r.body },
                            "idempotency_key_reused",
                            "this Idempotency-Key",
                        )
                        .map(Attempt::Answer),
                    };
                }
            }
            let mut member = live_member(read.member.take())?;
            loyalty::limits::count_member_write(&mut member.write_window, rules, now)?;
            if let Some(sk) = &order_sk {
                if !read.items.contains_key(sk) {
                    return Err(ApiError::unprocessable(
                        "unknown_order",
                        "reviews earn points only for the member's own recorded orders",
                    ));
                }
            }
            let read_version = member.version;
            member.version += 1;
            let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
            let shares = points::activity_today(&member, today).shares;
            let reference = match req.kind {
                ActivityKind::Checkin => format!("checkin-{today}"),
                ActivityKind::Review => format!("review-{}", req.ref_id.as_deref().unwrap_or("-")),
                ActivityKind::Share => format!("share-{today}-{}", shares + 1),
            };
            let entry = points::apply_activity(&mut member, rules, req.kind, &reference, now)
                .map_err(points_refusal)?;
            let counters = points::activity_today(&member, today);
            let answer = Answer::created(&Earned {
                kind: req.kind,
                points_earned: entry.points.0,
                points: member.wallet.balance.0,
                activity_points_today: counters.points,
            })?;
            entries.push(entry);
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            if let Some(k) = &receipt_key {
                writes.push(store.put(
                    &Receipt::new(
                        id.as_str(),
                        keys::ACTIVITY_SCOPE,
                        k,
                        fingerprint.clone(),
                        answer.status,
                        answer.body.clone(),
                        now,
                    ),
                    Some(Cond::absent()),
                )?);
            }
            Ok(Attempt::Commit(writes, answer))
        })
        .await
}
