//! The deployed path of `loyalty::secrets`: `<NAME>_ARN` read with one GetSecretValue, here
//! against the local stack's moto server (which serves the Secrets Manager API too), and the
//! coupon-code key built from it as the functions build it at init.

use aws_sdk_secretsmanager::primitives::Blob;
use loyalty_tests::unique;

/// Points the SDK's Secrets Manager endpoint at the local moto server (the SQS endpoint).
async fn client() -> aws_sdk_secretsmanager::Client {
    let moto = std::env::var("AWS_ENDPOINT_URL_SQS")
        .expect("AWS_ENDPOINT_URL_SQS is not set: run the tests with scripts/test");
    // One test per process (nextest): setting the variable touches no other test.
    std::env::set_var("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto);
    aws_sdk_secretsmanager::Client::new(&loyalty::aws::sdk_config().await)
}

#[tokio::test]
async fn a_secret_named_by_arn_is_read_once_and_makes_the_coupon_key() {
    let sm = client().await;
    let value = "generated-by-secrets-manager-0123456789abcdefghijkl";
    let arn = sm
        .create_secret()
        .name(unique("coupon-code"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let name = format!("LOYALTY_TEST_{}", std::process::id());
    std::env::set_var(format!("{name}_ARN"), &arn);
    // A plain value beside the ARN is ignored: a deployment that names a secret never falls back.
    std::env::set_var(&name, "a-plain-value-that-must-not-be-used-0000000000");
    assert_eq!(loyalty::secrets::load(&name).await.unwrap().expose(), value.as_bytes());

    std::env::set_var("COUPON_CODE_SECRET_ARN", &arn);
    let key = loyalty::coupon::CodeKey::from_env().await.unwrap();
    assert_eq!(
        key.code("m-1", "welcome", 0),
        loyalty::coupon::CodeKey::new(value.as_bytes()).unwrap().code("m-1", "welcome", 0)
    );
}

#[tokio::test]
async fn a_binary_secret_is_read_as_bytes_and_a_missing_one_stops_init_with_its_name() {
    let sm = client().await;
    let bytes: Vec<u8> = (0u8..48).collect();
    let arn = sm
        .create_secret()
        .name(unique("binary"))
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    std::env::set_var("LOYALTY_TEST_BIN_ARN", &arn);
    assert_eq!(loyalty::secrets::load("LOYALTY_TEST_BIN").await.unwrap().expose(), &bytes[..]);

    std::env::set_var("LOYALTY_TEST_GONE_ARN", arn.replace("binary", "never-created"));
    let err = loyalty::secrets::load("LOYALTY_TEST_GONE").await.unwrap_err();
    assert!(err.starts_with("LOYALTY_TEST_GONE_ARN: reading the secret failed"), "{err}");
}
