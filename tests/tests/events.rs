//! Every sample in events/ parses into the aws_lambda_events type its function takes, the
//! way the runtime reads it (`loyalty::runtime::classify`), and reaches a trigger that the
//! function has in template.yaml. Generic over the folder: a new sample is checked as soon
//! as it is added. Files are named `<function binary>-<what>.json`.

mod common;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use loyalty::runtime::{classify, Trigger};
use serde_json::Value;

fn samples() -> Vec<(String, Value)> {
    let dir = common::repo().join("events");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("events/{name} is not JSON: {e}"));
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_sample_parses_into_its_event_type_and_reaches_its_function() {
    let samples = samples();
    assert!(!samples.is_empty(), "events/ has no samples");
    let functions = common::functions();
    let routes = common::http_routes();
    for (name, v) in &samples {
        // The function: the longest binary name the file name starts with, then '-'.
        let f = functions
            .iter()
            .filter(|f| name.starts_with(&format!("{}-", f.binary)))
            .max_by_key(|f| f.binary.len())
            .unwrap_or_else(|| panic!("events/{name}: name it <function binary>-<what>.json after a function of template.yaml"));
        let has = |kind: &[&str]| f.events.iter().any(|e| kind.contains(&e.kind.as_str()));
        if v.get("requestContext").and_then(|c| c.get("http")).is_some() {
            let typed: ApiGatewayV2httpRequest = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("events/{name}: not an HTTP API (v2) request: {e}"));
            let method = typed.request_context.http.method.as_str().to_string();
            let path = typed.raw_path.clone().unwrap_or_default();
            assert!(
                routes.iter().any(|(m, p, bin, _)| *m == method
                    && common::path_matches(p, &path)
                    && *bin == f.binary),
                "events/{name}: {method} {path} is not a route of {} in template.yaml",
                f.logical_id
            );
            assert!(
                matches!(classify(v.clone()), Ok(Trigger::Http(_))),
                "events/{name}: the runtime does not read it as HTTP"
            );
        } else if v["Records"][0]["eventSource"] == "aws:dynamodb" {
            let typed: StreamEvent = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("events/{name}: not a DynamoDB stream event: {e}"));
            for r in &typed.records {
                assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"), "events/{name}");
                assert!(
                    r.change.sequence_number.is_some() && !r.change.keys.is_empty(),
                    "events/{name}: records need SequenceNumber and Keys"
                );
                loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r))
                    .unwrap_or_else(|e| panic!("events/{name}: a record does not map: {e}"));
            }
            assert!(
                has(&["DynamoDB"]),
                "events/{name}: {} has no DynamoDB event in template.yaml",
                f.logical_id
            );
            assert!(
                matches!(classify(v.clone()), Ok(Trigger::Stream(_))),
                "events/{name}: the runtime does not read it as a stream batch"
            );
        } else if v.get("Records").is_some() {
            let typed: SqsEvent = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("events/{name}: not an SQS event: {e}"));
            assert!(
                !typed.records.is_empty(),
                "events/{name}: an SQS sample needs at least one record"
            );
            for r in &typed.records {
                assert_eq!(r.event_source.as_deref(), Some("aws:sqs"), "events/{name}");
                assert!(
                    r.message_id.is_some() && r.body.is_some(),
                    "events/{name}: records need messageId and body"
                );
            }
            assert!(
                has(&["SQS"]),
                "events/{name}: {} has no SQS event in template.yaml",
                f.logical_id
            );
            assert!(
                matches!(classify(v.clone()), Ok(Trigger::Sqs(_))),
                "events/{name}: the runtime does not read it as SQS"
            );
        } else if v.get("detail-type").is_some() {
            let _typed: EventBridgeEvent<Value> = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("events/{name}: not an EventBridge event: {e}"));
            assert!(
                has(&["Schedule", "ScheduleV2"]),
                "events/{name}: {} has no schedule in template.yaml",
                f.logical_id
            );
            assert!(
                matches!(classify(v.clone()), Ok(Trigger::Schedule(_))),
                "events/{name}: the runtime does not read it as a schedule"
            );
        } else {
            panic!("events/{name}: neither an HTTP API request (requestContext.http), an SQS or DynamoDB stream batch (Records) nor an EventBridge event (detail-type)");
        }
    }
}

#[test]
fn every_function_has_a_sample_of_each_kind_of_trigger_it_has() {
    let names: Vec<String> = samples().into_iter().map(|(n, _)| n).collect();
    for f in common::functions() {
        for kind in ["SQS", "DynamoDB"] {
            if f.events.iter().any(|e| e.kind == kind) {
                let wanted = |v: &Value| {
                    if kind == "SQS" {
                        v["Records"][0]["eventSource"] == "aws:sqs"
                    } else {
                        v["Records"][0]["eventSource"] == "aws:dynamodb"
                    }
                };
                let found = samples()
                    .into_iter()
                    .any(|(n, v)| n.starts_with(&format!("{}-", f.binary)) && wanted(&v));
                assert!(
                    found,
                    "{} has a {kind} event but events/ has no sample of it (have: {names:?})",
                    f.logical_id
                );
            }
        }
    }
}

#[test]
fn route_patterns_match_like_api_gateway() {
    assert!(common::path_matches("/members/{id}", "/members/demo-member-1"));
    assert!(!common::path_matches("/members/{id}", "/members"));
    assert!(!common::path_matches("/members/{id}", "/members/a/ledger"));
    assert!(common::path_matches("/members", "/members/"));
}
