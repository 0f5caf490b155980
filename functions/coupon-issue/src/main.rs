#![recursion_limit = "256"]

use coupon_issue::App;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| coupon_issue::handle_trigger(&app, trigger)).await
}
