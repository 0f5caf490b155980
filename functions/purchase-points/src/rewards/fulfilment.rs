//! A gift claim's fulfilment by the order system or an operator: shipped, or cancelled with
//! everything it took given back.

use super::claims::claim_view;
use super::*;

/// Moves a gift claim: `shipped`, or `cancelled` (the points, the stock unit and the
/// member's limit come back, in one transaction with the member). Asking again for where the
/// claim is already answers it as it is; shipped is final, and so is cancelled.
pub(super) async fn fulfil(
    app: &App,
    req: &Request,
    id: &str,
    claim_id: &str,
) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_order_system_or_operator()?;
    let id = member_param(id)?;
    let claim_id = http::id_param(claim_id, "the claim id", "invalid_claim_id")?;
    let body: FulfilmentRequest = json_body(req)?;
    if body
        .note
        .as_deref()
        .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(
            "invalid_note",
            "note must be at most 200 characters, without control characters",
        ));
    }
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let claim_sk = keys::reward_claim_sk(claim_id);
    let (claim, moved) = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            let read =
                store.reward_read(id.as_str(), std::slice::from_ref(&claim_sk), None).await?;
            let mut claim = read
                .claim
                .ok_or_else(|| {
                    ApiError::not_found("claim_not_found", "no such claim of the member")
                })?
                .claim;
            let writes = match reward::fulfil(&claim, body.status).map_err(refused_claim)? {
                Step::Already => return Ok::<_, ApiError>(Attempt::Answer((claim, false))),
                Step::Ship => {
                    reward::ship(&mut claim, body.note.clone(), now);
                    vec![store.fulfilled_claim_write(id.as_str(), claim.clone())?]
                }
                Step::Cancel => {
                    // An erased member keeps their points and ledger: their cancelled gift pays back too.
                    let mut member = read
                        .member
                        .ok_or_else(|| ApiError::not_found("member_not_found", "no such member"))?;
                    let read_version = member.version;
                    member.version += 1;
                    let mut entries = points::settle(&mut member, rules, today, now);
                    entries.extend(reward::cancel(
                        &mut member,
                        &mut claim,
                        body.note.clone(),
                        rules,
                        now,
                    ));
                    let mut writes =
                        store.member_change(&member, read_version, entries, rules, now)?;
                    writes.push(store.fulfilled_claim_write(id.as_str(), claim.clone())?);
                    writes.push(store.reward_give_back_write(&claim.reward_id)?);
                    if let Some(p) = &claim.period {
                        writes.push(store.limit_give_back_write(
                            id.as_str(),
                            &claim.reward_id,
                            p,
                        )?);
                    }
                    writes
                }
            };
            Ok(Attempt::Commit(writes, (claim, true)))
        })
        .await?;
    if moved {
        tracing::info!(member_id = %id, claim_id, status = ?claim.status, "reward claim fulfilment moved");
    }
    Ok(http::json(200, &claim_view(&claim)))
}
