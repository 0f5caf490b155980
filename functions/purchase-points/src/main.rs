// The async state machines of the handlers nest deeply (SDK futures inside retry loops).
#![recursion_limit = "256"]

use lambda_runtime::Error;
use purchase_points::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run_with_deadline(|trigger, deadline| {
        purchase_points::handle_trigger(&app, trigger, deadline)
    })
    .await
}
