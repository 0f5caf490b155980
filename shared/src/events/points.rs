//! Points events.

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PointsChange<'a> {
    kind: EntryKind,
    /// The change to the available balance.
    points: i64,
    /// The change to the pending points (the return window).
    pending: i64,
    balance_after: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The event a ledger entry is, by its kind and the sign of its two changes. An entry that
/// moves nothing (a purchase under 1 CNY) is no event.
pub fn points_detail_type(entry: &LedgerEntry) -> Option<DetailType> {
    let (points, pending) = (entry.points.0, entry.pending.0);
    if points == 0 && pending == 0 {
        return None;
    }
    Some(match entry.kind {
        EntryKind::Release => DetailType::PointsAvailable,
        EntryKind::Redemption => DetailType::PointsRedeemed,
        EntryKind::Expiry => DetailType::PointsExpired,
        EntryKind::Refund => DetailType::PointsClawedBack,
        EntryKind::Returned => DetailType::PointsReturned,
        // Points spent on a reward, or given back by a cancelled gift claim.
        EntryKind::Reward if points < 0 => DetailType::PointsRedeemed,
        // Moves only the rebate balance (`rebate_detail_type`).
        EntryKind::Rebate => return None,
        // A balance carried over from another program is not an earning here: publishing it
        // would count a whole migrated base as earned on the import day.
        EntryKind::Import => return None,
        EntryKind::Reward => DetailType::PointsReturned,
        // An operator's bulk award: points given at once.
        EntryKind::Award => DetailType::PointsEarned,
        // Support's manual correction: points given, or taken back.
        EntryKind::Adjustment if points > 0 => DetailType::PointsEarned,
        EntryKind::Adjustment => DetailType::PointsClawedBack,
        // Earnings: pending inside the return window, available at once otherwise; a
        // referral reward cancelled by its order's refund takes pending points back.
        EntryKind::Welcome | EntryKind::Purchase | EntryKind::Activity | EntryKind::Referral => {
            if pending > 0 {
                DetailType::PointsPending
            } else if points > 0 {
                DetailType::PointsEarned
            } else {
                DetailType::PointsClawedBack
            }
        }
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RebateChange<'a> {
    kind: EntryKind,
    /// The change to the available rebate balance (fen).
    rebate: i64,
    /// The change to the pending rebates (fen).
    rebate_pending: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The rebate event a ledger entry is, besides its points event: an entry carries the order
/// rebate its event moved (credited by the purchase, released, reversed, spent, given back).
pub fn rebate_detail_type(entry: &LedgerEntry) -> Option<DetailType> {
    if entry.rebate.is_zero() && entry.rebate_pending.is_zero() {
        return None;
    }
    match entry.kind {
        EntryKind::Purchase => Some(DetailType::RebateCredited),
        EntryKind::Release => Some(DetailType::RebateAvailable),
        EntryKind::Refund => Some(DetailType::RebateReversed),
        EntryKind::Rebate => Some(DetailType::RebateSpent),
        EntryKind::Returned => Some(DetailType::RebateReturned),
        _ => None,
    }
}

pub fn ledger_events(
    origin: Origin<'_>,
    member_id: &str,
    entry: &LedgerEntry,
) -> Result<Vec<Event>, serde_json::Error> {
    let mut out = Vec::new();
    if let Some(dt) = points_detail_type(entry) {
        let body = PointsChange {
            kind: entry.kind,
            points: entry.points.0,
            pending: entry.pending.0,
            balance_after: entry.balance_after.0,
            reference: entry.reference.as_deref(),
        };
        out.push(event(dt, origin, "", Some(member_id), entry.at, &body)?);
    }
    if let Some(dt) = rebate_detail_type(entry) {
        let body = RebateChange {
            kind: entry.kind,
            rebate: entry.rebate.0,
            rebate_pending: entry.rebate_pending.0,
            reference: entry.reference.as_deref(),
        };
        out.push(event(dt, origin, "", Some(member_id), entry.at, &body)?);
    }
    Ok(out)
}

pub fn expiry_notice_events(
    origin: Origin<'_>,
    member_id: &str,
    notice: &ExpiryNotice,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    Ok(vec![event(DetailType::PointsExpiringSoon, origin, "", Some(member_id), at, notice)?])
}
