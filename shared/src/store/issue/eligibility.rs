//! What a batch's eligibility check reads of its members, and the birthday index.

use crate::contact::PriorGifts;
use crate::member::MemberId;
use crate::store::keys::{self, member_pk, PROFILE_SK};
use crate::store::{from_item, key, sdk, Item, Store, StoreError, BATCH_GET_MAX};
use crate::tier::TierCode;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Deserialize)]
struct Eligibility {
    #[serde(rename = "memberId")]
    member_id: String,
    tier: TierCode,
    #[serde(rename = "erasedAt", default)]
    erased_at: Option<DateTime<Utc>>,
    #[serde(default)]
    birthday: Option<NaiveDate>,
    #[serde(rename = "birthdaySetAt", default)]
    birthday_set_at: Option<DateTime<Utc>>,
    #[serde(rename = "joinedAt")]
    joined_at: DateTime<Utc>,
    #[serde(rename = "priorGifts", default)]
    prior_gifts: PriorGifts,
}

/// What a batch's eligibility check sees of a member that exists and is not erased (read
/// from the member record, strongly consistent, with the tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tier: TierCode,
    pub birthday: Option<NaiveDate>,
    /// When the birthday was recorded (`Member::birthday_recorded_at`).
    pub birthday_recorded_at: DateTime<Utc>,
    /// The last year an erased membership of this member's contact had a birthday coupon.
    pub prior_birthday_gift_year: Option<i32>,
}

impl Candidate {
    /// The facts `birthday::gift_allowed` judges, in the program calendar `tz`.
    pub fn birthday_facts(&self, tz: chrono_tz::Tz) -> crate::birthday::BirthdayFacts {
        crate::birthday::BirthdayFacts {
            birthday: self.birthday,
            recorded_on: crate::calendar::program_date(tz, self.birthday_recorded_at),
            prior_gift_year: self.prior_birthday_gift_year,
        }
    }
}

/// A member found by the birthday index (which projects the id and the tier).
#[derive(Debug, Clone, Deserialize)]
pub struct BirthdayMember {
    #[serde(rename = "memberId")]
    pub member_id: String,
    pub tier: TierCode,
}

impl Store {
    /// The tier of each member that exists and is not erased; members missing from the
    /// answer are not eligible.
    pub async fn member_tiers(
        &self,
        member_ids: &[String],
    ) -> Result<HashMap<String, TierCode>, StoreError> {
        Ok(self.candidates(member_ids).await?.into_iter().map(|(id, c)| (id, c.tier)).collect())
    }

    /// What eligibility needs of each member that exists and is not erased; members missing
    /// from the answer are not eligible. One BatchGetItem per 100 members, only the needed
    /// attributes.
    pub async fn candidates(
        &self,
        member_ids: &[String],
    ) -> Result<HashMap<String, Candidate>, StoreError> {
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            // An id that cannot be a member id (empty, too long for a key...) is simply not eligible.
            member_ids
                .iter()
                .filter(|id| MemberId::parse(id).is_some() && seen.insert(id.as_str()))
                .collect()
        };
        let mut out = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk.iter().map(|id| key(&member_pk(id), PROFILE_SK)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#m, #t, #e, #b, #bs, #j, #pg")
                .expression_attribute_names("#m", "memberId")
                .expression_attribute_names("#t", "tier")
                .expression_attribute_names("#e", "erasedAt")
                .expression_attribute_names("#b", "birthday")
                .expression_attribute_names("#bs", "birthdaySetAt")
                .expression_attribute_names("#j", "joinedAt")
                .expression_attribute_names("#pg", "priorGifts")
                .consistent_read(true)
                .build()
                .map_err(sdk)?;
            for item in self.batch_get_with(request).await? {
                let e: Eligibility = from_item(item)?;
                if e.erased_at.is_none() {
                    let c = Candidate {
                        tier: e.tier,
                        birthday: e.birthday,
                        birthday_recorded_at: e.birthday_set_at.unwrap_or(e.joined_at),
                        prior_birthday_gift_year: e.prior_gifts.birthday_year,
                    };
                    out.insert(e.member_id, c);
                }
            }
        }
        Ok(out)
    }
    /// The members whose birthday key (`MM-DD`) is `mm_dd`, from the ByBirthday index.
    pub async fn birthdays(&self, mm_dd: &str) -> Result<Vec<BirthdayMember>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByBirthday")
            .key_condition_expression("GSI2PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::birthday_pk(mm_dd)));
        self.query_all(query).await
    }
}
