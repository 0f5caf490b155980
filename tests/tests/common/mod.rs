//! What the repository-level checks read: template.yaml (functions, their binaries and
//! events) and the workspace root. CloudFormation tags (`!Ref`, `!GetAtt`) parse as tagged
//! YAML values; only plain strings are read from them.
#![allow(dead_code)]

use serde_yaml::Value;
use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

pub fn yaml(file: &str) -> Value {
    let path = repo().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub kind: String,
    pub properties: Value,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    pub binary: String,
    pub events: Vec<Event>,
}

/// Every AWS::Serverless::Function of template.yaml with its binary and events.
pub fn functions() -> Vec<Function> {
    let t = yaml("template.yaml");
    let Some(resources) = t.get("Resources").and_then(Value::as_mapping) else {
        panic!("template.yaml has no Resources")
    };
    let mut out = Vec::new();
    for (id, r) in resources {
        if r.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or_default().to_string();
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id} has no Metadata.BuildProperties.Binary"))
            .to_string();
        let events = r["Properties"]["Events"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(name, ev)| Event {
                        name: name.as_str().unwrap_or_default().to_string(),
                        kind: ev["Type"].as_str().unwrap_or_default().to_string(),
                        properties: ev["Properties"].clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Function { logical_id, binary, events });
    }
    out
}

/// `(METHOD, /path/{param})` of every HttpApi event, with the function's binary.
pub fn http_routes() -> Vec<(String, String, String, Event)> {
    let mut routes = Vec::new();
    for f in functions() {
        for e in f.events.iter().filter(|e| e.kind == "HttpApi") {
            let method = e.properties["Method"]
                .as_str()
                .unwrap_or_else(|| panic!("{}.{} has no Method", f.logical_id, e.name))
                .to_ascii_uppercase();
            let path = e.properties["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("{}.{} has no Path", f.logical_id, e.name))
                .to_string();
            routes.push((method, path, f.binary.clone(), e.clone()));
        }
    }
    routes
}

/// Whether a concrete path (`/members/m-1`) matches a route pattern (`/members/{id}`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let q: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    p.len() == q.len()
        && p.iter()
            .zip(&q)
            .all(|(a, b)| (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b)
}
