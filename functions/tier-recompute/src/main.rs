// The async state machines of the handlers nest deeply (SDK futures inside retry loops).
#![recursion_limit = "256"]

use lambda_runtime::Error;
use tier_recompute::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| tier_recompute::handle_trigger(&app, trigger)).await
}
