use lambda_runtime::Error;
use tier_recompute::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| tier_recompute::handle_trigger(&app, trigger)).await
}
