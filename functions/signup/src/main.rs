// The async state machines of the handlers nest deeply (SDK futures inside retry loops).
#![recursion_limit = "256"]

use signup::App;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| signup::handle_trigger(&app, trigger)).await
}
