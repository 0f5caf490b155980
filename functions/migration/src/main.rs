#![recursion_limit = "256"]

use lambda_runtime::Error;
use migration::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run_with_deadline(|trigger, deadline| {
        migration::handle_trigger(&app, trigger, deadline)
    })
    .await
}
