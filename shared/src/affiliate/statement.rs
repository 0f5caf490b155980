//! A partner's monthly statement: what the month's attributed orders earned, what refunds
//! took back, what is still pending in a return window, what is payable and what was paid.

use crate::money::Fen;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One attributed order of the month, as its commission item holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub paid: Fen,
    pub refunded: Fen,
    pub commission: Fen,
    pub reversed: Fen,
    /// The order's return-window end: from then on its commission is payable.
    pub release_on: NaiveDate,
}

/// The figures of a statement, in fen. `accrued − reversed − adjustments = pending + payable
/// + paid` always holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Attributed orders booked in the month.
    pub orders: u64,
    /// What those orders paid, and how much of it was refunded since.
    pub paid_amount: Fen,
    pub refunded: Fen,
    pub commission_accrued: Fen,
    /// Taken back from the month's own orders by their refunds.
    pub commission_reversed: Fen,
    /// Taken back from orders of months already paid, charged to this month.
    pub adjustments: Fen,
    /// Of the orders still inside their return window.
    pub pending: Fen,
    /// Released, net of reversals and adjustments, not yet paid (negative: the partner owes).
    pub payable: Fen,
    pub paid: Fen,
}

/// The month's figures on `today`, from its order lines and the amounts of its adjustments.
pub fn figures(lines: &[OrderLine], adjustments: &[Fen], today: NaiveDate) -> Figures {
    let mut f = Figures { orders: lines.len() as u64, ..Figures::default() };
    for l in lines {
        f.paid_amount += l.paid;
        f.refunded += l.refunded;
        f.commission_accrued += l.commission;
        f.commission_reversed += l.reversed;
        let net = l.commission - l.reversed;
        if l.release_on > today {
            f.pending += net;
        } else {
            f.payable += net;
        }
    }
    for a in adjustments {
        f.adjustments += *a;
        f.payable -= *a;
    }
    f
}

impl Figures {
    /// The figures as paid: what was payable is now paid.
    pub fn paid_out(mut self) -> Figures {
        self.paid = self.payable;
        self.payable = Fen::ZERO;
        self
    }
}

/// Why a month's statement cannot be marked paid yet (409, each with a stable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    #[error("the month {0} is not over yet")]
    MonthNotOver(String),
    #[error("{0} orders of the month are still inside their return window (the last until {1})")]
    Pending(usize, NaiveDate),
}

impl CloseError {
    pub fn code(&self) -> &'static str {
        match self {
            CloseError::MonthNotOver(_) => "month_not_over",
            CloseError::Pending(..) => "commission_pending",
        }
    }
}

/// Whether the month ending on `last_day` may be paid on `today`: it is over and no order of
/// it is still inside its return window (a refund then could still take commission back).
pub fn can_close(
    month: &str,
    last_day: NaiveDate,
    lines: &[OrderLine],
    today: NaiveDate,
) -> Result<(), CloseError> {
    if today <= last_day {
        return Err(CloseError::MonthNotOver(month.to_string()));
    }
    let pending: Vec<NaiveDate> =
        lines.iter().map(|l| l.release_on).filter(|r| *r > today).collect();
    match pending.iter().max() {
        Some(last) => Err(CloseError::Pending(pending.len(), *last)),
        None => Ok(()),
    }
}
