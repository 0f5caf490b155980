//! Locally the functions run exactly as built for AWS: `scripts/dev` puts a gateway
//! (scripts/gateway.py) in front of them that verifies real tokens and SigV4 signatures and
//! fills API Gateway's request context, so no function has a local-only way in. These tests
//! keep it so: no cargo feature, no identity header and no local switch in the code or the
//! template, and a request that merely claims an identity in its headers is anonymous.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_deployed_crates_have_no_features_and_no_local_way_in() {
    let mut manifests = vec![repo().join("shared/Cargo.toml"), repo().join("edge/Cargo.toml")];
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        manifests.push(entry.unwrap().path().join("Cargo.toml"));
    }
    for m in &manifests {
        let text = std::fs::read_to_string(m).unwrap();
        // A feature is a build of the code that AWS does not run: there is none.
        assert!(
            !text.contains("[features]"),
            "{}: the deployed crates have no cargo features",
            m.display()
        );
    }
    let mut files = Vec::new();
    sources(&repo().join("shared/src"), &mut files);
    sources(&repo().join("edge/src"), &mut files);
    sources(&repo().join("functions"), &mut files);
    assert!(files.len() >= 6);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in
            ["x-loyalty-dev", "LOYALTY_LOCAL_AUTH", "local-auth", "cfg(feature", "/lambda-url/"]
        {
            assert!(!text.contains(needle), "{}: mentions {needle}", f.display());
        }
    }
    let template = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    assert!(!template.contains("LOYALTY_LOCAL"), "template.yaml sets no local switch");
    let dev = std::fs::read_to_string(repo().join("scripts/dev")).unwrap();
    assert!(!dev.contains("--features"), "scripts/dev builds the functions as SAM does");
}

#[test]
fn identity_claimed_in_headers_is_anonymous() {
    // Only API Gateway's request context (the local gateway fills the same) names a caller.
    let headers = [
        ("x-loyalty-dev-sub", "x"),
        ("x-loyalty-dev-iam", "order-system"),
        ("x-amzn-oidc-identity", "x"),
    ];
    let req = loyalty_tests::request_with_headers(
        "GET",
        "/members/x",
        None,
        loyalty_tests::As::Nobody,
        &headers,
    );
    assert_eq!(loyalty::auth::caller(&req, &Default::default()), loyalty::auth::Caller::Anonymous);
    let headers = [
        ("x-loyalty-dev-sub", "x"),
        ("x-loyalty-dev-email", "a@example.com"),
        ("x-loyalty-dev-email-verified", "true"),
    ];
    let req = loyalty_tests::request_with_headers(
        "POST",
        "/members",
        Some("{}"),
        loyalty_tests::As::Nobody,
        &headers,
    );
    assert_eq!(loyalty::auth::verified_contacts(&req), Default::default());
}

mod common;

/// Every function of the workspace is deployed, and the template builds no binary that is not one.
#[test]
fn the_template_deploys_every_function_of_the_workspace() {
    let mut dirs: Vec<String> = std::fs::read_dir(repo().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    dirs.sort();
    let mut binaries: Vec<String> = common::functions().into_iter().map(|f| f.binary).collect();
    binaries.sort();
    assert_eq!(binaries, dirs);
    assert_eq!(dirs.len(), 7);
    assert!(dirs.contains(&"events-out".to_string()));
}

fn text(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// Every IAM statement of the template, with where it is.
fn statements() -> Vec<(String, serde_yaml::Value)> {
    let t = common::yaml("template.yaml");
    let mut out = Vec::new();
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap_or_default().to_string();
        let props = &r["Properties"];
        let mut docs: Vec<&serde_yaml::Value> = Vec::new();
        for p in props["Policies"].as_sequence().into_iter().flatten() {
            docs.push(if p.get("PolicyDocument").is_some() { &p["PolicyDocument"] } else { p });
        }
        if props.get("PolicyDocument").is_some() {
            docs.push(&props["PolicyDocument"]);
        }
        for d in docs {
            for s in d["Statement"].as_sequence().into_iter().flatten() {
                out.push((id.clone(), s.clone()));
            }
        }
    }
    out
}

fn actions(s: &serde_yaml::Value) -> Vec<String> {
    match &s["Action"] {
        serde_yaml::Value::String(a) => vec![a.clone()],
        serde_yaml::Value::Sequence(v) => {
            v.iter().filter_map(|a| a.as_str().map(String::from)).collect()
        }
        _ => vec![],
    }
}

/// No handler publishes: only the publisher's role may put events, and only on the program's
/// bus; it reads the table's stream and reads and writes only the KPI counters' items.
#[test]
fn only_the_publisher_puts_events_and_only_on_its_bus() {
    let all = statements();
    let putters: Vec<&(String, serde_yaml::Value)> = all
        .iter()
        .filter(|(_, s)| actions(s).iter().any(|a| a.starts_with("events:Put") || a == "events:*"))
        .collect();
    assert_eq!(putters.len(), 1, "one statement grants events:PutEvents: {putters:?}");
    let (owner, s) = putters[0];
    assert_eq!(owner, "EventsOutRole");
    assert_eq!(actions(s), ["events:PutEvents"]);
    assert!(
        text(&s["Resource"]).contains("LoyaltyEventBus.Arn"),
        "on the loyalty bus only: {}",
        text(&s["Resource"])
    );
    let t = common::yaml("template.yaml");
    let f = &t["Resources"]["EventsOutFunction"]["Properties"];
    assert!(
        text(&f["Role"]).contains("EventsOutRole.Arn"),
        "the publisher runs with its own role (SAM's stream policy reads every stream)"
    );
    assert!(f.get("Policies").is_none());
    for (owner, s) in all.iter().filter(|(o, _)| o == "EventsOutRole") {
        for a in actions(s) {
            if ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"]
                .contains(&a.as_str())
            {
                // The KPI counters: items of the KPI# partitions only.
                assert_eq!(
                    s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
                    serde_yaml::Value::Sequence(vec!["KPI#*".into()]),
                    "{owner}: {a} on the KPI items only"
                );
            } else if a.starts_with("dynamodb:") {
                assert!(
                    [
                        "dynamodb:DescribeStream",
                        "dynamodb:GetRecords",
                        "dynamodb:GetShardIterator",
                        "dynamodb:ListStreams"
                    ]
                    .contains(&a.as_str()),
                    "{owner}: {a}"
                );
                assert!(
                    text(&s["Resource"]).contains("${LoyaltyTable.Arn}/stream/*"),
                    "{owner}: streams of the table only"
                );
            }
            assert!(!a.ends_with(":*") && a != "*", "{owner}: no wildcard action ({a})");
        }
    }
    for func in common::functions().iter().filter(|f| f.binary != "events-out") {
        assert!(
            t["Resources"][func.logical_id.as_str()]["Properties"].get("Role").is_none(),
            "{} keeps SAM's role with its listed policies",
            func.logical_id
        );
    }
}

/// The table's stream is the outbox the publisher reads; webhooks are off unless asked for.
#[test]
fn the_outbox_and_the_webhooks_are_wired_as_documented() {
    let t = common::yaml("template.yaml");
    assert_eq!(
        t["Resources"]["LoyaltyTable"]["Properties"]["StreamSpecification"]["StreamViewType"],
        "NEW_AND_OLD_IMAGES"
    );
    let ev = &t["Resources"]["EventsOutFunction"]["Properties"]["Events"]["TableStream"];
    assert_eq!(ev["Type"], "DynamoDB");
    let p = &ev["Properties"];
    assert!(text(&p["Stream"]).contains("LoyaltyTable.StreamArn"));
    assert_eq!(p["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert!(text(&p["DestinationConfig"]["OnFailure"]["Destination"]).contains("EventsOutDLQ.Arn"));
    for id in [
        "WebhookConnection",
        "WebhookDestination",
        "WebhookRule",
        "WebhookRole",
        "WebhookDLQ",
        "WebhookDLQPolicy",
        "WebhookDLQAlarm",
    ] {
        assert_eq!(t["Resources"][id]["Condition"], "WebhooksOn", "{id}");
    }
    assert_eq!(t["Parameters"]["WebhookEndpoint"]["Default"], "", "webhooks are off by default");
}
