//! `ticketing up`: runs every component of the platform in one process tree. `ticketing seed`
//! fills a running system with demo data; `ticketing command-service`, `ticketing projector` and
//! `ticketing query-service` run one component alone, for scale-out from one binary (the same as
//! the components' own binaries).
//!
//! With `NATS_URL` unset it installs (without root) and starts its own pinned `nats-server`, with
//! its data under `.ticketing/nats` in the working directory, kept across restarts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use event_store::EventStore;
use event_store::auth::Role;
use tokio::process::{Child, Command};

use ticketing::system::{Connections, Settings, System};
use ticketing::{postgres, say, seed, supervise};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers, and
/// glibc's allocator took a fifth of the gateway's time under load (README, "Benchmarks").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The event-sourced ticketing platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything and wait for Ctrl-C.
    Up(UpArgs),
    /// Fill a running system with demo users, tickets, holds and sales (through its API).
    Seed(SeedArgs),
    /// Run only the command service (scale-out: any number of replicas).
    CommandService(command_service::config::Config),
    /// Run only the projector (`run`, or `rebuild`); replicas elect one leader.
    Projector(projector::cli::Cli),
    /// Run only the GraphQL gateway and web app (scale-out: any number of replicas).
    QueryService(query_service::config::Config),
    /// Ask a component's `/readyz` and exit 0 when it answers 200 (container healthchecks: the
    /// image has no curl).
    Probe(ProbeArgs),
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// What to ask; by default `/readyz` on `HEALTH_ADDR` when set (command-service, projector),
    /// else on `HTTP_ADDR` (the gateway), with a wildcard host asked on loopback.
    url: Option<String>,
}

/// The URL `ticketing probe` asks when given none.
fn probe_url(health_addr: Option<&str>, http_addr: Option<&str>) -> String {
    let addr =
        health_addr.filter(|a| !a.is_empty()).or(http_addr.filter(|a| !a.is_empty())).unwrap_or("127.0.0.1:8080");
    let addr = match addr.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => addr.to_owned(),
    };
    format!("http://{addr}/readyz")
}

async fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(|| {
        probe_url(std::env::var("HEALTH_ADDR").ok().as_deref(), std::env::var("HTTP_ADDR").ok().as_deref())
    });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let response = client.get(&url).send().await.with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {}", body.trim());
    Ok(())
}

#[derive(clap::Args)]
struct SeedArgs {
    /// The running system's HTTP address.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: String,
    /// How many demo users (demo1@example.com, …; password `demo-password`).
    #[arg(long, default_value_t = 6)]
    users: usize,
}

#[derive(clap::Args)]
struct UpArgs {
    /// NATS server to use; when unset, `ticketing up` runs its own.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Port of the NATS server `ticketing up` runs itself (4222 is often taken by an older one).
    #[arg(long, env = "TICKETING_NATS_PORT", default_value_t = 14222)]
    nats_port: u16,
    /// PostgreSQL for the read models; when unset, `ticketing up` runs its own.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Port of the PostgreSQL server `ticketing up` runs itself.
    #[arg(long, env = "TICKETING_PG_PORT", default_value_t = 15432)]
    pg_port: u16,
    /// Where `ticketing up` keeps its data and tools.
    #[arg(long, env = "TICKETING_HOME", default_value = ".ticketing")]
    home: PathBuf,
    /// The most events the projector applies in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_MAX", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    projector_batch_max: u64,
    /// Where to answer probes (`/healthz`, `/readyz` as the gateway's, `/metrics`) besides
    /// `HTTP_ADDR`; unset: only there.
    #[arg(long, env = "HEALTH_ADDR")]
    health_addr: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Installed before anything records (see `service_kit::metrics`).
    service_kit::metrics();
    // A bad setting is one line naming it (clap's own message, without its usage lines); help
    // and version print as usual.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if service_kit::is_help(&error) => error.exit(),
        Err(error) => {
            say(&format!("bad configuration: {}", service_kit::one_line(&error)));
            return std::process::ExitCode::from(2);
        }
    };
    // Logs (LOG_FORMAT) and traces (OTEL_EXPORTER_OTLP_ENDPOINT) as the component it runs,
    // flushed when this returns.
    // A probe (a container healthcheck every few seconds) does without.
    if let Cmd::Probe(args) = cli.command {
        return match probe(args).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                say(&format!("{error:#}"));
                std::process::ExitCode::FAILURE
            }
        };
    }
    let (component, quiet) = match &cli.command {
        Cmd::CommandService(_) => ("command-service", "info,sqlx=warn"),
        Cmd::Projector(_) => ("projector", "info,sqlx=warn"),
        Cmd::QueryService(_) => ("query-service", "info,sqlx=warn"),
        // `up` and `seed` say their own steps; of the logs, only errors unless RUST_LOG asks.
        Cmd::Up(_) | Cmd::Seed(_) | Cmd::Probe(_) => ("ticketing", "error"),
    };
    let _telemetry = match service_kit::telemetry::init_with(component, quiet) {
        Ok(telemetry) => telemetry,
        Err(problem) => {
            say(&format!("bad configuration: {problem}"));
            return std::process::ExitCode::from(2);
        }
    };
    // One line with the whole cause (no backtrace, whatever RUST_BACKTRACE says).
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let said = format!("{error:#}");
            say(&said);
            // A bad setting exits as clap's own errors do (2); anything else with 1.
            if said.starts_with("bad configuration") {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Up(args) => up(args).await,
        Cmd::CommandService(config) => {
            config.validate().map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
            command_service::run(config).await
        }
        Cmd::Projector(cli) => projector::cli::run(cli).await,
        Cmd::QueryService(config) => {
            config.validate().map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
            query_service::run(config).await
        }
        Cmd::Probe(args) => probe(args).await,
        Cmd::Seed(args) => {
            let base =
                if args.http_addr.contains("://") { args.http_addr } else { format!("http://{}", args.http_addr) };
            let seeded = seed::seed(&base, args.users).await?;
            say(&format!(
                "seeded {base}: {} users, {} tickets ({} sold, {} on hold, {} settling), {} events ({} orders paid, {} on hold); sign in as demo1@example.com / {}",
                seeded.users,
                seeded.tickets,
                seeded.sold,
                seeded.held,
                seeded.settling,
                seeded.events,
                seeded.event_orders_sold,
                seeded.event_orders_held,
                seed::PASSWORD
            ));
            Ok(())
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // One `up` per home: held until this process ends, however it ends.
    let _home_lock = supervise::lock_home(&args.home)?;
    // Each component is configured from the same environment as when it runs alone; the stream
    // settings (STREAM_NAME, SUBJECT_ROOT) are the command service's, and so are its users'
    // permissions.
    let mut commands = command_service::config::Config::try_parse_from(["command-service"])
        .map_err(|e| anyhow::anyhow!("bad configuration: {}", service_kit::one_line(&e)))?;
    let mut gateway = query_service::config::Config::try_parse_from(["query-service"])
        .map_err(|e| anyhow::anyhow!("bad configuration: {}", service_kit::one_line(&e)))?;
    let stream_settings = commands.stream_settings();
    // Bound first: a taken address stops `up` before it starts anything.
    let health = match args.health_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding HEALTH_ADDR {addr}: {e}"))?,
        ),
        None => None,
    };
    let mut own_nats = None;
    // Each component connects as its own NATS user. With NATS_URL given, all three use it: it
    // must name a user allowed everything (or a server without authentication).
    let urls: [String; 3] = match args.nats_url.filter(|u| !u.is_empty()) {
        Some(url) => [url.clone(), url.clone(), url],
        None => {
            let binary = nats_server(&args.home).await?;
            let [commands, projector, gateway] = Role::ALL;
            let secret = |role: Role| local_secret(&args.home, &format!("nats-{}", role.user()));
            let passwords = [secret(commands)?, secret(projector)?, secret(gateway)?];
            let operator = local_secret(&args.home, "nats-operator")?;
            let conf = args.home.join("nats.conf");
            let authorization =
                event_store::auth::authorization(&stream_settings, &passwords, &[("operator", &operator)]);
            write_private(&conf, &authorization)?;
            let nats = OwnNats {
                binary,
                store: args.home.join("nats"),
                conf,
                port: args.nats_port,
                pid_file: args.home.join("nats.pid"),
            };
            let child = start_nats(&nats).await?;
            own_nats = Some(keep_nats(child, nats));
            say(&format!(
                "NATS requires credentials: each component has its own user; tools may connect as \
                 operator with the password in {}",
                args.home.join("nats-operator").display()
            ));
            let url = format!("nats://127.0.0.1:{}", args.nats_port);
            [0, 1, 2].map(|n| event_store::auth::url_with_credentials(&url, Role::ALL[n].user(), &passwords[n]))
        }
    };
    let [commands_url, projector_url, gateway_url] = urls;
    let connect = |url: String, role: Role| async move {
        let (options, servers) = event_store::connect_options(&url, role.user())?;
        options.connect(servers).await.with_context(|| format!("connecting to NATS as {}", role.user()))
    };
    let client = connect(commands_url.clone(), Role::CommandService).await?;
    let store = EventStore::connect(client.clone(), &stream_settings).await?;
    say(&format!("NATS JetStream ready: streams {} and {}", store.stream(), store.settings().timers_name()));

    commands.nats_url.clone_from(&commands_url);
    if commands.payment_provider == command_service::config::ProviderKind::Fake
        && commands.fake_bank_webhook_url.is_none()
    {
        // The fake provider's pretend bank settles "asynchronous" test payments through our own
        // webhook route, signed like a real provider's.
        if commands.payment_webhook_secret.is_empty() {
            commands.payment_webhook_secret = local_secret(&args.home, "webhook-secret")?;
        }
        let http_addr = std::env::var("HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
        commands.fake_bank_webhook_url = Some(format!("http://{http_addr}/webhooks/payments"));
    }
    commands.validate().map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
    let mut own_postgres = None;
    let database_url = match args.database_url.clone().filter(|u| !u.is_empty()) {
        Some(url) => url,
        None => {
            let data = args.home.join("postgres");
            let pg = postgres::start(&data, args.pg_port)
                .await
                .context("could not start PostgreSQL (install it, or set DATABASE_URL to one that runs)")?;
            let url = pg.url.clone();
            own_postgres = Some(keep_postgres(pg, data, args.pg_port));
            url
        }
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with(query_service::db::connect_options(&database_url)?)
        .await
        .with_context(|| "connecting to PostgreSQL at DATABASE_URL")?;
    gateway.database_url = database_url;
    gateway.nats_url.clone_from(&gateway_url);
    if gateway.jwt_secret.is_empty() {
        gateway.jwt_secret = local_secret(&args.home, "jwt-secret")?;
    }
    if std::env::var_os("COOKIE_SECURE").is_none() {
        // `ticketing up` serves plain HTTP: a `Secure` cookie would never come back.
        gateway.cookie_secure = false;
    }
    if std::env::var_os("WEB_DIR").is_none() {
        match build_web().await {
            Ok(dir) => gateway.web_dir = dir,
            Err(error) => say(&format!("web app not built ({error:#}); the API still runs")),
        }
    }
    gateway.validate().map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
    let listener = tokio::net::TcpListener::bind(gateway.http_addr)
        .await
        .with_context(|| format!("binding HTTP_ADDR {}", gateway.http_addr))?;
    let connections = Connections {
        commands: client,
        projector: connect(projector_url, Role::Projector).await?,
        gateway: connect(gateway_url.clone(), Role::Gateway).await?,
        pool,
    };
    let projector_batch_max = usize::try_from(args.projector_batch_max).unwrap_or(1000);
    let settings = Settings { commands, gateway, projector_batch_max };
    let mut system = System::start(settings, connections).await?;
    if let Some(listener) = health {
        let gateway = system.gateway.clone();
        let ready: service_kit::Check = std::sync::Arc::new(move || {
            let gateway = gateway.clone();
            Box::pin(async move { query_service::readiness(&gateway).await.is_ok() })
        });
        let probes = service_kit::Probes { live: service_kit::always(), ready };
        let addr = service_kit::serve_probes_on(listener, probes)?;
        say(&format!("probes and metrics on http://{addr}/readyz and /metrics"));
    }
    say("command-service answering on ticketing.cmd.> (queue group command-service)");
    say(&format!(
        "projector writing read models to DATABASE_URL, at most {projector_batch_max} events per transaction"
    ));
    let addr = listener.local_addr()?;
    say(&format!("GraphQL API on http://{addr}/graphql (webhook: /webhooks/payments)"));
    say(&format!("open http://{addr}/ in a browser"));
    let serving = system.serve(listener);
    say(&format!("ready in {:.1} s; press Ctrl-C to stop", started.elapsed().as_secs_f64()));
    tokio::select! {
        result = serving => say(&format!("GraphQL API stopped: {result:?}")),
        why = system.tasks.first_to_stop() => say(&why),
        () = service_kit::shutdown_signal() => say("stopping"),
    }
    drop(system);
    if let Some(pg) = own_postgres {
        say("stopping PostgreSQL");
        pg.stop().await;
    }
    if let Some(nats) = own_nats {
        say("stopping NATS");
        nats.stop().await;
    }
    Ok(())
}

/// Builds the web app with `scripts/build-web` of this checkout (the working directory's, else
/// the one this binary was built from) when it is missing or stale; returns its directory.
async fn build_web() -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    let checkout = [std::env::current_dir().ok(), built_from]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("scripts/build-web").is_file())
        .context("no checkout with scripts/build-web here; set WEB_DIR to a built bundle")?;
    say("building the web app when missing or stale (scripts/build-web)");
    let status = Command::new("bash")
        .arg(checkout.join("scripts/build-web"))
        .current_dir(&checkout)
        .stdin(Stdio::null())
        .status()
        .await
        .context("running scripts/build-web")?;
    if !status.success() {
        bail!("scripts/build-web failed ({status})");
    }
    Ok(checkout.join("web/dist"))
}

/// A secret for a local run (`jwt-secret`, `webhook-secret`), made once and kept in
/// `<home>/<name>` so sessions survive restarts. Production sets `JWT_SECRET` and
/// `PAYMENT_WEBHOOK_SECRET`.
fn local_secret(home: &Path, name: &str) -> anyhow::Result<String> {
    let path = home.join(name);
    if let Ok(secret) = std::fs::read_to_string(&path)
        && secret.trim().len() >= 32
    {
        return Ok(secret.trim().to_owned());
    }
    std::fs::create_dir_all(home)?;
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    write_private(&path, &secret)?;
    Ok(secret)
}

/// Writes a file only its owner may read (secrets, and the NATS configuration that holds them).
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // A file made by an earlier version may have been readable by others.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Finds the pinned nats-server, installing it into `<home>/tools` when missing.
async fn nats_server(home: &Path) -> anyhow::Result<PathBuf> {
    let pinned = home.join("tools/bin/nats-server");
    if pinned.exists() {
        return Ok(pinned);
    }
    let script = Path::new("scripts/install-nats.sh");
    if script.exists() {
        say("installing the pinned nats-server 2.15.1 into .ticketing/tools");
        let status = Command::new("bash").arg(script).env("TICKETING_TOOLS", home.join("tools")).status().await?;
        if status.success() && pinned.exists() {
            return Ok(pinned);
        }
    }
    bail!(
        "no nats-server found: run scripts/install-nats.sh from the repository root \
         (it needs python3 with venv: apt-get install python3-venv), or set NATS_URL"
    )
}

/// The NATS server `up` runs itself: where it is, its data and settings.
#[derive(Clone)]
struct OwnNats {
    binary: PathBuf,
    store: PathBuf,
    conf: PathBuf,
    port: u16,
    pid_file: PathBuf,
}

async fn start_nats(nats: &OwnNats) -> anyhow::Result<Child> {
    let OwnNats { binary, store, conf, port, pid_file } = nats;
    let port = *port;
    std::fs::create_dir_all(store).with_context(|| format!("creating {}", store.display()))?;
    let store = std::path::absolute(store)?;
    // One an earlier `up` of this home left running is stopped first (it would hold the port).
    supervise::stop_leftover("NATS server", pid_file, &store, "TERM").await?;
    if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        bail!(
            "port {port} is already taken: stop what listens there, set TICKETING_NATS_PORT, or set NATS_URL to use that server"
        );
    }
    say(&format!("starting NATS on 127.0.0.1:{port}, data in {}", store.display()));
    let mut child = supervise::dying_with_us(binary, None)
        .arg("-c")
        .arg(conf)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    if let Some(pid) = child.id() {
        write_private(pid_file, &format!("{pid}\n"))?;
    }
    // Long enough for a big store's recovery after a crash; a server that exits fails at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited at start ({status}); is port {port} taken? set TICKETING_NATS_PORT");
        }
        if Instant::now() > deadline {
            bail!("nats-server did not listen on port {port} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child)
}

/// A server `up` keeps running: restarted when it stops by itself, stopped with [`Kept::stop`].
struct Kept {
    quit: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Kept {
    /// Stops the server (and its keeping) and waits until it is down.
    async fn stop(self) {
        let _ = self.quit.send(());
        let _ = self.task.await;
    }
}

/// Whether an exit looks asked for (a clean exit, SIGTERM, SIGINT), as when a service manager
/// stops every process of `up` at once: then `up` is told to stop too, soon.
fn asked_to_stop(status: &std::io::Result<std::process::ExitStatus>) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.as_ref().is_ok_and(|s| s.success() || matches!(s.signal(), Some(2 | 15)))
}

/// Keeps a server running: when it exits by itself, `start` starts it again (paced by
/// [`supervise::Restarts`]), saying so in one line; the services reconnect by themselves. A stop
/// asked for (`quit`) wins over a restart at every step, even during a start.
fn keep<S, F, Fut>(what: &'static str, mut server: S, start: F) -> Kept
where
    S: Running + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<S>> + Send,
{
    let (quit_tx, mut quit) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut restarts = supervise::Restarts::default();
        loop {
            tokio::select! {
                biased;
                _ = &mut quit => {
                    server.stop().await;
                    return;
                }
                status = server.wait() => {
                    restarts.crashed();
                    // A stop that looks asked for waits a moment for `up`'s own stop.
                    let grace = if asked_to_stop(&status) { Duration::from_secs(2) } else { Duration::ZERO };
                    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                    say(&format!("{what} stopped by itself ({status}); starting it again"));
                    let mut delay = restarts.next_delay().max(grace);
                    loop {
                        tokio::select! {
                            biased;
                            _ = &mut quit => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                        tokio::select! {
                            biased;
                            _ = &mut quit => return,
                            started = start() => match started {
                                Ok(started) => {
                                    server = started;
                                    restarts.started();
                                    say(&format!("{what} is back; the services reconnect to it"));
                                    break;
                                }
                                Err(error) => say(&format!("{what} did not start again ({error:#}); trying again")),
                            },
                        }
                        delay = restarts.next_delay();
                    }
                }
            }
        }
    });
    Kept { quit: quit_tx, task }
}

/// A server [`keep`] keeps.
trait Running {
    /// Waits until it exits.
    fn wait(&mut self) -> impl std::future::Future<Output = std::io::Result<std::process::ExitStatus>> + Send;
    /// Stops it cleanly.
    fn stop(self) -> impl std::future::Future<Output = ()> + Send;
}

/// This home's NATS server, and where its pid is recorded.
struct NatsChild {
    child: Child,
    pid_file: PathBuf,
}

impl Running for NatsChild {
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        // It is gone: its pid names nobody (or, soon, someone else).
        let _ = std::fs::remove_file(&self.pid_file);
        status
    }

    async fn stop(mut self) {
        stop(&mut self.child).await;
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Running for postgres::Postgres {
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        postgres::Postgres::wait(self).await
    }

    async fn stop(self) {
        postgres::Postgres::stop(self).await;
    }
}

/// Keeps this home's NATS server running (see [`keep`]).
fn keep_nats(child: Child, nats: OwnNats) -> Kept {
    let server = NatsChild { child, pid_file: nats.pid_file.clone() };
    keep("NATS", server, move || {
        let nats = nats.clone();
        async move { Ok(NatsChild { child: start_nats(&nats).await?, pid_file: nats.pid_file.clone() }) }
    })
}

/// Keeps this home's PostgreSQL running (see [`keep`]).
fn keep_postgres(pg: postgres::Postgres, data: PathBuf, port: u16) -> Kept {
    keep("PostgreSQL", pg, move || {
        let data = data.clone();
        async move { postgres::start(&data, port).await }
    })
}

/// Asks a child to stop (SIGTERM via `kill`), then kills it if it lingers.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg(pid.to_string()).status().await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_probe_asks_the_health_address_else_the_http_address_on_loopback() {
        assert_eq!(super::probe_url(Some("0.0.0.0:9090"), Some("0.0.0.0:8080")), "http://127.0.0.1:9090/readyz");
        assert_eq!(super::probe_url(None, Some("0.0.0.0:8080")), "http://127.0.0.1:8080/readyz");
        assert_eq!(super::probe_url(Some(""), Some("10.1.2.3:8080")), "http://10.1.2.3:8080/readyz");
        assert_eq!(super::probe_url(None, Some("[::]:8080")), "http://[::1]:8080/readyz");
        assert_eq!(super::probe_url(None, None), "http://127.0.0.1:8080/readyz");
    }
}
