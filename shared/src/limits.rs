//! Per-member write limits: how many writes one member's record takes per minute
//! (`limits.memberWritesPerMinute`), so that a script hammering activities or checkout quotes
//! for one member is refused early and cheaply.
//!
//! The counter lives on the member record (`Member::write_window`): the read every write does
//! anyway brings it, and the versioned write that follows carries it forward, so the limit
//! costs no extra request and concurrent writers cannot both take the last slot (the version
//! check makes one of them re-read). A refused attempt writes nothing, so a member over the
//! limit costs one read per attempt. Only writes that land are counted: an attempt refused
//! for another reason (already checked in, a 422) writes nothing and is not counted.
//!
//! The window is the calendar minute (UTC): simple to read on the item and to explain; a
//! member may get up to twice the limit across a minute boundary, which is fine for a limit
//! meant to stop floods rather than to meter. API Gateway's route throttling (template.yaml)
//! covers the whole API; this covers one member.

use crate::rules::Rules;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Writes counted in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteWindow {
    /// The minute counted: Unix seconds / 60.
    #[serde(rename = "m")]
    pub minute: i64,
    #[serde(rename = "n")]
    pub count: u32,
}

/// Over the limit: nothing may be written before `retry_after_secs` have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} writes a minute; retry in {retry_after_secs} s")]
pub struct RateLimited {
    pub limit: u32,
    pub retry_after_secs: u64,
}

/// The window after one more write at `now`, or how long to wait: the count restarts with
/// each minute, so the wait is what is left of this one (1..=60 s).
pub fn admit(
    window: Option<WriteWindow>,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<WriteWindow, RateLimited> {
    let minute = now.timestamp().div_euclid(60);
    let count = window.filter(|w| w.minute == minute).map_or(0, |w| w.count);
    if count >= limit {
        return Err(RateLimited {
            limit,
            retry_after_secs: (60 - now.timestamp().rem_euclid(60)) as u64,
        });
    }
    Ok(WriteWindow { minute, count: count + 1 })
}

/// Counts one write of a member (an activity, a checkout quote) against the rules' limit:
/// call it on the member's `write_window` as read, before deciding anything; the count is
/// saved with the write.
pub fn count_member_write(
    window: &mut Option<WriteWindow>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(), RateLimited> {
    *window = Some(admit(*window, rules.limits.member_writes_per_minute, now)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn counts_up_to_the_limit_within_a_minute_then_refuses_until_the_next() {
        let mut w = None;
        for n in 1..=3 {
            let next = admit(w, 3, t("2026-11-27T10:15:05Z")).unwrap();
            assert_eq!(next.count, n);
            w = Some(next);
        }
        assert_eq!(
            admit(w, 3, t("2026-11-27T10:15:42Z")),
            Err(RateLimited { limit: 3, retry_after_secs: 18 })
        );
        assert_eq!(admit(w, 3, t("2026-11-27T10:15:59.900Z")).unwrap_err().retry_after_secs, 1);
        // A refusal changes nothing: the same window stays, and the next minute starts afresh.
        let next = admit(w, 3, t("2026-11-27T10:16:00Z")).unwrap();
        assert_eq!((next.count, next.minute - w.unwrap().minute), (1, 1));
    }

    #[test]
    fn an_old_window_or_none_starts_at_one() {
        let old = WriteWindow { minute: t("2026-11-27T09:00:00Z").timestamp() / 60, count: 99 };
        assert_eq!(admit(Some(old), 3, t("2026-11-27T10:00:30Z")).unwrap().count, 1);
        assert_eq!(admit(None, 1, t("2026-11-27T10:00:30Z")).unwrap().count, 1);
        assert!(admit(
            Some(WriteWindow { minute: t("2026-11-27T10:00:00Z").timestamp() / 60, count: 1 }),
            1,
            t("2026-11-27T10:00:30Z")
        )
        .is_err());
    }

    #[test]
    fn the_window_is_small_on_the_item() {
        let w = WriteWindow { minute: 29_400_000, count: 7 };
        assert_eq!(serde_json::to_string(&w).unwrap(), r#"{"m":29400000,"n":7}"#);
    }
}
