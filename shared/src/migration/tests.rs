use super::*;
use crate::rules::Rules;
use chrono::{DateTime, Utc};

fn now() -> DateTime<Utc> {
    "2026-11-28T04:00:00Z".parse().unwrap()
}

fn good() -> String {
    r#"{"id":"ext-1","email":"Li.Wei@Example.com","name":"李伟","joinedAt":"2024-03-01","tier":"gold","tierReachedAt":"2026-02-01","lots":[{"points":500,"earnedOn":"2026-01-10"},{"points":300,"earnedOn":"2026-01-10"},{"points":70,"earnedOn":"2026-06-01"}],"spend":[{"on":"2026-05-01","amount":1200000},{"on":"2020-01-01","amount":5}],"lifetimeSpend":3000000}"#.into()
}

fn code(text: &str) -> RejectCode {
    match parse_json_line(text.as_bytes()).and_then(|l| l.validate(&Rules::default(), now())) {
        Ok(_) => panic!("{text} was accepted"),
        Err((c, _)) => c,
    }
}

#[test]
fn a_good_line_becomes_the_member_it_describes() {
    let m = parse_json_line(good().as_bytes()).unwrap().validate(&Rules::default(), now()).unwrap();
    assert_eq!(m.member.email.as_deref(), Some("li.wei@example.com"));
    assert!(m.member.email_verified && !m.member.phone_verified);
    assert_eq!(m.member.tier, crate::TierCode::Gold);
    assert_eq!(m.member.wallet.balance.0, 870);
    assert!(m.member.wallet.is_consistent());
    assert_eq!(m.lots.len(), 3, "one ledger entry per lot as given, even of one day");
    assert_eq!(m.member.spend_days.len(), 1, "spend before the tier window is dropped");
    assert_eq!(m.member.reached.len(), 1);
}

#[test]
fn the_same_member_in_csv_or_reordered_json_has_the_same_digest() {
    let rules = Rules::default();
    let a = parse_json_line(good().as_bytes()).unwrap().validate(&rules, now()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good()).unwrap();
    let mut fields: Vec<_> = v.as_object().unwrap().iter().collect();
    fields.reverse();
    let reordered = serde_json::Value::Object(
        fields.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    );
    let b =
        parse_json_line(reordered.to_string().as_bytes()).unwrap().validate(&rules, now()).unwrap();
    assert_eq!(a.digest, b.digest);
    let cols = parse_header(b"id,email,name,joinedAt,tier,tierReachedAt,lots,spend,lifetimeSpend")
        .unwrap();
    let c = parse_csv_line(
        "ext-1,Li.Wei@Example.com,李伟,2024-03-01,gold,2026-02-01,500@2026-01-10;300@2026-01-10;70@2026-06-01,1200000@2026-05-01;5@2020-01-01,3000000".as_bytes(),
        &cols,
    )
    .unwrap()
    .validate(&rules, now())
    .unwrap();
    assert_eq!(c.member, a.member);
    let changed = good().replace("\"points\":70", "\"points\":71");
    let d = parse_json_line(changed.as_bytes()).unwrap().validate(&rules, now()).unwrap();
    assert_ne!(d.digest, a.digest);
}

#[test]
fn each_bad_line_names_its_rule() {
    let with = |from: &str, to: &str| {
        let s = good().replacen(from, to, 1);
        assert_ne!(s, good(), "{from} not in the line");
        s
    };
    assert_eq!(code("{\"id\":"), RejectCode::BrokenJson);
    assert_eq!(code("[1]"), RejectCode::NotAnObject);
    assert_eq!(code(&with("\"id\":\"ext-1\",", "")), RejectCode::MissingId);
    assert_eq!(code(&with("ext-1", "a b")), RejectCode::InvalidId);
    assert_eq!(code(&with("\"tier\"", "\"level\"")), RejectCode::UnknownField);
    assert_eq!(
        code(&with("\"lifetimeSpend\":3000000", "\"lifetimeSpend\":\"x\"")),
        RejectCode::InvalidField
    );
    assert_eq!(code(&with("Li.Wei@Example.com", "nope")), RejectCode::InvalidEmail);
    assert_eq!(
        code(&with("\"email\":\"Li.Wei@Example.com\"", "\"phone\":\"138\"")),
        RejectCode::InvalidPhone
    );
    assert_eq!(code(&with("\"email\":\"Li.Wei@Example.com\",", "")), RejectCode::ContactRequired);
    assert_eq!(code(&with("李伟", "")), RejectCode::InvalidName);
    assert_eq!(
        code(&with("\"joinedAt\":\"2024-03-01\"", "\"joinedAt\":\"2024-3-1\"")),
        RejectCode::InvalidJoinedAt
    );
    assert_eq!(code(&with("gold", "platinum")), RejectCode::UnknownTier);
    assert_eq!(code(&with("2026-02-01", "2027-02-01")), RejectCode::TierDateInFuture);
    assert_eq!(code(&with("2026-02-01", "2023-02-01")), RejectCode::TierDateBeforeJoin);
    assert_eq!(code(&with("\"points\":500", "\"points\":-5")), RejectCode::InvalidPoints);
    assert_eq!(code(&with("2026-06-01", "2026-12-01")), RejectCode::LotInFuture);
    assert_eq!(code(&with("2026-06-01", "2025-06-01")), RejectCode::LotExpired);
    assert_eq!(code(&with("\"amount\":1200000", "\"amount\":-1")), RejectCode::InvalidSpend);
    let big = format!("{{\"id\":\"x\",\"name\":\"{}\"}}", "a".repeat(MAX_LINE_BYTES));
    assert_eq!(code(&big), RejectCode::OversizeLine);
    assert_eq!(RejectCode::LotExpired.as_str(), "lot_expired");
}

#[test]
fn chunks_cut_at_line_ends_and_number_lines_from_the_file() {
    let file = b"h\na\n\nb\nc\nd";
    let (chunks, lines) = plan_chunks(file, 1, 2);
    assert_eq!(lines, 4, "the blank line is not counted");
    assert_eq!(chunks.len(), 3);
    let texts: Vec<Vec<(u64, String)>> = chunks
        .iter()
        .map(|c| {
            split_lines(&file[c.start as usize..c.end as usize], c.first_line)
                .into_iter()
                .map(|l| (l.number, String::from_utf8(l.text.to_vec()).unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            vec![(2, "a".to_string())],
            vec![(4, "b".to_string()), (5, "c".to_string())],
            vec![(6, "d".to_string())]
        ]
    );
}
