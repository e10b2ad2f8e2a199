//! `command-service`: see the library docs.

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs (LOG_FORMAT) and traces (OTEL_EXPORTER_OTLP_ENDPOINT), flushed when this returns.
    let _telemetry = service_kit::telemetry::init_or_exit("command-service");
    let config = service_kit::parse_or_exit::<command_service::config::Config>("command-service");
    if let Err(problem) = config.validate() {
        eprintln!("command-service: bad configuration: {problem}");
        return std::process::ExitCode::from(2);
    }
    match command_service::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("command-service: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
