// The async state machines of the handlers nest deeply (SDK futures inside retry loops).
#![recursion_limit = "256"]

use events_out::App;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| events_out::handle_trigger(&app, trigger)).await
}
