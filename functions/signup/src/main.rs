use signup::App;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    loyalty::runtime::run(|trigger| signup::handle_trigger(&app, trigger)).await
}
