//! `POST /support/members/{id}/adjustments` (operators, IAM): support corrects a member's
//! points by hand, with a mandatory reason and its own `Idempotency-Key`.
//!
//! One `change_member` like every points command: the member and the adjustment's receipt in
//! one read, then the member (version-checked), an `adjustment` ledger entry and the receipt
//! (which must not exist yet) in one transaction, so `points == Σ ledger` holds and a replay
//! of the key credits nothing twice. The receipt keeps the operator's IAM identity next to
//! the answer: the audit trail of who moved points by hand.
//!
//! A negative adjustment takes at most the points available now (the balance less what open
//! checkouts hold): support corrects mistakes, it does not create debts.

use crate::{live_member, member_param, points_refusal, replay, Answer, App};
use chrono::{DateTime, Utc};
use lambda_http::Request;
use loyalty::calendar::program_date;
use loyalty::http::{self, json_body};
use loyalty::ledger::{EntryKind, LedgerEntry};
use loyalty::points::PointsError;
use loyalty::store::change::Attempt;
use loyalty::store::keys;
use loyalty::store::receipt::Receipt;
use loyalty::store::Cond;
use loyalty::{ApiError, Fen, Points};
use serde::{Deserialize, Serialize};

/// The receipts' scope: one per Idempotency-Key per member.
const SCOPE: &str = "adjustment";
/// The largest correction in either direction: a typo of a few zeros must not mint millions.
pub const MAX_ADJUSTMENT: i64 = 1_000_000;
const MAX_REASON: usize = 200;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Added to the available points (negative: taken away).
    pub points: i64,
    pub reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Adjusted<'a> {
    member_id: &'a str,
    points_adjusted: i64,
    /// The balance after the adjustment.
    points: i64,
    points_available: i64,
    reason: &'a str,
    /// The ledger entry's reference.
    reference: &'a str,
    /// The operator (IAM principal) who made it.
    adjusted_by: &'a str,
    at: DateTime<Utc>,
}

fn invalid(field: &'static str, code: &'static str, detail: String) -> ApiError {
    ApiError::unprocessable(code, format!("{field}: {detail}"))
}

impl AdjustmentRequest {
    fn validate(&self) -> Result<&str, ApiError> {
        if self.points == 0 || self.points.abs() > MAX_ADJUSTMENT {
            return Err(invalid(
                "points",
                "invalid_points",
                format!("a whole number from -{MAX_ADJUSTMENT} to {MAX_ADJUSTMENT}, not 0"),
            ));
        }
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(invalid(
                "reason",
                "reason_required",
                format!("say why, in 1 to {MAX_REASON} characters"),
            ));
        }
        Ok(reason)
    }
}

pub async fn adjust(app: &App, req: &Request, id: &str) -> Result<Answer, ApiError> {
    let caller = app.deps.caller(req);
    caller.require_operator()?;
    let id = member_param(id)?;
    let body: AdjustmentRequest = json_body(req)?;
    let key = http::idempotency_key(req)?.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "a points adjustment needs its own Idempotency-Key header",
        )
    })?;
    let reason = body.validate()?.to_string();
    let by = caller.iam_principal().unwrap_or("operator").to_string();
    let fingerprint = http::fingerprint(&body);
    let reference = format!("adj-{}", http::fingerprint(&key));
    let receipt_sk = keys::receipt_sk(SCOPE, &key);
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let answer = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            let mut read =
                store.points_read(id.as_str(), std::slice::from_ref(&receipt_sk)).await?;
            if let Some(r) = read.take::<Receipt>(&receipt_sk)? {
                let first = Answer { status: r.status, body: r.body };
                return replay(
                    &r.fingerprint,
                    &fingerprint,
                    first,
                    "idempotency_key_reused",
                    "this Idempotency-Key",
                )
                .map(Attempt::Answer);
            }
            let mut member = live_member(read.member.take())?;
            let read_version = member.version;
            member.version += 1;
            let mut entries = loyalty::points::settle(&mut member, rules, today, now);
            if body.points > 0 {
                member.wallet.earn(body.points, today);
            } else {
                let available = member.available_points(now, None);
                if -body.points > available {
                    return Err(points_refusal(PointsError::InsufficientPoints {
                        balance: available,
                        asked: -body.points,
                    }));
                }
                member.wallet.spend(-body.points).map_err(|_| {
                    points_refusal(PointsError::InsufficientPoints {
                        balance: available,
                        asked: -body.points,
                    })
                })?;
            }
            entries.push(LedgerEntry {
                kind: EntryKind::Adjustment,
                points: Points(body.points),
                balance_after: member.wallet.balance,
                pending: Points::ZERO,
                rebate: Fen::ZERO,
                rebate_pending: Fen::ZERO,
                reason: reason.clone(),
                reference: Some(reference.clone()),
                at: now,
            });
            let answer = Answer::created(&Adjusted {
                member_id: id.as_str(),
                points_adjusted: body.points,
                points: member.wallet.balance.0,
                points_available: member.available_points(now, None),
                reason: &reason,
                reference: &reference,
                adjusted_by: &by,
                at: now,
            })?;
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            let receipt = Receipt::new(
                id.as_str(),
                SCOPE,
                &key,
                fingerprint.clone(),
                answer.status,
                answer.body.clone(),
                now,
            );
            writes.push(store.put(&receipt, Some(Cond::absent()))?);
            Ok(Attempt::Commit(writes, answer))
        })
        .await?;
    tracing::info!(member_id = %id, points = body.points, operator = %by, "points adjusted by support");
    Ok(answer)
}
