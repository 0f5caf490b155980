//! Compact stored forms of the lists that grow with a member's history: the points lots
//! (one per earning day, kept for `points.expiryDays`), the spend days (one per buying day,
//! kept for the tier window) and the pending lots (one per order in the return window).
//!
//! Every write of a member rewrites its whole item and DynamoDB bills a transactional write
//! 2 units per started KB, so these lists set the price of a loyal member's purchase. As
//! lists of maps (`[{"d": "2026-11-27", "a": 25000}, …]`) a day costs about 22 bytes; packed
//! into one binary attribute it costs 2–4: per entry one LEB128 varint holding the amount
//! (zigzag, so debts and corrections fit) shifted left by one, its low bit set when the day
//! is not the day after the previous entry's, in which case a second varint gives the step
//! (the first entry's step counts from 1970-01-01). Consecutive days, the common case of a
//! loyal member, cost no day bytes at all. Any list round-trips exactly, in any order, with
//! any amount.
//!
//! Items written before the packed form was introduced hold the lists of maps; both forms
//! are read, and the next write of the member packs them.

use chrono::NaiveDate;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

/// The version byte that starts every packed list.
const FORMAT: u8 = 1;
/// A sourced list whose entries carry a second amount (a pending lot's rebate, in fen) after
/// the entry; lists without one keep `FORMAT`, so they cost no byte more.
const FORMAT_EXTRA: u8 = 2;

/// An entry of a dated list: a program-calendar day and an amount (fen or points).
pub trait Dated: Sized {
    fn day(&self) -> NaiveDate;
    fn amount(&self) -> i64;
    fn from_parts(day: NaiveDate, amount: i64) -> Self;
}

/// A dated entry with a source (a pending lot: the order it waits for) and a second amount
/// (a pending lot's rebate), 0 in most lists.
pub trait Sourced: Sized {
    fn parts(&self) -> (&str, NaiveDate, i64, i64);
    fn from_parts(source: String, day: NaiveDate, amount: i64, extra: i64) -> Self;
}

fn epoch_day(d: NaiveDate) -> i64 {
    d.signed_duration_since(NaiveDate::default()).num_days()
}

fn zigzag(v: i64) -> u128 {
    ((v << 1) ^ (v >> 63)) as u64 as u128
}

fn unzigzag(z: u128) -> Option<i64> {
    let z = u64::try_from(z).ok()?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take_varint(bytes: &mut &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for shift in (0..128).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u128::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One entry: the amount with the "not the next day" flag, then the step when flagged.
fn put_entry(out: &mut Vec<u8>, previous: &mut i64, day: NaiveDate, amount: i64) {
    let day = epoch_day(day);
    let step = day - *previous;
    put_varint(out, zigzag(amount) << 1 | u128::from(step != 1));
    if step != 1 {
        put_varint(out, zigzag(step));
    }
    *previous = day;
}

fn take_entry(bytes: &mut &[u8], previous: &mut i64) -> Option<(NaiveDate, i64)> {
    let head = take_varint(bytes)?;
    let step = if head & 1 == 1 { unzigzag(take_varint(bytes)?)? } else { 1 };
    *previous = previous.checked_add(step)?;
    let day = NaiveDate::default().checked_add_signed(chrono::Duration::try_days(*previous)?)?;
    Some((day, unzigzag(head >> 1)?))
}

pub fn pack<T: Dated>(list: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + list.len() * 4);
    out.push(FORMAT);
    let mut previous = 0;
    for e in list {
        put_entry(&mut out, &mut previous, e.day(), e.amount());
    }
    out
}

pub fn unpack<T: Dated>(bytes: &[u8]) -> Option<Vec<T>> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let (mut list, mut previous) = (Vec::new(), 0);
    while !rest.is_empty() {
        let (day, amount) = take_entry(&mut rest, &mut previous)?;
        list.push(T::from_parts(day, amount));
    }
    Some(list)
}

pub fn pack_sourced<T: Sourced>(list: &[T]) -> Vec<u8> {
    let extra = list.iter().any(|e| e.parts().3 != 0);
    let mut out = vec![if extra { FORMAT_EXTRA } else { FORMAT }];
    let mut previous = 0;
    for e in list {
        let (source, day, amount, second) = e.parts();
        put_varint(&mut out, source.len() as u128);
        out.extend_from_slice(source.as_bytes());
        put_entry(&mut out, &mut previous, day, amount);
        if extra {
            put_varint(&mut out, zigzag(second));
        }
    }
    out
}

pub fn unpack_sourced<T: Sourced>(bytes: &[u8]) -> Option<Vec<T>> {
    let (&format, mut rest) = bytes.split_first()?;
    if format != FORMAT && format != FORMAT_EXTRA {
        return None;
    }
    let (mut list, mut previous) = (Vec::new(), 0);
    while !rest.is_empty() {
        let len = usize::try_from(take_varint(&mut rest)?).ok()?;
        if len > rest.len() {
            return None;
        }
        let (source, tail) = rest.split_at(len);
        let source = String::from_utf8(source.to_vec()).ok()?;
        rest = tail;
        let (day, amount) = take_entry(&mut rest, &mut previous)?;
        let second = if format == FORMAT_EXTRA { unzigzag(take_varint(&mut rest)?)? } else { 0 };
        list.push(T::from_parts(source, day, amount, second));
    }
    Some(list)
}

/// Bytes as stored: a DynamoDB binary attribute, or (in JSON) an array of numbers.
struct Packed(Vec<u8>);

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Packed, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Packed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("packed bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Packed, E> {
                Ok(Packed(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Packed, E> {
                Ok(Packed(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Packed, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Packed(v))
            }
        }
        d.deserialize_any(Bytes)
    }
}

/// The two stored forms: packed, or the list of maps of older items.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored<T> {
    Packed(Packed),
    List(Vec<T>),
}

/// `#[serde(with = "crate::compact::dated")]` for a `Vec` of `Dated` entries.
pub mod dated {
    use super::*;

    pub fn serialize<S: Serializer, T: Dated>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&pack(list))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Dated + Deserialize<'de>,
    {
        match Stored::<T>::deserialize(d)? {
            Stored::Packed(Packed(b)) => {
                unpack(&b).ok_or_else(|| de::Error::custom("a packed dated list is damaged"))
            }
            Stored::List(list) => Ok(list),
        }
    }
}

/// `#[serde(with = "crate::compact::sourced")]` for a `Vec` of `Sourced` entries.
pub mod sourced {
    use super::*;

    pub fn serialize<S: Serializer, T: Sourced>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&pack_sourced(list))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Sourced + Deserialize<'de>,
    {
        match Stored::<T>::deserialize(d)? {
            Stored::Packed(Packed(b)) => unpack_sourced(&b)
                .ok_or_else(|| de::Error::custom("a packed list of pending lots is damaged")),
            Stored::List(list) => Ok(list),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Lot, PendingLot, Wallet};
    use crate::member::SpendDay;
    use crate::money::Fen;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::default() + chrono::Duration::days(n)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_list_round_trips(entries in prop::collection::vec((0i64..80_000, any::<i64>()), 0..400),
                                pending in prop::collection::vec(("[a-z0-9:._-]{0,70}", 0i64..80_000, any::<i64>(), prop_oneof![Just(0i64), any::<i64>()]), 0..20)) {
            let lots: Vec<Lot> = entries.iter().map(|&(d, p)| Lot { earned_on: day(d), points: p }).collect();
            prop_assert_eq!(unpack::<Lot>(&pack(&lots)), Some(lots.clone()));
            let pending: Vec<PendingLot> = pending.into_iter().map(|(source, d, points, rebate)| PendingLot { source, points, rebate, release_on: day(d) }).collect();
            prop_assert_eq!(unpack_sourced::<PendingLot>(&pack_sourced(&pending)), Some(pending.clone()));
            // Through both stored forms: a DynamoDB item and JSON.
            let wallet = Wallet { balance: crate::Points(1), lots, pending, rebate: Fen(-3) };
            let item: serde_dynamo::Item = serde_dynamo::to_item(&wallet).unwrap();
            prop_assert_eq!(&serde_dynamo::from_item::<_, Wallet>(item).unwrap(), &wallet);
            let json = serde_json::to_string(&wallet).unwrap();
            prop_assert_eq!(&serde_json::from_str::<Wallet>(&json).unwrap(), &wallet);
        }
    }

    #[test]
    fn a_daily_year_packs_into_a_few_bytes_a_day() {
        let year: Vec<SpendDay> =
            (0..365).map(|n| SpendDay { day: day(20_000 + n), amount: Fen(25_000) }).collect();
        let packed = pack(&year);
        // The format byte, the first day's step (three bytes from 1970), and each day's
        // three-byte amount: the following days cost no day bytes.
        assert_eq!(packed.len(), 1 + 3 + 365 * 3);
    }

    #[test]
    fn pending_lots_without_a_rebate_cost_no_byte_for_it() {
        let lot = |rebate| PendingLot {
            source: "o-1".into(),
            points: 250,
            rebate,
            release_on: day(20_000),
        };
        let (plain, with) = (pack_sourced(&[lot(0)]), pack_sourced(&[lot(500)]));
        assert_eq!((plain[0], with[0]), (FORMAT, FORMAT_EXTRA));
        assert_eq!(with.len(), plain.len() + 2);
        assert_eq!(unpack_sourced::<PendingLot>(&with), Some(vec![lot(500)]));
    }

    #[test]
    fn items_written_as_lists_of_maps_are_still_read() {
        let old = serde_json::json!({
            "balance": 30,
            "lots": [{"d": "2026-01-02", "p": 10}, {"d": "2026-01-05", "p": 20}],
            "pending": [{"o": "o-1", "p": 5, "r": "2026-02-01"}]
        });
        let w: Wallet = serde_json::from_value(old).unwrap();
        assert_eq!(w.lots[1], Lot { earned_on: "2026-01-05".parse().unwrap(), points: 20 });
        assert_eq!(w.pending[0].source, "o-1");
        let item: serde_dynamo::Item = serde_dynamo::to_item(serde_json::json!({
            "balance": 10, "lots": [{"d": "2026-01-02", "p": 10}]
        }))
        .unwrap();
        let w: Wallet = serde_dynamo::from_item(item).unwrap();
        assert_eq!(w.lots, vec![Lot { earned_on: "2026-01-02".parse().unwrap(), points: 10 }]);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        for bytes in [
            vec![],
            vec![9],
            vec![FORMAT, 0x80],
            vec![FORMAT, 3],
            vec![
                FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ] {
            assert_eq!(unpack::<Lot>(&bytes), None, "{bytes:?}");
        }
        let item: serde_dynamo::Item = serde_dynamo::to_item(serde_json::json!({"balance": 0}))
            .map(|mut i: serde_dynamo::Item| {
                i.insert("lots".into(), serde_dynamo::AttributeValue::B(vec![FORMAT, 0x80]));
                i
            })
            .unwrap();
        assert!(serde_dynamo::from_item::<_, Wallet>(item).is_err());
    }
}
