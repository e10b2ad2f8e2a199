//! `projector`: see [`projector::cli`].

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs (LOG_FORMAT) and traces (OTEL_EXPORTER_OTLP_ENDPOINT), flushed when this returns.
    let _telemetry = service_kit::telemetry::init_or_exit("projector");
    match projector::cli::run(service_kit::parse_or_exit::<projector::cli::Cli>("projector")).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("projector: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
