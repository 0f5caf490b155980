//! What every function builds once, at init: logging, the rules, the store, the clock.
//! Nothing here touches the network.

use crate::rules::Rules;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Structured JSON logs (tracing) without timestamps (CloudWatch adds them) or colours.
/// The runtime's span carries the request id; handlers add the member id, never contact data.
/// `RUST_LOG` takes `level` and `target=level` directives (`info,loyalty=debug`): the
/// `Targets` filter, which needs no regular-expression engine in the binary (EnvFilter's
/// span-field matching would add one, about 0.5 MB of each function).
pub fn init_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(true)
        .without_time()
        .with_ansi(false);
    let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
}

/// The clock is an input: production reads the system time, tests and replays pin it.
#[derive(Clone)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
    Shared(Arc<std::sync::Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Shared(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// What every function depends on, built once at init: the store, the rules, the clock and
/// who its callers are.
#[derive(Clone)]
pub struct Dependencies {
    pub store: Store,
    pub rules: Arc<Rules>,
    pub clock: Clock,
    /// Which IAM principals are the order system and which are operators.
    pub principals: Arc<crate::auth::Principals>,
}

impl Dependencies {
    /// From the Lambda environment. A bad rules document or a missing variable stops the
    /// function at init with a clear message rather than failing requests later.
    pub async fn from_env() -> Result<Dependencies, String> {
        let config = crate::aws::sdk_config().await;
        let store = Store::from_env(&config).await?;
        let rules = Rules::from_env().map_err(|e| e.to_string())?;
        Ok(Dependencies {
            store,
            rules: Arc::new(rules),
            clock: Clock::System,
            principals: Arc::new(crate::auth::Principals::from_env()),
        })
    }

    /// Who sent `req`, by the request context and the IAM allow-lists.
    pub fn caller(&self, req: &lambda_http::Request) -> crate::auth::Caller {
        crate::auth::caller(req, &self.principals)
    }
}
