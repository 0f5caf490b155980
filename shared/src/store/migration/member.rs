//! Writing an imported member: created new, or corrected where an earlier import wrote it
//! and nobody touched it since.

use super::s;
use crate::contact::ContactKey;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::migration::{self, Decision, ImportedMember, Outcome, RejectCode};
use crate::money::Points;
use crate::rules::Rules;
use crate::store::keys::{self, member_pk, ItemKey, PROFILE_SK, UNIQUE_SK};
use crate::store::ledger::LedgerItem;
use crate::store::member::MemberItem;
use crate::store::signup::UniqueItem;
use crate::store::{
    backoff, from_item, key, Cond, Item, Store, StoreError, TxFailure, BATCH_GET_MAX,
};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

impl Store {
    /// The members of these ids, as stored (BatchGetItem, 100 keys a request).
    pub async fn members_by_id(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Member>, StoreError> {
        let mut out = HashMap::new();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for page in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = page.iter().map(|id| key(&member_pk(id), PROFILE_SK)).collect();
            for item in self.batch_get(keys).await? {
                let m = from_item::<MemberItem>(item)?.member;
                out.insert(m.member_id.as_str().to_string(), m);
            }
        }
        Ok(out)
    }

    /// Writes one accepted line: a new member with its contacts' uniqueness items, a fresh
    /// referral code and one `import` ledger entry per lot, or the correction of a member an
    /// earlier import wrote and nobody touched since; each one transaction with conditions.
    /// `read` is the member as a batch read found it (None: absent); a condition that fails
    /// on the member makes it read again and decide anew.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_member(
        &self,
        line: &ImportedMember,
        import_id: &str,
        number: u64,
        read: Option<Member>,
        contacts: &ContactKey,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let id = line.member.member_id.as_str().to_string();
        let mut existing = read;
        for attempt in 0..crate::store::MAX_ATTEMPTS {
            let decision = migration::decide(line, import_id, number, existing.as_ref());
            let (writes, meaning) = match decision {
                Decision::Done(outcome) => return Ok(outcome),
                Decision::Create => {
                    self.import_create(line, import_id, number, contacts, rules, now)?
                }
                Decision::Correct => {
                    let old = existing.as_ref().expect("a correction has a member");
                    self.import_correct(line, import_id, number, old, contacts, rules, now)?
                }
            };
            match self.transact(writes).await {
                Ok(()) => {
                    return Ok(if existing.is_some() {
                        Outcome::Updated
                    } else {
                        Outcome::Imported
                    })
                }
                Err(TxFailure::Conditions(failed)) => match meaning[failed[0]] {
                    Why::Member => {
                        existing = self.member(&id).await?;
                    }
                    // A fresh referral code is drawn on the next attempt.
                    Why::ReferralCode => {}
                    Why::Email => {
                        return Ok(Outcome::Rejected(
                            RejectCode::DuplicateEmail,
                            "another member has this email".into(),
                        ))
                    }
                    Why::Phone => {
                        return Ok(Outcome::Rejected(
                            RejectCode::DuplicatePhone,
                            "another member has this phone number".into(),
                        ))
                    }
                    Why::Other => backoff(attempt).await,
                },
                Err(TxFailure::Conflict) => backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    fn import_create(
        &self,
        line: &ImportedMember,
        import_id: &str,
        number: u64,
        contacts: &ContactKey,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Why>), StoreError> {
        let mut m = migration::apply_line(line, import_id, number, None);
        m.referral_code = crate::member::new_referral_code();
        let id = m.member_id.as_str().to_string();
        let unique = |pk: String| UniqueItem {
            key: ItemKey::new(pk, UNIQUE_SK, "unique"),
            member_id: id.clone(),
        };
        let mut w = vec![
            (self.put(&MemberItem::new(&m, rules, now), Some(Cond::absent()))?, Why::Member),
            (
                self.put(&unique(keys::refcode_pk(&m.referral_code)), Some(Cond::absent()))?,
                Why::ReferralCode,
            ),
        ];
        if let Some(e) = &m.email {
            w.push((
                self.put(&unique(keys::email_pk(&contacts.email(e))), Some(Cond::absent()))?,
                Why::Email,
            ));
        }
        if let Some(p) = &m.phone {
            w.push((
                self.put(&unique(keys::phone_pk(&contacts.phone(p))), Some(Cond::absent()))?,
                Why::Phone,
            ));
        }
        let mut balance = 0i64;
        for (n, (on, points)) in line.lots.iter().enumerate() {
            balance += points;
            let entry = LedgerEntry {
                kind: EntryKind::Import,
                points: Points(*points),
                balance_after: Points(balance),
                pending: Points(0),
                rebate: Default::default(),
                rebate_pending: Default::default(),
                reason: format!("import: earned {on}"),
                reference: Some(format!("{import_id}:{number}:{n}")),
                at: now,
            };
            w.push((self.put(&LedgerItem::new(&id, entry), Some(Cond::absent()))?, Why::Other));
        }
        Ok(w.into_iter().unzip())
    }

    #[allow(clippy::too_many_arguments)]
    fn import_correct(
        &self,
        line: &ImportedMember,
        import_id: &str,
        number: u64,
        old: &Member,
        contacts: &ContactKey,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Why>), StoreError> {
        let m = migration::apply_line(line, import_id, number, Some(old));
        let id = m.member_id.as_str().to_string();
        let mine =
            || Cond::new("attribute_not_exists(PK) OR memberId = :m").value(":m", s(id.clone()));
        let unique = |pk: String| UniqueItem {
            key: ItemKey::new(pk, UNIQUE_SK, "unique"),
            member_id: id.clone(),
        };
        let mut w = vec![(
            self.put(&MemberItem::new(&m, rules, now), Some(Cond::version(old.version)))?,
            Why::Member,
        )];
        let pairs = [
            (old.email.as_deref(), m.email.as_deref(), Why::Email, true),
            (old.phone.as_deref(), m.phone.as_deref(), Why::Phone, false),
        ];
        for (before, after, why, is_email) in pairs {
            if before == after {
                continue;
            }
            let pk = |v: &str| {
                if is_email {
                    keys::email_pk(&contacts.email(v))
                } else {
                    keys::phone_pk(&contacts.phone(v))
                }
            };
            if let Some(b) = before {
                w.push((self.delete(&pk(b), UNIQUE_SK, Some(mine()))?, Why::Other));
            }
            if let Some(a) = after {
                w.push((self.put(&unique(pk(a)), Some(Cond::absent()))?, why));
            }
        }
        // The ledger is never rewritten: the difference is one more entry.
        let delta = m.wallet.balance.0 - old.wallet.balance.0;
        if delta != 0 {
            let entry = LedgerEntry {
                kind: EntryKind::Import,
                points: Points(delta),
                balance_after: m.wallet.balance,
                pending: Points(0),
                rebate: Default::default(),
                rebate_pending: Default::default(),
                reason: "import: corrected balance".into(),
                reference: Some(format!("{import_id}:{number}")),
                at: now,
            };
            w.push((self.put(&LedgerItem::new(&id, entry), Some(Cond::absent()))?, Why::Other));
        }
        Ok(w.into_iter().unzip())
    }
}

/// What a failed condition of an import transaction means.
#[derive(Debug, Clone, Copy)]
enum Why {
    Member,
    ReferralCode,
    Email,
    Phone,
    Other,
}
