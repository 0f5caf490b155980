//! The AWS configuration every client of a function is built from. Nothing here touches the
//! network: a function builds it once, at init.

pub use aws_types::SdkConfig;

/// The AWS configuration every client is built from, by hand rather than with `aws-config`
/// (whose providers for profiles, SSO, IMDS and STS a Lambda function never uses and which
/// weigh about a megabyte in each binary): the region, the credentials Lambda puts in the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; they do
/// not change during an execution environment's life), endpoint overrides such as
/// `AWS_ENDPOINT_URL_DYNAMODB` (the local stack), and one HTTPS client, rustls with ring.
/// Reads the environment only; no network call.
pub async fn sdk_config() -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut config = SdkConfig::builder()
        .behavior_version(
            aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest(),
        )
        .http_client(http)
        .sleep_impl(
            aws_smithy_async::rt::sleep::default_async_sleep()
                .expect("tokio's sleep (the rt-tokio feature)"),
        )
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .region(
            var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .map(aws_types::region::Region::new),
        )
        .service_config(EnvEndpoints);
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials = aws_credential_types::Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        config = config.credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        );
    }
    config.build()
}

/// Per-service settings from the environment, as the SDK names them: `AWS_ENDPOINT_URL_<SERVICE>`
/// (service id in upper snake case, e.g. `DYNAMODB_STREAMS`, `SECRETS_MANAGER`), then the
/// global `AWS_ENDPOINT_URL`.
#[derive(Debug)]
struct EnvEndpoints;

impl aws_types::service_config::LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace([' ', '-'], "_");
        let var = |k: String| std::env::var(k).ok().filter(|v| !v.is_empty());
        var(format!("{}_{service}", key.env())).or_else(|| var(key.env().to_string()))
    }
}
