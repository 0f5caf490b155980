//! Ledger entries, in the member's partition, newest last by key: one item per change. A
//! change that writes several entries (a purchase whose settling also releases a week-old
//! order's points and expires a year-old lot) writes them as one item, keyed by the entry that
//! sorts last, the others in `earlier`: a change costs one ledger item's write units however
//! many entries time adds to it. Readers see entries, each in the place its own key would
//! give it (`entries`), so pages, events, counters and exports are as if each had its own item.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{from_item, sdk, Store, StoreError};
use crate::ledger::LedgerEntry;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub entry: LedgerEntry,
    /// The change's other entries, newest first, each sorting before `entry`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<LedgerEntry>,
}

/// The sort key an entry has, or would have alone: when, what kind, what caused it.
pub fn entry_sk(entry: &LedgerEntry) -> String {
    let kind = serde_json::to_value(entry.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    keys::ledger_sk(entry.at, &kind, entry.reference.as_deref().unwrap_or("-"))
}

impl LedgerItem {
    pub fn new(member_id: &str, entry: LedgerEntry) -> LedgerItem {
        LedgerItem {
            key: ItemKey::new(member_pk(member_id), entry_sk(&entry), "ledger"),
            member_id: member_id.to_string(),
            entry,
            earlier: Vec::new(),
        }
    }

    /// The one item of a change's entries (none without entries).
    pub fn of_change(member_id: &str, entries: Vec<LedgerEntry>) -> Option<LedgerItem> {
        let mut keyed: Vec<(String, LedgerEntry)> =
            entries.into_iter().map(|e| (entry_sk(&e), e)).collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0));
        let mut newest_first = keyed.into_iter().map(|(_, e)| e);
        let mut item = LedgerItem::new(member_id, newest_first.next()?);
        item.earlier = newest_first.collect();
        Some(item)
    }

    /// The item's entries with their own sort keys, newest first (the ledger's order).
    pub fn entries(&self) -> Vec<(String, &LedgerEntry)> {
        std::iter::once((self.key.sk.clone(), &self.entry))
            .chain(self.earlier.iter().map(|e| (entry_sk(e), e)))
            .collect()
    }
}

/// Where a page of the ledger goes on: after the item `sk`, or, `skip` > 0, inside it, after
/// its first `skip` entries (a page can end inside a change's item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCursor {
    pub sk: String,
    pub skip: usize,
}

impl LedgerCursor {
    /// `<sk>` or `<sk>\0<skip>`: sort keys never hold a NUL (ids are checked before use).
    pub fn encode(&self) -> String {
        match self.skip {
            0 => self.sk.clone(),
            n => format!("{}\0{n}", self.sk),
        }
    }

    /// A cursor as `encode` wrote it; none for anything else.
    pub fn parse(s: &str) -> Option<LedgerCursor> {
        let (sk, skip) = match s.split_once('\0') {
            Some((sk, n)) => (sk, n.parse::<usize>().ok().filter(|n| *n > 0)?),
            None => (s, 0),
        };
        sk.starts_with(keys::LEDGER_PREFIX).then(|| LedgerCursor { sk: sk.to_string(), skip })
    }
}

/// One page of a member's ledger, newest first.
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// Where to continue, if there is more.
    pub next: Option<LedgerCursor>,
}

impl Store {
    /// At most `limit` entries, newest first, from `after` on: one Query of at most `limit`
    /// items (an item holds one entry or more).
    pub async fn ledger_page(
        &self,
        member_id: &str,
        after: Option<&LedgerCursor>,
        limit: i32,
    ) -> Result<LedgerPage, StoreError> {
        let pk = member_pk(member_id);
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":p", AttributeValue::S(keys::LEDGER_PREFIX.into()))
            .scan_index_forward(false)
            .limit(limit);
        q = match after {
            None => q.key_condition_expression("PK = :pk AND begins_with(SK, :p)"),
            Some(c) if c.skip == 0 => q
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .exclusive_start_key("PK", AttributeValue::S(pk))
                .exclusive_start_key("SK", AttributeValue::S(c.sk.clone())),
            // From the cursor's item itself (every key in the range starts with the prefix).
            Some(c) => q
                .key_condition_expression("PK = :pk AND SK BETWEEN :p AND :at")
                .expression_attribute_values(":at", AttributeValue::S(c.sk.clone())),
        };
        let out = q.send().await.map_err(sdk)?;
        let more = out.last_evaluated_key().and_then(|k| k.get("SK")).and_then(|v| v.as_s().ok());
        let more = more.map(|sk| LedgerCursor { sk: sk.clone(), skip: 0 });
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item::<LedgerItem>)
            .collect::<Result<Vec<_>, _>>()?;
        let skip = after.filter(|c| c.skip > 0).map_or(0, |c| c.skip);
        Ok(page_of(&items, skip, limit.max(1) as usize, more))
    }

    /// Every entry of a member's ledger (tests and audits; pages through the partition).
    pub async fn ledger_all(&self, member_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut all = Vec::new();
        let mut after: Option<LedgerCursor> = None;
        loop {
            let page = self.ledger_page(member_id, after.as_ref(), 500).await?;
            all.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }
}

/// At most `limit` entries of `items` (newest first), the first item's first `skip` left out,
/// and where the next page starts: inside an item when the page ends inside it, else after
/// the last item taken, else where the Query stopped (`more`).
fn page_of(
    items: &[LedgerItem],
    skip: usize,
    limit: usize,
    more: Option<LedgerCursor>,
) -> LedgerPage {
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let all = item.entries();
        let from = if i == 0 { skip.min(all.len()) } else { 0 };
        let room = limit - entries.len();
        if all.len() - from > room {
            entries.extend(all[from..from + room].iter().map(|(_, e)| (*e).clone()));
            let next = LedgerCursor { sk: item.key.sk.clone(), skip: from + room };
            return LedgerPage { entries, next: Some(next) };
        }
        entries.extend(all[from..].iter().map(|(_, e)| (*e).clone()));
        if entries.len() == limit && i + 1 < items.len() {
            let next = LedgerCursor { sk: item.key.sk.clone(), skip: 0 };
            return LedgerPage { entries, next: Some(next) };
        }
    }
    LedgerPage { entries, next: more }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::EntryKind;
    use crate::money::{Fen, Points};
    use chrono::{DateTime, Duration, Utc};

    fn entry(kind: EntryKind, points: i64, at: DateTime<Utc>, reference: &str) -> LedgerEntry {
        LedgerEntry {
            kind,
            points: Points(points),
            balance_after: Points(0),
            pending: Points::ZERO,
            rebate: Fen::ZERO,
            rebate_pending: Fen::ZERO,
            reason: "r".into(),
            reference: Some(reference.into()),
            at,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T10:00:00Z".parse().unwrap()
    }

    /// A purchase whose settling released and expired: given in any order, one item keyed
    /// by the purchase, the others after it newest first, each with the key it would have.
    fn purchase_change(n: i64) -> LedgerItem {
        let t = now() + Duration::minutes(n);
        LedgerItem::of_change(
            "m",
            vec![
                entry(EntryKind::Purchase, 10, t, &format!("o-{n}")),
                entry(EntryKind::Release, 5, t - Duration::microseconds(2), "release"),
                entry(EntryKind::Expiry, -3, t - Duration::microseconds(1), "expiry"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_change_is_one_item_keyed_by_its_last_entry() {
        let item = purchase_change(0);
        assert_eq!(item.entry.kind, EntryKind::Purchase);
        let kinds: Vec<_> = item.entries().iter().map(|(_, e)| e.kind).collect();
        assert_eq!(kinds, [EntryKind::Purchase, EntryKind::Expiry, EntryKind::Release]);
        let sks: Vec<_> = item.entries().into_iter().map(|(sk, _)| sk).collect();
        assert_eq!(sks[0], item.key.sk);
        assert!(sks.windows(2).all(|w| w[0] > w[1]), "{sks:?}");
        for (sk, e) in item.entries() {
            assert_eq!(sk, LedgerItem::new("m", e.clone()).key.sk, "the key it would have alone");
        }
        // Stored and read back alike.
        let back: LedgerItem = from_item(crate::store::to_item(&item).unwrap()).unwrap();
        assert_eq!(back.earlier, item.earlier);
        assert!(LedgerItem::of_change("m", Vec::new()).is_none());
    }

    #[test]
    fn pages_take_exactly_limit_entries_and_can_end_inside_an_item() {
        // Three changes of three entries, newest first, then a lone welcome entry.
        let mut items: Vec<_> = (0..3).rev().map(purchase_change).collect();
        items.push(LedgerItem::new("m", entry(EntryKind::Welcome, 100, now(), "-")));
        let all: Vec<_> =
            items.iter().flat_map(|i| i.entries().into_iter().map(|(_, e)| e.clone())).collect();
        assert_eq!(all.len(), 10);
        for limit in 1..=11 {
            // Page through, as the Query would answer: from the cursor's item (or after it).
            let (mut seen, mut cursor): (Vec<LedgerEntry>, Option<LedgerCursor>) = (vec![], None);
            for _ in 0..20 {
                let start = match &cursor {
                    None => 0,
                    Some(c) => {
                        let at = items.iter().position(|i| i.key.sk == c.sk).unwrap();
                        if c.skip > 0 {
                            at
                        } else {
                            at + 1
                        }
                    }
                };
                let fetched = &items[start..(start + limit).min(items.len())];
                let more = (start + limit < items.len())
                    .then(|| LedgerCursor { sk: fetched.last().unwrap().key.sk.clone(), skip: 0 });
                let skip = cursor.as_ref().map_or(0, |c| c.skip);
                let page = page_of(fetched, skip, limit, more);
                assert!(page.entries.len() <= limit && !page.entries.is_empty(), "limit {limit}");
                seen.extend(page.entries);
                match page.next {
                    Some(n) => {
                        assert_eq!(LedgerCursor::parse(&n.encode()), Some(n.clone()));
                        cursor = Some(n)
                    }
                    None => break,
                }
            }
            assert_eq!(seen, all, "limit {limit}: every entry once, in order");
        }
    }

    #[test]
    fn cursors_are_ledger_keys_with_an_optional_position() {
        assert_eq!(
            LedgerCursor::parse("LEDGER#x"),
            Some(LedgerCursor { sk: "LEDGER#x".into(), skip: 0 })
        );
        assert_eq!(LedgerCursor::parse("LEDGER#x\u{0}2").map(|c| c.skip), Some(2));
        for bad in
            ["COUPON#x", "LEDGER#x\u{0}", "LEDGER#x\u{0}0", "LEDGER#x\u{0}-1", "LEDGER#x\u{0}a"]
        {
            assert_eq!(LedgerCursor::parse(bad), None, "{bad:?}");
        }
    }
}
