//! `query-service`: see the library docs.

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs (LOG_FORMAT) and traces (OTEL_EXPORTER_OTLP_ENDPOINT), flushed when this returns.
    let _telemetry = service_kit::telemetry::init_or_exit("query-service");
    let config = service_kit::parse_or_exit::<query_service::config::Config>("query-service");
    if let Err(problem) = config.validate() {
        eprintln!("query-service: bad configuration: {problem}");
        return std::process::ExitCode::from(2);
    }
    match query_service::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("query-service: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
