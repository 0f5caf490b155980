//! Affiliate events: a commission accrued (a commission item, new), reversed (a
//! refund's change of it, or an adjustment item charged to a later month) and a month's
//! statement closed (its statement item, the write that paid it). Their member is the buyer;
//! a statement is the partner's, with no member.

use super::{event, DetailType, Event, Origin};
use crate::affiliate::Figures;
use crate::money::Fen;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// What the events tell of a commission item (`store::partner::CommissionItem`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommissionFacts {
    pub partner_id: String,
    pub member_id: String,
    pub order_id: String,
    pub month: String,
    pub tracking_code: String,
    pub channel: String,
    pub paid: Fen,
    pub rate_basis_points: u32,
    pub commission: Fen,
    #[serde(default)]
    pub reversed: Fen,
    pub release_on: NaiveDate,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub last_refund_id: Option<String>,
    #[serde(default)]
    pub last_reversed_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accrued<'a> {
    partner_id: &'a str,
    order_id: &'a str,
    month: &'a str,
    tracking_code: &'a str,
    channel: &'a str,
    paid: Fen,
    rate_basis_points: u32,
    commission: Fen,
    release_on: NaiveDate,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reversed<'a> {
    partner_id: &'a str,
    order_id: &'a str,
    /// The month the reversal is booked in.
    month: &'a str,
    /// The month of the order's commission.
    order_month: &'a str,
    refund_id: &'a str,
    amount: Fen,
    /// Charged to a later month because the order's month was already paid.
    adjustment: bool,
}

/// A commission item written: accrued when new, reversed when this write took more back.
pub fn commission_events(
    origin: Origin<'_>,
    old: Option<&CommissionFacts>,
    new: &CommissionFacts,
    approximate: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    let member = Some(new.member_id.as_str());
    let Some(old) = old else {
        let body = Accrued {
            partner_id: &new.partner_id,
            order_id: &new.order_id,
            month: &new.month,
            tracking_code: &new.tracking_code,
            channel: &new.channel,
            paid: new.paid,
            rate_basis_points: new.rate_basis_points,
            commission: new.commission,
            release_on: new.release_on,
        };
        return Ok(vec![event(DetailType::CommissionAccrued, origin, "", member, new.at, &body)?]);
    };
    if new.reversed <= old.reversed {
        return Ok(Vec::new());
    }
    let refund = new.last_refund_id.as_deref().unwrap_or_default();
    let body = Reversed {
        partner_id: &new.partner_id,
        order_id: &new.order_id,
        month: &new.month,
        order_month: &new.month,
        refund_id: refund,
        amount: new.reversed - old.reversed,
        adjustment: false,
    };
    let at = new.last_reversed_at.unwrap_or(approximate);
    // One reversal per refund of the order: the refund tells this change from the others.
    Ok(vec![event(DetailType::CommissionReversed, origin, refund, member, at, &body)?])
}

/// What the events tell of an adjustment item (`store::partner::AdjustmentItem`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentFacts {
    pub partner_id: String,
    pub member_id: String,
    pub order_id: String,
    pub order_month: String,
    pub month: String,
    pub refund_id: String,
    pub amount: Fen,
    pub at: DateTime<Utc>,
}

pub fn adjustment_events(
    origin: Origin<'_>,
    a: &AdjustmentFacts,
) -> Result<Vec<Event>, serde_json::Error> {
    let body = Reversed {
        partner_id: &a.partner_id,
        order_id: &a.order_id,
        month: &a.month,
        order_month: &a.order_month,
        refund_id: &a.refund_id,
        amount: a.amount,
        adjustment: true,
    };
    Ok(vec![event(DetailType::CommissionReversed, origin, "", Some(&a.member_id), a.at, &body)?])
}

/// What the event tells of a month's statement item (`store::partner::StatementItem`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementFacts {
    pub partner_id: String,
    pub month: String,
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub statement: Option<Figures>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Closed<'a> {
    partner_id: &'a str,
    month: &'a str,
    #[serde(flatten)]
    figures: &'a Figures,
}

/// The statement item written: closed when this write paid it (its reversal counter's
/// writes before that tell nothing).
pub fn statement_events(
    origin: Origin<'_>,
    old: Option<&StatementFacts>,
    new: &StatementFacts,
) -> Result<Vec<Event>, serde_json::Error> {
    let (Some(at), Some(figures)) = (new.paid_at, new.statement.as_ref()) else {
        return Ok(Vec::new());
    };
    if old.is_some_and(|o| o.paid_at.is_some()) {
        return Ok(Vec::new());
    }
    let body = Closed { partner_id: &new.partner_id, month: &new.month, figures };
    Ok(vec![event(DetailType::StatementClosed, origin, "", None, at, &body)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin { pk: "PARTNER#p-1", sk: "M#2026-11#O#m1#o-1", sequence: "7" }
    }

    fn commission(reversed: i64, refund: Option<&str>) -> CommissionFacts {
        CommissionFacts {
            partner_id: "p-1".into(),
            member_id: "m1".into(),
            order_id: "o-1".into(),
            month: "2026-11".into(),
            tracking_code: "K7P2XQ9M".into(),
            channel: "online".into(),
            paid: Fen(25_000),
            rate_basis_points: 1000,
            commission: Fen(2_500),
            reversed: Fen(reversed),
            release_on: "2026-11-27".parse().unwrap(),
            at: "2026-11-20T04:00:00Z".parse().unwrap(),
            last_refund_id: refund.map(str::to_string),
            last_reversed_at: refund.map(|_| "2026-11-21T04:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn a_commission_accrues_once_and_each_refund_that_takes_more_back_is_one_reversal() {
        let t = "2026-11-30T00:00:00Z".parse().unwrap();
        let new = commission(0, None);
        let accrued = commission_events(origin(), None, &new, t).unwrap();
        assert_eq!(accrued[0].detail_type, DetailType::CommissionAccrued);
        assert_eq!(accrued[0].detail["memberId"], "m1");
        let r1 = commission(1_000, Some("r-1"));
        let rev = commission_events(origin(), Some(&new), &r1, t).unwrap();
        assert_eq!(rev[0].detail_type, DetailType::CommissionReversed);
        assert_eq!(
            (rev[0].detail["amount"].as_i64(), rev[0].time),
            (Some(1_000), "2026-11-21T04:00:00Z".parse().unwrap())
        );
        let r2 = commission(1_500, Some("r-2"));
        let rev2 = commission_events(origin(), Some(&r1), &r2, t).unwrap();
        assert_ne!(rev[0].event_id(), rev2[0].event_id(), "each refund's reversal is its own fact");
        // A refund whose share rounds to nothing more tells nothing.
        assert!(commission_events(origin(), Some(&r2), &commission(1_500, Some("r-3")), t)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_statement_is_closed_by_the_write_that_paid_it_only() {
        let open = StatementFacts {
            partner_id: "p-1".into(),
            month: "2026-11".into(),
            paid_at: None,
            statement: None,
        };
        assert!(
            statement_events(origin(), None, &open).unwrap().is_empty(),
            "the reversal counter"
        );
        let paid = StatementFacts {
            paid_at: Some("2026-12-08T00:00:00Z".parse().unwrap()),
            statement: Some(Figures { orders: 2, paid: Fen(900), ..Figures::default() }),
            ..open.clone()
        };
        let closed = statement_events(origin(), Some(&open), &paid).unwrap();
        assert_eq!(closed[0].detail_type, DetailType::StatementClosed);
        assert_eq!(
            (closed[0].detail["paid"].as_i64(), closed[0].detail.get("memberId")),
            (Some(900), None)
        );
        assert!(statement_events(origin(), Some(&paid), &paid).unwrap().is_empty());
    }
}
