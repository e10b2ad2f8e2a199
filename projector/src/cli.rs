//! The `projector` command line: `projector run` (the default) follows the stream,
//! `projector rebuild` replays it into fresh read models. `ticketing projector` is the same.

use clap::{Parser, Subcommand};
use event_store::StreamSettings;
use sqlx::postgres::PgPoolOptions;

/// Projects JetStream events into PostgreSQL read models.
#[derive(Debug, Clone, Parser)]
#[command(name = "projector", version, about)]
pub struct Cli {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats_url: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// The event stream's name.
    #[arg(long, env = "STREAM_NAME", default_value = "TICKETING", global = true)]
    pub stream_name: String,
    /// The first token of every subject.
    #[arg(long, env = "SUBJECT_ROOT", default_value = "ticketing", global = true)]
    pub subject_root: String,
    /// JetStream replicas of the streams, as command-service has them (3 in a cluster).
    #[arg(long, env = "STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5), global = true)]
    pub stream_replicas: u64,
    /// Where to answer health probes (`/healthz`, `/readyz`: NATS and PostgreSQL reachable);
    /// unset: no health endpoint.
    #[arg(long, env = "HEALTH_ADDR", global = true)]
    pub health_addr: Option<std::net::SocketAddr>,
    /// The most events applied in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_MAX", default_value_t = 1000, global = true)]
    pub batch_max: usize,
    /// Accept the well-known passwords of the dev overlay in `NATS_URL` and `DATABASE_URL`; never
    /// in production.
    #[arg(long, env = "ALLOW_DEV_SECRETS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_dev_secrets: bool,
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// What the projector does.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Cmd {
    /// Follow the stream (the default).
    Run,
    /// Replay the whole stream into fresh read models, then switch readers to them.
    Rebuild,
}

/// Runs the projector as `cli` says, until SIGTERM or Ctrl-C (`run`) or to the end (`rebuild`).
///
/// # Errors
/// A missing `DATABASE_URL`, an unreachable server, or a failure while projecting.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Installed before anything records (see `service_kit::metrics`).
    service_kit::metrics();
    let Some(database_url) = cli.database_url.clone().filter(|u| !u.is_empty()) else {
        anyhow::bail!("bad configuration: DATABASE_URL is required");
    };
    event_store::refuse_dev_secrets(
        cli.allow_dev_secrets,
        &[("NATS_URL", &cli.nats_url), ("DATABASE_URL", &database_url)],
    )
    .map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
    let pool = PgPoolOptions::new().max_connections(4).connect(&database_url).await?;
    let (options, servers) = event_store::connect_options(&cli.nats_url, event_store::auth::Role::Projector.user())?;
    let client = options.retry_on_initial_connect().connect(servers).await?;
    let mut settings = StreamSettings::isolated(cli.stream_name, cli.subject_root);
    settings.replicas = usize::try_from(cli.stream_replicas).unwrap_or(1);
    let projector = crate::Projector::new(pool.clone(), client.clone(), settings.clone(), cli.batch_max);
    if let Some(addr) = cli.health_addr {
        let (nats, database) = (client.clone(), pool.clone());
        let ready: service_kit::Check = std::sync::Arc::new(move || {
            let (client, pool) = (nats.clone(), database.clone());
            Box::pin(async move {
                client.connection_state() == async_nats::connection::State::Connected
                    && sqlx::query("select 1").execute(&pool).await.is_ok()
            })
        });
        let stats = projector.stats().clone();
        let live: service_kit::Check = std::sync::Arc::new(move || {
            let wedged = stats.wedged.load(std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move { !wedged })
        });
        service_kit::serve_probes(addr, service_kit::Probes { live, ready })
            .await
            .map_err(|e| anyhow::anyhow!("binding HEALTH_ADDR {addr}: {e}"))?;
    }
    // The command service creates the streams; a projector may only read them.
    event_store::stream::wait_for(&client, &settings).await?;
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Run => {
            tokio::spawn(projector.clone().watch());
            tokio::select! {
                result = projector.run() => Ok(result?),
                () = service_kit::shutdown_signal() => Ok(()),
            }
        }
        Cmd::Rebuild => {
            let report = crate::rebuild::rebuild(&pool, client, &settings, cli.batch_max, true).await?;
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
