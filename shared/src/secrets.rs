//! Secrets a function needs at init (the coupon-code key; any other key the same way),
//! loaded once by name and kept for the life of the process:
//!
//! 1. `<NAME>_ARN`: an AWS Secrets Manager secret. This is what a deployment uses:
//!    template.yaml creates the secret (generated, so nobody types or sees it) and grants the
//!    function `secretsmanager:GetSecretValue` on exactly that secret. It costs one
//!    GetSecretValue at init, the only network call a function makes before its first event.
//! 2. `<NAME>_FILE`: a file holding the value (trailing newline ignored). The local stack's
//!    stand-in: scripts/bootstrap.py turns `<NAME>_ARN` into `<NAME>_FILE` locally, so local
//!    runs and `scripts/bench` start without any network call.
//! 3. `<NAME>`: the value itself, for tests and benchmarks; read only when neither of the
//!    above is set, so a deployment can never fall back to a plain environment variable
//!    while it names a secret.
//!
//! The value never appears in a log or an error message.

/// A secret's bytes. `Debug` prints nothing of it.
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Where `name` is configured, by precedence (pure, for the tests and the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    SecretsManager(String),
    File(String),
    Env,
}

pub fn source(name: &str, var: impl Fn(&str) -> Option<String>) -> Option<Source> {
    let set = |k: String| var(&k).filter(|v| !v.is_empty());
    if let Some(arn) = set(format!("{name}_ARN")) {
        return Some(Source::SecretsManager(arn));
    }
    if let Some(path) = set(format!("{name}_FILE")) {
        return Some(Source::File(path));
    }
    set(name.to_string()).map(|_| Source::Env)
}

/// Loads the secret `name` from where the environment says (see the module documentation).
pub async fn load(name: &str) -> Result<Secret, String> {
    let bytes = match source(name, |k| std::env::var(k).ok()) {
        Some(Source::SecretsManager(arn)) => from_secrets_manager(name, &arn).await?,
        Some(Source::File(path)) => {
            let mut b = std::fs::read(&path).map_err(|e| format!("{name}_FILE ({path}): {e}"))?;
            while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                b.pop();
            }
            b
        }
        Some(Source::Env) => std::env::var(name).unwrap_or_default().into_bytes(),
        None => return Err(format!("{name} is not configured: set {name}_ARN (a Secrets Manager secret), {name}_FILE or {name}")),
    };
    if bytes.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(Secret(bytes))
}

async fn from_secrets_manager(name: &str, arn: &str) -> Result<Vec<u8>, String> {
    let client = aws_sdk_secretsmanager::Client::new(&crate::aws::sdk_config().await);
    let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        format!(
            "{name}_ARN: reading the secret failed: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )
    })?;
    match (out.secret_string, out.secret_binary) {
        (Some(s), _) => Ok(s.into_bytes()),
        (None, Some(b)) => Ok(b.into_inner()),
        (None, None) => Err(format!("{name}_ARN: the secret has no value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_arn_wins_then_the_file_then_the_plain_value() {
        let all =
            [("K_ARN", "arn:aws:secretsmanager:r:1:secret:k"), ("K_FILE", "/tmp/k"), ("K", "v")];
        assert_eq!(
            source("K", env(&all)),
            Some(Source::SecretsManager("arn:aws:secretsmanager:r:1:secret:k".into()))
        );
        assert_eq!(source("K", env(&all[1..])), Some(Source::File("/tmp/k".into())));
        assert_eq!(source("K", env(&all[2..])), Some(Source::Env));
        assert_eq!(
            source("K", env(&[("K_ARN", ""), ("K", "v")])),
            Some(Source::Env),
            "an empty variable is not set"
        );
        assert_eq!(source("K", env(&[("OTHER", "v")])), None);
    }

    #[tokio::test]
    async fn a_file_stand_in_is_read_without_its_newline_and_never_shown() {
        let path = std::env::temp_dir().join(format!("loyalty-secret-test-{}", std::process::id()));
        std::fs::write(&path, "local-value-0123\n").unwrap();
        std::env::set_var("LOYALTY_TEST_SECRET_FILE", &path);
        let s = load("LOYALTY_TEST_SECRET").await.unwrap();
        assert_eq!(s.expose(), b"local-value-0123");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        std::fs::remove_file(&path).unwrap();
        let err = load("LOYALTY_TEST_SECRET").await.unwrap_err();
        assert!(err.starts_with("LOYALTY_TEST_SECRET_FILE"), "{err}");
        assert!(load("LOYALTY_TEST_UNSET_SECRET").await.unwrap_err().contains("not configured"));
    }
}
