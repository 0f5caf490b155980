use lambda_http::{run, service_fn, Error};
use signup::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    loyalty::app::init_tracing();
    let app = App::from_env().await?;
    run(service_fn(|req| async {
        Ok::<_, std::convert::Infallible>(signup::handle(&app, req).await)
    }))
    .await
}
