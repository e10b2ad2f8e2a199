//! `projector`: projects events into PostgreSQL (`projector run`, the default) or rebuilds the
//! read models from the stream (`projector rebuild`).

use clap::{Parser, Subcommand};
use event_store::StreamSettings;
use sqlx::postgres::PgPoolOptions;

/// Projects JetStream events into PostgreSQL read models.
#[derive(Parser)]
#[command(name = "projector", version, about)]
struct Cli {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    nats_url: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// The event stream's name.
    #[arg(long, env = "STREAM_NAME", default_value = "TICKETING", global = true)]
    stream_name: String,
    /// The first token of every subject.
    #[arg(long, env = "SUBJECT_ROOT", default_value = "ticketing", global = true)]
    subject_root: String,
    /// The most events applied in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_MAX", default_value_t = 1000, global = true)]
    batch_max: usize,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Follow the stream (the default).
    Run,
    /// Replay the whole stream into fresh read models, then switch readers to them.
    Rebuild,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let Some(database_url) = cli.database_url.clone().filter(|u| !u.is_empty()) else {
        eprintln!("projector: bad configuration: DATABASE_URL is required");
        return std::process::ExitCode::from(2);
    };
    match run(cli, &database_url).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("projector: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, database_url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new().max_connections(4).connect(database_url).await?;
    let client =
        async_nats::ConnectOptions::new().name("projector").retry_on_initial_connect().connect(&cli.nats_url).await?;
    let settings = StreamSettings::isolated(cli.stream_name, cli.subject_root);
    // Creates the streams if this projector starts first; refuses mismatching ones.
    event_store::stream::ensure(&client, &settings).await?;
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Run => {
            let projector = projector::Projector::new(pool, client, settings, cli.batch_max);
            tokio::select! {
                result = projector.run() => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Cmd::Rebuild => {
            let report = projector::rebuild::rebuild(&pool, client, &settings, cli.batch_max, true).await?;
            eprintln!(
                "projector: rebuilt {} events into {} at {:.0} events/s; readers switched",
                report.events,
                report.schema,
                report.events_per_second()
            );
            Ok(())
        }
    }
}
