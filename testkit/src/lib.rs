//! Test harness: real servers, never mocks.
//!
//! - [`nats`] gives a test its own NATS JetStream: a fresh `nats-server` (≥ 2.12, the pinned
//!   binary installed by `scripts/install-nats.sh`) on a free port with a temporary store, or,
//!   when `NATS_URL` is set, that server with a namespace (stream name and subject root) no other
//!   test uses.
//! - [`postgres`] gives a test its own database, created on the server at `DATABASE_URL` (default
//!   the local `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
//! - [`declared_default`] reads a setting's default as a configuration declares it.

pub mod browser;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The repository's root (testkit lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Finds the `nats-server` binary: `TICKETING_NATS_SERVER`, then the pinned install under
/// `.ticketing/tools`, then `PATH`.
///
/// # Errors
/// When none is found, with the command that installs it.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TICKETING_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let pinned = workspace_root().join(".ticketing/tools/bin/nats-server");
    if pinned.exists() {
        return Ok(pinned);
    }
    bail!(
        "no nats-server ≥ 2.12 found at {}: run scripts/install-nats.sh (or set NATS_URL or TICKETING_NATS_SERVER)",
        pinned.display()
    )
}

/// A `nats-server` process owned by a test, killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    binary: PathBuf,
}

impl NatsServer {
    /// Starts a JetStream server on a free loopback port with a temporary store.
    ///
    /// # Errors
    /// When the binary is missing or the server does not come up.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = nats_server_binary()?;
        // A free port can be taken by a parallel test between our check and the server's bind:
        // try a few ports before giving up.
        let mut last_error = None;
        for _ in 0..4 {
            let store = tempfile::tempdir().context("temporary JetStream store")?;
            let mut server = Self { child: None, port: free_port()?, store, binary: binary.clone() };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same port and store.
    ///
    /// # Errors
    /// When it does not come up.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        // A name of its own, so readiness is checked on this server and not on another test's
        // that happens to hold the port.
        let name = format!("testkit-{}", Uuid::new_v4().simple());
        let mut child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-n", &name, "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited at start: {status}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                // JetStream is ready once the account info request answers.
                if let Ok(client) = async_nats::connect(self.url()).await
                    && client.request("$JS.API.INFO", "".into()).await.is_ok()
                {
                    if client.server_info().server_name != name {
                        let _ = child.start_kill();
                        bail!("port {} belongs to another nats-server", self.port);
                    }
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("nats-server did not become ready on port {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A JetStream cluster of `nats-server` processes on loopback, each with its own store; killed
/// when dropped.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
    binary: PathBuf,
    cluster_name: String,
    secured: Option<Secured>,
}

/// A cluster that requires credentials: its configuration file and the harness's own user.
struct Secured {
    config: tempfile::NamedTempFile,
    user: String,
    password: String,
}

struct ClusterNode {
    name: String,
    client_port: u16,
    route_port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts `size` nodes that route to each other, and waits until JetStream answers on each.
    ///
    /// # Errors
    /// When the binary is missing or the cluster does not form within a minute.
    pub async fn start(size: usize) -> anyhow::Result<Self> {
        Self::start_with(size, None).await
    }

    /// Starts `size` nodes that require credentials: `authorization` is the `nats-server`
    /// configuration block of users and permissions, and must include the harness's own `user`
    /// with `password` (which [`NatsCluster::url`] carries).
    ///
    /// # Errors
    /// As [`NatsCluster::start`].
    pub async fn start_secured(size: usize, authorization: &str, user: &str, password: &str) -> anyhow::Result<Self> {
        let mut config = tempfile::NamedTempFile::new().context("temporary NATS configuration")?;
        std::io::Write::write_all(&mut config, authorization.as_bytes()).context("writing the NATS configuration")?;
        let secured = Secured { config, user: user.to_owned(), password: password.to_owned() };
        Self::start_with(size, Some(secured)).await
    }

    async fn start_with(size: usize, secured: Option<Secured>) -> anyhow::Result<Self> {
        let binary = nats_server_binary()?;
        let id = Uuid::new_v4().simple().to_string();
        let mut nodes = Vec::new();
        for n in 0..size {
            nodes.push(ClusterNode {
                name: format!("node{n}-{}", &id[..8]),
                client_port: free_port()?,
                route_port: free_port()?,
                store: tempfile::tempdir().context("temporary JetStream store")?,
                child: None,
            });
        }
        let mut cluster = Self { nodes, binary, cluster_name: format!("testkit-{}", &id[..8]), secured };
        let mut attempt = 0;
        loop {
            attempt += 1;
            for n in 0..size {
                cluster.spawn(n)?;
            }
            let mut started = Ok(());
            for n in 0..size {
                started = cluster.wait_ready(n).await;
                if started.is_err() {
                    break;
                }
            }
            match started {
                // A port found free may be taken by another test's server before a node binds
                // it (the node then exits at once): start them all again on other ports.
                Err(error) if attempt < 3 && error.to_string().contains("exited at start") => {
                    for n in 0..size {
                        cluster.kill(n).await;
                        cluster.nodes[n].client_port = free_port()?;
                        cluster.nodes[n].route_port = free_port()?;
                    }
                }
                result => return result.map(|()| cluster),
            }
        }
    }

    /// Every node's client URL, comma-separated (clients fail over between them); with the
    /// harness's credentials when the cluster requires them.
    pub fn url(&self) -> String {
        let credentials = self.secured.as_ref().map(|s| format!("{}:{}@", s.user, s.password)).unwrap_or_default();
        self.nodes
            .iter()
            .map(|n| format!("nats://{credentials}127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's client URL without credentials.
    pub fn bare_url(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect::<Vec<_>>().join(",")
    }

    /// Kills node `n` with SIGKILL, as a crash would.
    pub async fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts node `n` again with its store, and waits until it serves JetStream.
    ///
    /// # Errors
    /// When it does not come back within a minute.
    pub async fn restart(&mut self, n: usize) -> anyhow::Result<()> {
        self.kill(n).await;
        self.spawn(n)?;
        self.wait_ready(n).await
    }

    fn spawn(&mut self, n: usize) -> anyhow::Result<()> {
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != n)
            .map(|(_, node)| format!("nats://127.0.0.1:{}", node.route_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &mut self.nodes[n];
        let mut command = Command::new(&self.binary);
        if let Some(secured) = &self.secured {
            command.arg("-c").arg(secured.config.path());
        }
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-n", &node.name, "-p", &node.client_port.to_string()])
            .args(["--cluster_name", &self.cluster_name])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", node.route_port), "--routes", &routes])
            .arg("-sd")
            .arg(node.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, n: usize) -> anyhow::Result<()> {
        let url = format!("nats://127.0.0.1:{}", self.nodes[n].client_port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.nodes[n].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("cluster node {n} exited at start: {status}");
            }
            let options = match &self.secured {
                Some(secured) => {
                    async_nats::ConnectOptions::with_user_and_password(secured.user.clone(), secured.password.clone())
                }
                None => async_nats::ConnectOptions::new(),
            };
            if let Ok(client) = options.connect(&url).await
                && let Ok(reply) = client.request("$JS.API.INFO", "".into()).await
                && !String::from_utf8_lossy(&reply.payload).contains("\"error\"")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cluster node {n} did not serve JetStream within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A NATS connection for one test.
pub struct TestNats {
    /// Connected client.
    pub client: async_nats::Client,
    /// The server URL.
    pub url: String,
    /// A stream name no other test uses.
    pub stream: String,
    /// A subject root no other test uses (`ticketing` on an own server).
    pub root: String,
    /// The server, when the test started its own.
    pub server: Option<NatsServer>,
}

/// A NATS server for one test: its own process, or `NATS_URL` with a private namespace.
///
/// # Errors
/// When no server can be started or reached.
pub async fn nats() -> anyhow::Result<TestNats> {
    let tag = Uuid::new_v4().simple().to_string();
    let (url, server, root, stream) = match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => (url, None, format!("t{tag}"), format!("T{tag}")),
        _ => {
            let server = NatsServer::start().await?;
            (server.url(), Some(server), "ticketing".to_owned(), "TICKETING".to_owned())
        }
    };
    let client = connect(&url).await?;
    Ok(TestNats { client, url, stream, root, server })
}

/// Connects with settings that suit tests (quick reconnects after a server restart).
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempt| Duration::from_millis(50 * u64::try_from(attempt.min(10)).unwrap_or(10)))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// A PostgreSQL database of a test's own, dropped when the value is dropped.
pub struct TestDb {
    /// A pool on the database.
    pub pool: PgPool,
    /// The database URL.
    pub url: String,
    /// Its name.
    pub name: String,
    admin: PgConnectOptions,
}

/// Creates an empty database for one test.
///
/// # Errors
/// When PostgreSQL cannot be reached.
pub async fn postgres() -> anyhow::Result<TestDb> {
    let admin_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin: PgConnectOptions = admin_url.parse().with_context(|| format!("DATABASE_URL {admin_url}"))?;
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut conn = admin.connect().await.with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
    conn.close().await?;
    // As the services connect (`query_service::db::connect_options`): every statement planned
    // for the table as it is, never a generic plan made while it was empty. (The pool only:
    // `url` does not carry the option, and a service given it adds it itself.)
    let options = admin.clone().database(&name).options([("plan_cache_mode", "force_custom_plan")]);
    let pool = PgPoolOptions::new().max_connections(8).connect_with(options.clone()).await?;
    let url = options.to_url_lossy().to_string();
    Ok(TestDb { pool, url, name, admin })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside async: drop the database on a thread of its own. No waiting for the
        // pools to close (a connection being returned needs the test's runtime, which this very
        // drop is blocking); FORCE ends every session on the database instead.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let mut conn = admin.connect().await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A small deterministic random generator (xorshift64*) for tests that must replay a run from its
/// seed: fuzzing and fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is made odd).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        usize::try_from(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (n.max(1) as u64)).unwrap_or(0)
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The default a clap configuration declares for the setting read from the environment variable
/// `env`, comma-joined when it has several: what the product promises when the variable is unset,
/// whatever the environment running the test holds.
///
/// # Panics
/// When `C` has no setting read from `env`.
pub fn declared_default<C: clap::CommandFactory>(env: &str) -> String {
    let command = C::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == env))
        .unwrap_or_else(|| panic!("no setting {env}"));
    arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")
}
