//! How `ticketing up` keeps the servers it runs itself (NATS, PostgreSQL): they die with it, the
//! ones an earlier `up` left behind are recognised and stopped, and a crashed one is started
//! again.
//!
//! - **Dying together**: each server is started with a parent-death signal (Linux's
//!   `PR_SET_PDEATHSIG`, set by `setpriv`), so the kernel kills it when `up` goes, however it goes
//!   (SIGKILL, the out-of-memory killer, a closed terminal).
//! - **Leftovers**: a server of this home records its pid (`<home>/nats.pid`; PostgreSQL's own
//!   `postmaster.pid`). A pid whose process is still that server (its command line names this
//!   home's data directory) is stopped before a new one starts; a pid file whose process is gone,
//!   or is something else by now, is stale and removed.
//! - **Restarts**: [`Restarts`] paces the restarts of a crashed server: at once, then after 1, 2,
//!   4 … 30 s while it keeps crashing, from the start again once it has run for a minute.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// A command running `program` (as `user`, when given) that the kernel kills when this process
/// goes: through util-linux's `setpriv --pdeathsig KILL`, which sets the parent-death signal
/// after switching user (a switch clears it) and then becomes the program, so the server itself
/// is our child. It also gets a process group of its own, so a Ctrl-C in the terminal reaches
/// `up`, which stops its servers in order, rather than every server at once. Without `setpriv`
/// (not Linux) the server starts without the signal: then an `up` killed outright leaves it
/// running, and the next `up` stops it (see [`stop_leftover`]).
pub fn dying_with_us(program: &Path, user: Option<&str>) -> Command {
    let setpriv = setpriv_with_pdeathsig();
    let mut command = match (setpriv, user) {
        (Some(setpriv), user) => {
            let mut command = Command::new(setpriv);
            if let Some(user) = user {
                command.args(["--reuid", user, "--regid", user, "--init-groups"]);
            }
            command.args(["--pdeathsig", "KILL", "--"]).arg(program);
            command
        }
        (None, Some(user)) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        (None, None) => Command::new(program),
    };
    command.process_group(0);
    command
}

/// util-linux's `setpriv`, when it has `--pdeathsig` (util-linux 2.33 and later).
fn setpriv_with_pdeathsig() -> Option<&'static Path> {
    static FOUND: std::sync::OnceLock<Option<&'static Path>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().map(Path::new).find(|path| {
            std::process::Command::new(path)
                .arg("--help")
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--pdeathsig"))
        })
    })
}

/// The pid a pid file names (its first line), if any.
pub fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.lines().next()?.trim().parse().ok()
}

/// Whether process `pid` is running with `marker` (a data directory of this home) as one whole
/// argument: a server an earlier `up` started with that directory (`-sd <dir>`, `-D <dir>`), not
/// a process that got its pid since (an editor on a file in there names a longer path).
pub fn is_ours(pid: u32, marker: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let marker = marker.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == marker)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

async fn send(signal: &str, pid: u32) {
    let _ = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().await;
}

/// Stops process `pid` with `signal` (`TERM`, `INT`, …), and with `KILL` if it is still there
/// after `patience`.
///
/// # Errors
/// It is still there 5 s after `KILL`.
pub async fn stop_pid(pid: u32, signal: &str, patience: Duration) -> anyhow::Result<()> {
    send(signal, pid).await;
    let deadline = Instant::now() + patience;
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(pid) {
        send("KILL", pid).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "process {pid} does not stop, even when killed: stop it by hand"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Stops the server an earlier `up` left running, if `pid_file` names one with `marker` as an
/// argument (the caller holds the home's lock, [`lock_home`], so no `up` runs it now). A pid file
/// naming a live process that is something else by now (a reused pid, after a reboot) is removed:
/// PostgreSQL would take it for another server and refuse to start. One naming a process that is
/// gone is left as it is (PostgreSQL checks it, and its shared memory, itself). Says what it did.
///
/// # Errors
/// The leftover does not stop.
pub async fn stop_leftover(what: &str, pid_file: &Path, marker: &Path, signal: &str) -> anyhow::Result<()> {
    let Some(pid) = pid_in(pid_file) else { return Ok(()) };
    if is_ours(pid, marker) {
        crate::say(&format!("stopping the {what} (pid {pid}) an earlier run left behind"));
        stop_pid(pid, signal, Duration::from_secs(15)).await?;
    } else if alive(pid) {
        crate::say(&format!("removing the stale {} (pid {pid} is not a {what} of this home)", pid_file.display()));
        let _ = std::fs::remove_file(pid_file);
    }
    Ok(())
}

/// Takes `<home>/up.lock` for as long as the returned file is open (the kernel lets go when this
/// process ends, however it ends): one `up` per home.
///
/// # Errors
/// Another `up` holds it, or it cannot be made.
pub fn lock_home(home: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(home)?;
    let path = home.join("up.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another ticketing up runs with {} (it holds {}): stop it first, or set TICKETING_HOME",
            home.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("locking {}: {e}", path.display())),
    }
}

/// The pacing of a crashed server's restarts.
#[derive(Debug)]
pub struct Restarts {
    delay: Duration,
    started: Instant,
}

/// The longest wait between two restarts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// How long a server must run for its next crash to be restarted at once again.
pub const STEADY: Duration = Duration::from_secs(60);

impl Default for Restarts {
    fn default() -> Self {
        Self { delay: Duration::ZERO, started: Instant::now() }
    }
}

impl Restarts {
    /// The server (re)started now.
    pub fn started(&mut self) {
        self.started = Instant::now();
    }

    /// The server stopped by itself: after a minute of running it is started again at once, as
    /// the first time; a server that keeps failing backs off from where it was.
    pub fn crashed(&mut self) {
        if self.started.elapsed() >= STEADY {
            self.delay = Duration::ZERO;
        }
    }

    /// How long to wait before the next start (after a crash, then after each failed start).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).clamp(Duration::from_secs(1), MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_come_at_once_then_back_off_to_thirty_seconds() {
        let mut restarts = Restarts::default();
        restarts.crashed();
        let delays: Vec<u64> = (0..8).map(|_| restarts.next_delay().as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30]);
        // A minute into failing starts the pace stays backed off: only a crash after a minute of
        // running starts over.
        restarts.started = Instant::now().checked_sub(STEADY).unwrap_or_else(Instant::now);
        assert_eq!(restarts.next_delay(), MAX_DELAY, "failed starts keep backing off");
        restarts.crashed();
        assert_eq!(restarts.next_delay(), Duration::ZERO, "a server that ran a minute restarts at once");
        assert_eq!(restarts.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn only_a_process_with_the_directory_as_an_argument_is_ours() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A shell that waits (on its input, a builtin: no process of its own), with the directory
        // as an argument of its own (as `-D <dir>`).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line", "server"])
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // Until the exec is done the child still has our command line.
        let started = Instant::now();
        while !is_ours(child.id(), dir.path()) {
            assert!(started.elapsed() < Duration::from_secs(5), "sleep never named the directory");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_ours(child.id(), &dir.path().join("postgres")), "a longer path is another directory");
        assert!(!is_ours(child.id(), dir.path().parent().unwrap_or(Path::new("/"))), "nor a shorter one");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!is_ours(u32::MAX - 1, Path::new("/")), "no such process");
    }

    #[test]
    fn one_up_per_home() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let held = lock_home(home.path()).unwrap_or_else(|e| panic!("{e}"));
        let again = lock_home(home.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(again.contains("another ticketing up runs"), "{again}");
        drop(held);
        assert!(lock_home(home.path()).is_ok(), "free again once the first lets go");
    }
}
