//! `projector`: see [`projector::cli`].

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match projector::cli::run(service_kit::parse_or_exit::<projector::cli::Cli>("projector")).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("projector: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
