//! The local identity headers (feature `local-auth` + `LOYALTY_LOCAL_AUTH=1`) must never be
//! reachable in a deployment: SAM builds with default features and the template's
//! environment, so neither may mention them.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository")
}

#[test]
fn the_template_never_enables_local_auth() {
    let template = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    assert!(!template.contains("LOYALTY_LOCAL_AUTH"), "template.yaml must not set LOYALTY_LOCAL_AUTH");
    assert!(!template.contains("local-auth"), "template.yaml must not build with the local-auth feature");
}

#[test]
fn no_function_enables_local_auth_by_default() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
        let default_line = manifest.lines().find(|l| l.trim_start().starts_with("default")).unwrap_or("");
        assert!(!default_line.contains("local-auth"), "{manifest}");
        checked += 1;
    }
    let shared = std::fs::read_to_string(repo().join("shared/Cargo.toml")).unwrap();
    assert!(!shared.lines().any(|l| l.trim_start().starts_with("default") && l.contains("local-auth")));
    assert!(checked >= 1);
}

#[test]
fn local_auth_is_not_compiled_into_test_or_release_builds() {
    // Built without the feature, identity headers are ignored even with the variable set.
    std::env::set_var("LOYALTY_LOCAL_AUTH", "1");
    let req = loyalty_tests::request_with_headers("GET", "/members/x", None, loyalty_tests::As::Nobody, &[("x-loyalty-dev-sub", "x"), ("x-loyalty-dev-iam", "order-system")]);
    assert_eq!(loyalty::auth::caller(&req, &Default::default()), loyalty::auth::Caller::Anonymous);
    // Nor do the stand-ins for a token's verified contacts vouch for anything.
    let headers = [("x-loyalty-dev-sub", "x"), ("x-loyalty-dev-email", "a@example.com"), ("x-loyalty-dev-email-verified", "true")];
    let req = loyalty_tests::request_with_headers("POST", "/members", Some("{}"), loyalty_tests::As::Nobody, &headers);
    assert_eq!(loyalty::auth::verified_contacts(&req), Default::default());
}
