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
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().map(Path::new).find(|p| p.exists());
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

/// The pid a pid file names (its first line), if any.
pub fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.lines().next()?.trim().parse().ok()
}

/// Whether process `pid` is running and its command line mentions `marker` (a data directory of
/// this home): a server an earlier `up` started, not a process that got its pid since.
pub fn is_ours(pid: u32, marker: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let marker = marker.to_string_lossy();
    cmdline.split(|b| *b == 0).any(|arg| String::from_utf8_lossy(arg).contains(marker.as_ref()))
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
pub async fn stop_pid(pid: u32, signal: &str, patience: Duration) {
    send(signal, pid).await;
    let deadline = Instant::now() + patience;
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(pid) {
        send("KILL", pid).await;
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The parent of process `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Stops the server an earlier `up` left running, if `pid_file` names one whose command line
/// mentions `marker`; removes a stale pid file. Says what it did. A server whose `ticketing`
/// parent still runs belongs to an `up` running now in the same home: that is refused.
///
/// # Errors
/// Another `ticketing up` runs with this home.
pub async fn stop_leftover(what: &str, pid_file: &Path, marker: &Path, signal: &str) -> anyhow::Result<()> {
    let Some(pid) = pid_in(pid_file) else { return Ok(()) };
    if is_ours(pid, marker) {
        if let Some(parent) = parent_of(pid).filter(|p| *p != 1)
            && std::fs::read(format!("/proc/{parent}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("ticketing"))
        {
            anyhow::bail!(
                "another ticketing up (pid {parent}) runs with this home and its {what}: stop it first, or set TICKETING_HOME"
            );
        }
        crate::say(&format!("stopping the {what} (pid {pid}) an earlier run left behind"));
        stop_pid(pid, signal, Duration::from_secs(15)).await;
    } else {
        crate::say(&format!("removing the stale {} (pid {pid} is not a {what} of this home)", pid_file.display()));
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(())
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

    /// How long to wait before the next start after a crash or a failed start.
    pub fn next_delay(&mut self) -> Duration {
        if self.started.elapsed() >= STEADY {
            self.delay = Duration::ZERO;
        }
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
        let delays: Vec<u64> = (0..8).map(|_| restarts.next_delay().as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30]);
        restarts.started = Instant::now().checked_sub(STEADY).unwrap_or_else(Instant::now);
        assert_eq!(restarts.next_delay(), Duration::ZERO, "a server that ran a minute restarts at once");
    }

    #[test]
    fn only_a_process_that_names_the_data_directory_is_ours() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap_or_default();
        assert!(is_ours(me, exe.parent().unwrap_or(Path::new("/"))), "our own command line names our directory");
        assert!(!is_ours(me, Path::new("/no/such/ticketing/home")));
        assert!(!is_ours(u32::MAX - 1, Path::new("/")), "no such process");
    }
}
