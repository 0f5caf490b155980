//! The points commands: purchases, refunds and activities (each one `Store::change_member`).

mod activity;
mod purchase;
mod refund;

pub use activity::activity;
pub use purchase::purchase;
pub(crate) use purchase::purchase_side_writes;
pub use refund::refund;
