//! openapi.yaml against the template and the handlers:
//! - every HttpApi route of template.yaml is in the document, and every operation of a
//!   function the template has is a route of that function (operations of functions not
//!   in the template yet are left for the merge of their branch); auth agrees;
//! - the example requests of `POST /members` pass the signup handler (201), its documented
//!   error examples (`x-request`) get exactly the documented status and code, and the
//!   answers have the documented fields;
//! - every problem `code` documented for a function the template has occurs in the code.

mod common;

use loyalty_tests::*;
use serde_json::{json, Value};
use signup::App;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn doc() -> Value {
    serde_json::to_value(common::yaml("openapi.yaml")).expect("openapi.yaml converts to JSON")
}

/// `(METHOD, path, operation)` of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn security_schemes(doc: &Value, op: &Value) -> BTreeSet<String> {
    let sec = op.get("security").unwrap_or(&doc["security"]);
    sec.as_array().into_iter().flatten().filter_map(Value::as_object).flat_map(|o| o.keys().cloned()).collect()
}

#[test]
fn routes_in_the_template_and_the_document_agree() {
    let doc = doc();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let ops = operations(&doc);
    let routes = common::http_routes();
    assert!(!routes.is_empty(), "template.yaml has no HttpApi route");
    let binaries: BTreeSet<String> = common::functions().into_iter().map(|f| f.binary).collect();

    for (method, path, binary, event) in &routes {
        let op = ops
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, op)| op)
            .unwrap_or_else(|| panic!("{method} {path} ({binary}) is in template.yaml but not in openapi.yaml"));
        assert_eq!(op["x-function"].as_str(), Some(binary.as_str()), "{method} {path}: x-function");
        let iam = event.properties["Auth"]["Authorizer"].as_str() == Some("AWS_IAM");
        let schemes = security_schemes(&doc, op);
        let want = if iam { "sigv4" } else { "memberJwt" };
        assert!(schemes.contains(want), "{method} {path}: the template's authorizer is {} but the document's security is {schemes:?}", if iam { "AWS_IAM" } else { "the JWT default" });
    }
    for (method, path, op) in &ops {
        let f = op["x-function"].as_str().unwrap_or_else(|| panic!("{method} {path}: no x-function"));
        assert!(op["operationId"].is_string(), "{method} {path}: no operationId");
        if binaries.contains(f) {
            assert!(
                routes.iter().any(|(m, p, b, _)| m == method && p == path && b == f),
                "{method} {path} is documented for {f}, which is in template.yaml without this route"
            );
        }
    }
}

#[test]
fn documented_error_codes_exist_in_the_code() {
    let doc = doc();
    let binaries: BTreeSet<String> = common::functions().into_iter().map(|f| f.binary).collect();
    let mut sources = String::new();
    let mut read_dir = |dir: std::path::PathBuf| {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
    };
    read_dir(common::repo().join("shared/src"));
    for b in &binaries {
        read_dir(common::repo().join("functions").join(b).join("src"));
    }
    let resolve = |v: &Value| -> Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => doc.pointer(r.trim_start_matches('#')).cloned().unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => v.clone(),
        }
    };
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if !binaries.contains(op["x-function"].as_str().unwrap_or_default()) {
            continue;
        }
        for (status, resp) in op["responses"].as_object().unwrap() {
            let resp = resolve(resp);
            let Some(media) = resp["content"].get("application/problem+json") else { continue };
            let examples = media["examples"].as_object().map(|m| m.values().map(|e| e["value"].clone()).collect()).unwrap_or_else(|| media.get("example").cloned().into_iter().collect::<Vec<_>>());
            for ex in examples {
                let code = ex["code"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}: example without code"));
                assert_eq!(ex["status"].as_u64().map(|s| s.to_string()), Some(status.clone()), "{method} {path}: example {code} has another status");
                assert_eq!(ex["type"].as_str(), Some(format!("https://loyalty.dev/problems/{}", code.replace('_', "-")).as_str()), "{method} {path}: type of {code}");
                assert!(sources.contains(&format!("\"{code}\"")), "{method} {path} {status}: code {code} occurs nowhere in shared/src or functions/*/src");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no problem example was checked");
}

/// The document's schema of `name`, with `$ref`s resolved.
fn schema<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// A small structural check: objects have their required fields and no undocumented ones,
/// recursively through properties, items, oneOf and $ref.
fn conforms(doc: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = schema(doc, s);
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        return if alts.iter().any(|a| conforms(doc, a, v, at).is_ok()) { Ok(()) } else { Err(format!("{at}: {v} matches no oneOf alternative")) };
    }
    if let Some(c) = s.get("const") {
        return if c == v { Ok(()) } else { Err(format!("{at}: {v} is not {c}")) };
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let ok_type = types.is_empty()
        || types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
    if !ok_type {
        return Err(format!("{at}: {v} is not of type {types:?}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(props), Some(obj)) = (s.get("properties").and_then(Value::as_object), v.as_object()) {
        for r in s["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                return Err(format!("{at}: required field {r} missing in {v}"));
            }
        }
        for (k, val) in obj {
            let p = props.get(k).ok_or_else(|| format!("{at}: field {k} is not documented"))?;
            conforms(doc, p, val, &format!("{at}.{k}"))?;
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            conforms(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn unique_contacts(mut body: Value) -> Value {
    // The examples' addresses are fixed; make each run's unique so that a reused stack never
    // answers email_taken. The shapes (what validation looks at) stay the same.
    let tag = unique("x").to_lowercase().replace(['-', '_'], "");
    if let Some(e) = body.get("email").and_then(Value::as_str) {
        body["email"] = json!(format!("{tag}.{e}"));
    }
    if let Some(p) = body.get("phone").and_then(Value::as_str) {
        let digits: u64 = tag.bytes().fold(7, |a, b| a.wrapping_mul(131).wrapping_add(b as u64));
        let keep = &p[..p.len() - 6];
        body["phone"] = json!(format!("{keep}{:06}", digits % 1_000_000));
    }
    body
}

#[tokio::test]
async fn signup_examples_pass_the_handler_and_errors_are_as_documented() {
    let doc = doc();
    let h = harness().await;
    let app = App { env: h.env.clone(), codes: code_key() };
    let op = &doc["paths"]["/members"]["post"];
    let examples = op["requestBody"]["content"]["application/json"]["examples"].as_object().expect("POST /members has request examples");
    assert!(!examples.is_empty());
    let today = loyalty::calendar::program_date(app.env.rules.time_zone, chrono::Utc::now());
    for (name, ex) in examples {
        let body = ex["value"].clone();
        // Exactly as documented: the request type takes it and validation accepts it.
        let parsed: loyalty::member::SignupRequest = serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("example {name}: {e}"));
        parsed.validate(today).unwrap_or_else(|e| panic!("example {name} fails validation: {e}"));
        // Through the handler.
        let id = unique("openapi");
        let req = request("POST", "/members", Some(&unique_contacts(body).to_string()), As::Member(id.clone()));
        let (status, answer_body, _) = answer(signup::handle(&app, req).await);
        assert_eq!(status, 201, "example {name}: {answer_body}");
        conforms(&doc, &op["responses"]["201"]["content"]["application/json"]["schema"], &answer_body, "201").unwrap_or_else(|e| panic!("example {name}: {e}"));
        // And the profile the member now has is as documented.
        let get = &doc["paths"]["/members/{id}"]["get"];
        let (status, profile, _) = answer(signup::handle(&app, request("GET", &format!("/members/{id}"), None, As::Member(id.clone()))).await);
        assert_eq!(status, 200, "{profile}");
        conforms(&doc, &get["responses"]["200"]["content"]["application/json"]["schema"], &profile, "profile").unwrap_or_else(|e| panic!("example {name}: {e}"));
    }

    let mut checked = 0;
    for (status, resp) in op["responses"].as_object().unwrap() {
        let resp = schema(&doc, resp);
        for (name, ex) in resp["content"]["application/problem+json"]["examples"].as_object().into_iter().flatten() {
            let Some(req_body) = ex.get("x-request") else { continue };
            let (got, body, ct) = answer(signup::handle(&app, request("POST", "/members", Some(&req_body.to_string()), As::Member(unique("openapi")))).await);
            let want_code = ex["value"]["code"].as_str().unwrap();
            assert_problem(got, &body, &ct, status.parse().unwrap(), want_code);
            assert_eq!(body["detail"], ex["value"]["detail"], "example {name}: detail");
            assert_eq!(body["title"], ex["value"]["title"], "example {name}: title");
            assert_eq!(body["type"], ex["value"]["type"], "example {name}: type");
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} error examples with x-request");

    // The documented conflicts, reproduced.
    let conflicts = &op["responses"]["409"]["content"]["application/problem+json"]["examples"];
    let first = unique_contacts(json!({"email": "dup@example.com", "phone": "+8613800138000", "name": "Dup"}));
    let id = unique("openapi");
    let join = |sub: String, body: Value| signup::handle(&app, request("POST", "/members", Some(&body.to_string()), As::Member(sub)));
    assert_eq!(answer(join(id.clone(), first.clone()).await).0, 201);
    for (body, ex) in [
        (json!({"email": first["email"], "name": "Other"}), "emailTaken"),
        (json!({"phone": first["phone"], "name": "Other"}), "phoneTaken"),
    ] {
        let (s, b, ct) = answer(join(unique("openapi"), body).await);
        assert_problem(s, &b, &ct, 409, conflicts[ex]["value"]["code"].as_str().unwrap());
    }
    let (s, b, ct) = answer(join(id, json!({"email": "someone.else@example.com", "name": "Again"})).await);
    assert_problem(s, &b, &ct, 409, conflicts["alreadyMember"]["value"]["code"].as_str().unwrap());
}
