//! Key shapes of the single table. Every key is built here, nowhere else.
//!
//! Kept in one file although it is long: the keys only work together (which sort keys of a
//! partition may sort between which, which prefixes a Query or an index relies on), and the
//! table below and the builders beside it are the one place where that can be checked.
//!
//! A member's partition `MEMBER#<id>` sorts its items so that one Query from `#PROFILE` to
//! `COUPON$` returns the profile and all coupons (the profile page in one read): no sort
//! key in a member partition may sort between those two except coupons.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `MEMBER#<id>` | `#PROFILE` | the member (tier, wallet, spend) |
//! | `MEMBER#<id>` | `COUPON#<code>` | an issued coupon |
//! | `MEMBER#<id>` | `GRANT#<grant>#<slot>` | the grant slot a coupon fills, with its code (one coupon per member, grant and slot, whatever key made the code) |
//! | `MEMBER#<id>` | `GRANT#<grant>#0` | or, entity `holdout`, an experiment's holdout member: the slot taken, no coupon (`store::holdout`) |
//! | `MEMBER#<id>` | `GRANT#award:<awardId>#0` | or, entity `award_slot`, the member's share of a bulk award of points (`store::award`) |
//! | `MEMBER#<id>` | `LEDGER#<time>#<kind>#<ref>` | a change's ledger entries: keyed by its last, the others in `earlier` (store/ledger.rs) |
//! | `MEMBER#<id>` | `ORDER#<orderId>` | a purchase and its refunds |
//! | `MEMBER#<id>` | `CHECKOUT#<orderId>` | a checkout: its quote, state and answers |
//! | `MEMBER#<id>` | `RECEIPT#<scope>#<key>` | the first answer to an idempotent request |
//! | `MEMBER#<id>` | `TIER#<time>` | a tier change |
//! | `MEMBER#<id>` | `#EXPIRING#<lot day>` | a lot's expiry notice, told once (`PointsExpiringSoon`); TTL |
//! | `MEMBER#<id>` | `REWARD_CLAIM#<claimId>` | a claim of a reward (store/reward.rs) |
//! | `MEMBER#<id>` | `REWARD_LIMIT#<rewardId>#<period>` | the member's claims of a reward in a period |
//! | `REWARDS` | `REWARD#<id>` | a reward of the catalog: definition, version, `claimed` counter |
//! | `EMAIL#<hmac>` / `PHONE#<hmac>` | `#UNIQUE` | a live member's verified contact (uniqueness) |
//! | `GIFTED#<hmac>` | `#GIFTED` | tombstone of an erased member's verified contact: what it received |
//! | `REFCODE#<code>` | `#UNIQUE` | referral code → member |
//! | `CAMPAIGN#<id>` | `RUN~` / `RUN#<runId>` / `BATCH#<runId>#<batchId>` | campaign definition, runs, counted batches (store/campaign/) |
//! | `SCHEDULED` | `<campaignId>` | campaigns the schedules start |
//! | `PROGRAM` | `MULTIPLIERS` | campaign multiplier windows |
//! | `KPI#DAY` | `<YYYY-MM-DD>` / `~TOTAL` | a program day's KPI counters / the running totals (store/kpi/) |
//! | `KPI#GRANT` | `<grant>` | a campaign run's coupon results |
//! | `KPI#MARK#<marker>` | `#MARK` | a change or fact counted once (TTL) |
//! | `KPI#TOUCH#<member>` | `#TOUCH` | the issue days of a member's campaign coupons (TTL) |
//! | `PARTNER#<id>` | `#PARTNER` | an affiliate partner: terms, status, codes (store/partner/) |
//! | `PARTNER#<id>` | `M#<month>#O#<member>#<order>` | an attributed order's commission |
//! | `PARTNER#<id>` | `M#<month>#A#<member>#<refund>` | a reversal of a paid month's order, charged to this month |
//! | `PARTNER#<id>` | `M#<month>#STMT` | the month's reversal counter and, once paid, its statement |
//! | `PCODE#<code>` | `#CODE` | a tracking code → its partner's terms |
//! | `IMPORT#<importId>` | `#JOB` / `CHUNK#<n>` | a member import: its file and counters / a counted chunk with its rejects (store/migration/) |
//! | `IMPORTKEY#<object key>` | `<createdAt>#<importId>` | the imports of one uploaded object, newest last |
//! | `IMPORTS` | `<createdAt>#<importId>` | every import, newest last (`GET /imports`) |
//! | `EXPORT#<exportId>` | `#JOB` / `SEGMENT#<n>` | an export: what it holds / a scan segment's recorded parts, cursor and counts (store/export.rs) |

use crate::contact::ContactDigest;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The header every item of the table starts with: its key and what kind of item it is (the
/// stream's consumers and the data model read `entity`). Item structs flatten it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemKey {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, entity: &str) -> ItemKey {
        ItemKey { pk: pk.into(), sk: sk.into(), entity: entity.into() }
    }
}

pub const PROFILE_SK: &str = "#PROFILE";
pub const UNIQUE_SK: &str = "#UNIQUE";
/// Upper bound of the profile+coupons range query (`$` sorts right after `#`).
pub const COUPONS_END: &str = "COUPON$";
pub const COUPON_PREFIX: &str = "COUPON#";
pub const LEDGER_PREFIX: &str = "LEDGER#";
/// Expiry notices sort right before the profile (`E` < `P`), so the daily sweep reads a
/// member's notices and the member in one Query, and the profile range never meets them.
pub const EXPIRY_NOTICE_PREFIX: &str = "#EXPIRING#";

/// Members are spread over this many shards in the segment indexes, so that no index
/// partition holds more than a slice of the member base.
pub const SHARDS: u32 = 16;

pub fn member_pk(id: &str) -> String {
    format!("MEMBER#{id}")
}

pub fn coupon_sk(code: &str) -> String {
    format!("{COUPON_PREFIX}{code}")
}

/// A member's slot of a grant. Written with the coupon (condition: absent), so uniqueness
/// never rests on the code alone: a new code secret makes new codes, not second coupons.
pub fn grant_sk(grant: &str, slot: u32) -> String {
    format!("GRANT#{grant}#{slot}")
}

pub fn ledger_sk(at: DateTime<Utc>, kind: &str, reference: &str) -> String {
    format!("{LEDGER_PREFIX}{}#{kind}#{reference}", at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub fn expiry_notice_sk(lot_day: chrono::NaiveDate) -> String {
    format!("{EXPIRY_NOTICE_PREFIX}{lot_day}")
}

pub fn order_sk(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}

pub fn checkout_sk(order_id: &str) -> String {
    format!("CHECKOUT#{order_id}")
}

pub fn receipt_sk(scope: &str, key: &str) -> String {
    format!("RECEIPT#{scope}#{key}")
}

/// The sort-key prefix of a member's tier changes.
pub const TIER_CHANGE_PREFIX: &str = "TIER#";

pub fn tier_change_sk(at: DateTime<Utc>) -> String {
    format!("{TIER_CHANGE_PREFIX}{}", at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Contact details are keyed by their keyed digest (`contact::ContactKey`), so the table's
/// keys carry no personal data that could be read back, not even by trying every phone number.
pub fn email_pk(email: &ContactDigest) -> String {
    format!("EMAIL#{}", email.as_str())
}

pub fn phone_pk(phone: &ContactDigest) -> String {
    format!("PHONE#{}", phone.as_str())
}

/// The tombstone of a contact (email and phone digests never collide: the kind is hashed in).
pub fn gifted_pk(contact: &ContactDigest) -> String {
    format!("GIFTED#{}", contact.as_str())
}

pub const GIFTED_SK: &str = "#GIFTED";

pub fn refcode_pk(code: &str) -> String {
    format!("REFCODE#{code}")
}

/// A member's shard: FNV-1a of the id, stable across releases.
pub fn shard(member_id: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in member_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h % SHARDS
}

/// The sort key of ByBirthday, read whole per partition: nothing to order by, and index keys
/// need not be unique (a page continues from the table key), so one byte rather than the
/// member id again — every member write carries it.
pub const UNORDERED_SK: &str = "-";

pub fn tier_segment_pk(tier: &str, shard: u32) -> String {
    format!("TIER#{tier}#{shard:02}")
}

/// ByTier sort key: the member's churn band letter and `#` (`h#`), so that the members of
/// one band of a tier partition are one key range; no member id (the table key has it, and
/// index keys need not be unique). The `#` keeps older items, whose key was the bare member
/// id, out of every band's range (ids have no `#`).
pub fn tier_segment_sk(band: crate::churn::Band) -> String {
    tier_segment_band_prefix(band)
}

/// The key prefix of a band's members in a ByTier partition.
pub fn tier_segment_band_prefix(band: crate::churn::Band) -> String {
    format!("{}#", band.letter())
}

pub fn birthday_pk(mm_dd: &str) -> String {
    format!("BDAY#{mm_dd}")
}

pub fn seen_pk(shard: u32) -> String {
    format!("SEEN#{shard:02}")
}

pub fn expiry_pk(shard: u32) -> String {
    format!("EXP#{shard:02}")
}

pub fn tier_review_pk(shard: u32) -> String {
    format!("TREV#{shard:02}")
}

/// The rewards catalog: one partition, so listing it is one Query; each reward is its own item,
/// so claims of different rewards never touch the same item.
pub const REWARDS_PK: &str = "REWARDS";
pub const REWARD_PREFIX: &str = "REWARD#";
/// Sorts after `COUPON$`, like every member item that is not the profile or a coupon.
pub const REWARD_CLAIM_PREFIX: &str = "REWARD_CLAIM#";

pub fn reward_sk(reward_id: &str) -> String {
    format!("{REWARD_PREFIX}{reward_id}")
}

pub fn reward_claim_sk(claim_id: &str) -> String {
    format!("{REWARD_CLAIM_PREFIX}{claim_id}")
}

/// A member's claims of a reward in a limit period (`all` or `YYYY-MM`).
pub fn reward_limit_sk(reward_id: &str, period: &str) -> String {
    format!("REWARD_LIMIT#{reward_id}#{period}")
}

/// Program-wide items (not per member).
pub const PROGRAM_PK: &str = "PROGRAM";
/// The active campaign multiplier windows (one small item).
pub const MULTIPLIERS_SK: &str = "MULTIPLIERS";

/// The campaign directory: one small item per defined campaign, newest last, so the console
/// lists campaigns with one Query of one partition (no scan). Written once per definition.
pub const CAMPAIGNS_PK: &str = "CAMPAIGNS";

pub fn campaign_directory_sk(created_at: DateTime<Utc>, campaign_id: &str) -> String {
    format!("{}#{campaign_id}", created_at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub fn campaign_pk(campaign_id: &str) -> String {
    format!("CAMPAIGN#{campaign_id}")
}

pub fn run_sk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

/// Marks a campaign batch whose progress has been counted (so a redelivery counts nothing twice).
pub fn batch_sk(run_id: &str, batch_id: &str) -> String {
    format!("BATCH#{run_id}#{batch_id}")
}

/// The issue counter of a grant with a budget.
pub fn budget_pk(grant: &str) -> String {
    format!("BUDGET#{grant}")
}

/// Program-wide: the fingerprint of the tier rules the nightly evaluation last swept with.
pub const TIER_RULES_SK: &str = "TIER_RULES";

/// Exclusive upper bound of the ByTierReview sort keys (`<date>#<memberId>`) due on or
/// before `date`: every such key sorts below the next day's date.
pub fn tier_review_due_bound(date: chrono::NaiveDate) -> String {
    (date + chrono::Duration::days(1)).to_string()
}

/// The member id of a member partition key.
pub fn member_id_of(pk: &str) -> Option<&str> {
    pk.strip_prefix("MEMBER#")
}

/// A campaign's definition: in the campaign's partition right after every `RUN#` key, so one
/// descending Query from `CAMPAIGN_SK` down to `RUNS_PREFIX` reads it and the newest runs
/// (and never the `BATCH#` markers, which sort before).
pub const CAMPAIGN_SK: &str = "RUN~";
pub const RUNS_PREFIX: &str = "RUN#";

/// Campaigns a schedule starts: `SCHEDULED` / `<campaignId>` (one small Query lists them).
pub const SCHEDULED_PK: &str = "SCHEDULED";

pub fn scheduled_sk(campaign_id: &str) -> String {
    campaign_id.to_string()
}

/// Sort key of a grant's budget counter (`budget_pk(grant)`, attribute `issued`).
pub const BUDGET_SK: &str = "#BUDGET";
/// Receipt scopes of the points function (`RECEIPT#<scope>#<key>`): a refund by its refundId;
/// a redemption by `order:<orderId>` or `key:<Idempotency-Key>`; an activity by
/// `checkin#<program date>`, `review#<refId>` or `share#<Idempotency-Key>`.
pub const REFUND_SCOPE: &str = "refund";
/// A reward claim's receipt, by its Idempotency-Key.
pub const REWARD_SCOPE: &str = "reward";
pub const REDEEM_SCOPE: &str = "redeem";
pub const ACTIVITY_SCOPE: &str = "activity";

/// The KPI items: one partition of days (and the running totals, sorted after every day),
/// one of grants, and the markers, each its own partition (written once, never read).
pub const KPI_DAYS_PK: &str = "KPI#DAY";
pub const KPI_TOTAL_SK: &str = "~TOTAL";
pub const KPI_GRANTS_PK: &str = "KPI#GRANT";
pub const KPI_MARK_SK: &str = "#MARK";

pub fn kpi_marker_pk(marker: &str) -> String {
    format!("KPI#MARK#{marker}")
}

pub const KPI_TOUCH_SK: &str = "#TOUCH";

/// A member's campaign coupons, by the day each was issued (read when the member buys).
pub fn kpi_touch_pk(member_id: &str) -> String {
    format!("KPI#TOUCH#{member_id}")
}

// ---- affiliates ----

/// An affiliate partner's partition: its definition, then its months (`M#<YYYY-MM>#…`), so
/// one Query of a month's prefix reads that month's orders, adjustments and statement.
pub fn partner_pk(partner_id: &str) -> String {
    format!("PARTNER#{partner_id}")
}

pub const PARTNER_SK: &str = "#PARTNER";

pub fn tracking_code_pk(code: &str) -> String {
    format!("PCODE#{code}")
}

pub const TRACKING_CODE_SK: &str = "#CODE";

pub fn partner_month_prefix(month: &str) -> String {
    format!("M#{month}#")
}

/// Keyed by member and order: order ids are unique per member, not across members.
pub fn commission_sk(month: &str, member_id: &str, order_id: &str) -> String {
    format!("M#{month}#O#{member_id}#{order_id}")
}

pub fn commission_adjustment_sk(month: &str, member_id: &str, refund_id: &str) -> String {
    format!("M#{month}#A#{member_id}#{refund_id}")
}

pub fn statement_sk(month: &str) -> String {
    format!("M#{month}#STMT")
}

pub fn import_pk(import_id: &str) -> String {
    format!("IMPORT#{import_id}")
}

pub const IMPORT_JOB_SK: &str = "#JOB";
pub const IMPORT_CHUNK_PREFIX: &str = "CHUNK#";

pub fn import_chunk_sk(index: u32) -> String {
    format!("{IMPORT_CHUNK_PREFIX}{index:06}")
}

pub const IMPORTS_PK: &str = "IMPORTS";

pub fn import_key_pk(object_key: &str) -> String {
    format!("IMPORTKEY#{object_key}")
}

pub fn export_pk(export_id: &str) -> String {
    format!("EXPORT#{export_id}")
}

pub const EXPORT_JOB_SK: &str = "#JOB";
pub const EXPORT_SEGMENT_PREFIX: &str = "SEGMENT#";

pub fn export_segment_sk(segment: u32) -> String {
    format!("{EXPORT_SEGMENT_PREFIX}{segment:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_and_coupons_are_one_contiguous_range() {
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let inside = [PROFILE_SK.to_string(), coupon_sk("ZZZZZZZZZZZZ"), coupon_sk("000000000000")];
        let outside = [
            ledger_sk(at, "welcome", "x"),
            order_sk("o1"),
            receipt_sk("signup", "-"),
            tier_change_sk(at),
            grant_sk("welcome", 0),
            grant_sk("#", 0),
            reward_claim_sk("rc-1"),
            reward_limit_sk("r-1", "all"),
        ];
        for k in inside {
            assert!(k.as_str() >= PROFILE_SK && k.as_str() <= COUPONS_END, "{k}");
        }
        for k in outside {
            assert!(k.as_str() > COUPONS_END, "{k}");
        }
        let notice = expiry_notice_sk(at.date_naive());
        assert!(
            notice.as_str() > EXPIRY_NOTICE_PREFIX && notice.as_str() < PROFILE_SK,
            "notices sort right before the profile"
        );
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard("member-1"), shard("member-1"));
        assert!((0..1000).all(|i| shard(&format!("m{i}")) < SHARDS));
    }
}
