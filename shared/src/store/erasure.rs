//! Erasure: the member item rewritten without personal data, its contacts released behind
//! tombstones (`signup::TombstoneItem`), in one transaction.

use super::change::Attempt;
use super::coupon::CouponItem;
use super::keys::{self, member_pk, PROFILE_SK, UNIQUE_SK};
use super::member::MemberItem;
use super::signup::TombstoneItem;
use super::{entity, from_item, key, Cond, Store, StoreError};
use crate::calendar;
use crate::contact::ContactKey;
use crate::rules::Rules;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, Utc};

impl Store {
    /// Erases personal data: the member item is rewritten without it (version-checked), the
    /// signup receipt is deleted, ledger, coupons and points (a debt included) stay. Each
    /// verified contact's uniqueness item goes and a tombstone takes its place, recording what
    /// memberships of that contact received (`Member::gifts_received`), so that a new account
    /// with the same contact gets no second welcome gift, referral link or birthday coupon of
    /// the year. `birthday_coupon_code` is the code this member's coupon of this year's
    /// birthday grant would have: read with the member (one BatchGetItem), it says whether the
    /// gift of this year was given.
    pub async fn erase_member(
        &self,
        id: &str,
        contacts: &ContactKey,
        birthday_coupon_code: &str,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let year = calendar::program_date(rules.time_zone, now).year();
        self.change_member(async || {
            let mut m = None;
            let mut birthday_coupon = false;
            for item in self
                .batch_get(vec![
                    key(&member_pk(id), PROFILE_SK),
                    key(&member_pk(id), &keys::coupon_sk(birthday_coupon_code)),
                ])
                .await?
            {
                match entity(&item) {
                    Some("member") => m = Some(from_item::<MemberItem>(item)?.member),
                    Some("coupon") => {
                        birthday_coupon = from_item::<CouponItem>(item)?.coupon.grant
                            == crate::birthday::grant(year)
                    }
                    _ => {}
                }
            }
            let Some(mut m) = m else { return Ok(Attempt::Answer(false)) };
            if m.is_erased() {
                return Ok(Attempt::Answer(true));
            }
            let gifts = m.gifts_received(birthday_coupon.then_some(year));
            let verified_email =
                m.email.as_deref().filter(|_| m.email_verified).map(|e| contacts.email(e));
            let verified_phone =
                m.phone.as_deref().filter(|_| m.phone_verified).map(|p| contacts.phone(p));
            let version = m.version;
            m.erase(now);
            m.version += 1;
            let mine = || {
                Cond::new("attribute_not_exists(PK) OR memberId = :m")
                    .value(":m", AttributeValue::S(id.into()))
            };
            let mut writes = vec![
                self.put(&MemberItem::new(&m, rules, now), Some(Cond::version(version)))?,
                self.delete(&member_pk(id), &keys::receipt_sk("signup", "-"), None)?,
            ];
            if let Some(e) = &verified_email {
                writes.push(self.delete(&keys::email_pk(e), UNIQUE_SK, Some(mine()))?);
                writes.push(self.put(&TombstoneItem::new(e, gifts, now), None)?);
            }
            if let Some(p) = &verified_phone {
                writes.push(self.delete(&keys::phone_pk(p), UNIQUE_SK, Some(mine()))?);
                writes.push(self.put(&TombstoneItem::new(p, gifts, now), None)?);
            }
            Ok(Attempt::Commit(writes, true))
        })
        .await
    }
}
