//! A PostgreSQL server of `ticketing up`'s own, with its data under `.ticketing/postgres`.
//!
//! The tools come from `PATH` or Debian's `/usr/lib/postgresql/<version>/bin`. PostgreSQL refuses
//! to run as root, so as root the server runs as the `postgres` user (`runuser`), which owns the
//! data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use tokio::process::{Child, Command};

/// A running server.
pub struct Postgres {
    /// The URL of the `ticketing` database on it.
    pub url: String,
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) =
            std::env::split_paths(&path).find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
    {
        return Some(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

async fn is_root() -> bool {
    Command::new("id").arg("-u").output().await.map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A command that runs `program` as the `postgres` user when we are root.
fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Initializes (once) and starts the server on `127.0.0.1:<port>`; creates the `ticketing`
/// database when missing.
///
/// # Errors
/// When PostgreSQL is not installed or does not start; the message says how to fix it.
pub async fn start(data: &Path, port: u16) -> anyhow::Result<Postgres> {
    let Some(bin) = find_bin() else {
        bail!("PostgreSQL is not installed: apt-get install postgresql (or set DATABASE_URL)");
    };
    let data = std::path::absolute(data)?;
    let as_postgres = is_root().await;
    if !data.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        if as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().await?;
            anyhow::ensure!(status.success(), "could not give {} to the postgres user", data.display());
        }
        crate::say(&format!("initializing PostgreSQL in {}", data.display()));
        let output = command(&bin.join("initdb"), as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .await?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default());
        }
    }
    // A server an earlier `up` left running is stopped (fast shutdown); a lock file a crash left
    // behind, naming a process that is gone or is something else now, is removed.
    crate::supervise::stop_leftover("PostgreSQL", &data.join("postmaster.pid"), &data, "INT").await?;
    if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        bail!("port {port} is already taken: set TICKETING_PG_PORT or DATABASE_URL");
    }
    crate::say(&format!("starting PostgreSQL on 127.0.0.1:{port}, data in {}", data.display()));
    // The server itself is our child (`setpriv` becomes it; runuser would stand between us), so it
    // dies with us.
    let mut child = crate::supervise::dying_with_us(&bin.join("postgres"), as_postgres.then_some("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    // Long enough for crash recovery of a big database; a server that exits fails at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut conn = loop {
        if let Some(status) = child.try_wait()? {
            bail!("postgres exited at start ({status})");
        }
        if let Ok(conn) = sqlx::PgConnection::connect(&admin).await {
            break conn;
        }
        if Instant::now() > deadline {
            bail!("PostgreSQL did not accept connections within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ticketing')")
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        sqlx::query("CREATE DATABASE ticketing").execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(Postgres { url: format!("postgres://postgres@127.0.0.1:{port}/ticketing"), child, bin, data, as_postgres })
}

impl Postgres {
    /// Waits until the server exits (by itself: a crash, or a kill from outside).
    ///
    /// # Errors
    /// Waiting failed.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// The server's pid (the postmaster's).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server cleanly (fast shutdown), so the next start needs no recovery.
    pub async fn stop(self) {
        self.stop_with("fast").await;
    }

    /// Stops the server as a crash would (immediate shutdown: no checkpoint, connections cut),
    /// so the next start runs crash recovery. For fault-injection tests.
    pub async fn crash(self) {
        self.stop_with("immediate").await;
    }

    async fn stop_with(mut self, mode: &str) {
        let stopped = command(&self.bin.join("pg_ctl"), self.as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", mode, "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if !stopped.is_ok_and(|s| s.success()) {
            let _ = self.child.start_kill();
        }
        let _ = self.child.wait().await;
    }
}
