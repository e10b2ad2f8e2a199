//! What orchestrators need from every process, done one way: the probe and metrics endpoints of
//! processes that serve no HTTP otherwise (command-service, projector) — `GET /healthz` 200
//! while the process can make progress (503 when its liveness check fails: a wedged consumer),
//! `GET /readyz` 200 when its readiness check passes, `GET /metrics` the process's metrics in
//! Prometheus text — the process-wide metrics recorder ([`metrics`]), and [`shutdown_signal`],
//! the one way every process learns it should stop.

pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// A health check: `true` when it passes.
pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A check that always passes (a process with nothing that can wedge).
pub fn always() -> Check {
    Arc::new(|| Box::pin(async { true }))
}

/// What a probe server answers: `/healthz` from `live`, `/readyz` from `ready`.
#[derive(Clone)]
pub struct Probes {
    /// Liveness: fails only when restarting the process would help.
    pub live: Check,
    /// Readiness: passes when the process can do its work now.
    pub ready: Check,
}

/// Binds `addr` and serves `/healthz`, `/readyz` and `/metrics` on it in a task of its own.
///
/// # Errors
/// When `addr` cannot be bound: start-up must stop, not run without its probes.
pub async fn serve_probes(addr: SocketAddr, probes: Probes) -> std::io::Result<SocketAddr> {
    serve_probes_on(tokio::net::TcpListener::bind(addr).await?, probes)
}

/// [`serve_probes`] on a listener bound already (bound first, so that a taken address stops
/// start-up before anything else starts).
///
/// # Errors
/// When the listener has no local address.
pub fn serve_probes_on(listener: tokio::net::TcpListener, probes: Probes) -> std::io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let handle = metrics();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(answer(probes.live, "ok\n", "wedged\n")))
        .route("/readyz", axum::routing::get(answer(probes.ready, "ready\n", "not ready\n")))
        .route("/metrics", axum::routing::get(move || std::future::ready(render(&handle))));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("probe server on {bound} stopped: {error}");
        }
    });
    Ok(bound)
}

/// A handler answering 200 with `yes` when `check` passes, else 503 with `no`.
fn answer(
    check: Check,
    yes: &'static str,
    no: &'static str,
) -> impl Fn() -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>> + Clone + Send + Sync + 'static {
    move || {
        let check = check.clone();
        Box::pin(async move {
            if check().await {
                (StatusCode::OK, yes).into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, no).into_response()
            }
        })
    }
}

/// The Prometheus text of `handle`'s metrics.
fn render(handle: &PrometheusHandle) -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// The buckets of every `_seconds` histogram: from a millisecond to a minute.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// The buckets of batch-size histograms (`_events`, `_size`).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

/// The process-wide metrics recorder of the `metrics` crate, installed on first use: everything a
/// process records with `metrics::counter!`, `gauge!` and `histogram!` is rendered by the handle
/// (on `/metrics`). In `ticketing up` every component shares it, so the gateway's `/metrics` shows
/// them all.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), SIZE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS));
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                // Only an empty bucket list fails, and ours are constants.
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder installed first (a test's) keeps recording; ours then renders
            // nothing, which is all a second recorder can do.
            let _ = metrics::set_global_recorder(recorder);
            // Histograms are kept in windows that upkeep drains; without it they grow.
            let upkeep = handle.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// Whether a follower of a stream (a projector, the read models a gateway serves) has stopped
/// making progress: behind the stream's head at the same position for longer than `after`.
/// Remembers what it saw between looks; being caught up, or moving, resets it.
#[derive(Debug)]
pub struct Stall {
    after: Duration,
    /// The position last seen behind, and since when.
    behind: Option<(u64, Instant)>,
}

impl Stall {
    /// A follower that counts as stalled after `after` behind without progress.
    pub const fn new(after: Duration) -> Self {
        Self { after, behind: None }
    }

    /// Whether it was behind at the last look, is still at that `position`, and has been for
    /// the whole time by `now` (for a look at which the stream's head cannot be read: a
    /// follower that moved since is not stalled).
    pub fn still_stalled(&self, position: u64, now: Instant) -> bool {
        self.behind.is_some_and(|(seen, since)| seen == position && now.duration_since(since) >= self.after)
    }

    /// One look at `now`: `head` is the stream's last sequence, `position` the follower's.
    /// Returns whether it is stalled.
    pub fn stalled(&mut self, head: u64, position: u64, now: Instant) -> bool {
        if position >= head {
            self.behind = None;
            return false;
        }
        match self.behind {
            Some((seen, since)) if seen == position => now.duration_since(since) >= self.after,
            // Behind, but it moved (or just fell behind): the clock starts now.
            _ => {
                self.behind = Some((position, now));
                false
            }
        }
    }
}

/// A check that passes while `client` is connected to NATS.
pub fn nats_connected(client: async_nats::Client) -> Check {
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move { client.connection_state() == async_nats::connection::State::Connected })
    })
}

/// The command line and environment parsed as `C`; a bad setting stops the process with one line,
/// `<process>: bad configuration: <clap's message>` (which names the setting), and exit code 2,
/// without clap's usage lines; `--help` and `--version` print as usual.
pub fn parse_or_exit<C: clap::Parser>(process: &str) -> C {
    match C::try_parse() {
        Ok(parsed) => parsed,
        Err(error) if is_help(&error) => error.exit(),
        Err(error) => {
            eprintln!("{process}: bad configuration: {}", one_line(&error));
            std::process::exit(2);
        }
    }
}

/// Whether a clap "error" is a request for help or the version (printed as clap does).
pub fn is_help(error: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// A clap error on one line, without its `error: ` prefix and usage text: what went wrong and
/// the setting it names (a missing argument's name comes on the lines after the first).
pub fn one_line(error: &clap::Error) -> String {
    let text = error.to_string();
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    said.join(" ").trim_start_matches("error: ").to_owned()
}

/// Resolves on SIGTERM (how Kubernetes and `kill` stop a process) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response)
    }

    #[tokio::test]
    async fn probes_answer_their_checks_and_metrics_are_rendered() {
        let wedged = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let live: Check = {
            let wedged = wedged.clone();
            Arc::new(move || {
                let wedged = wedged.load(std::sync::atomic::Ordering::Relaxed);
                Box::pin(async move { !wedged })
            })
        };
        let ready: Check = Arc::new(|| Box::pin(async { false }));
        let addr = serve_probes("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), Probes { live, ready })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        wedged.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(addr, "/healthz").await.0, 503);
        metrics::histogram!("ticketing_probe_test_seconds").record(0.003);
        let (status, text) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(text.contains("ticketing_probe_test_seconds_bucket{le=\"0.005\"} 1"), "{text}");
    }

    #[test]
    fn stalled_only_when_behind_and_still_for_the_whole_time() {
        let after = Duration::from_secs(60);
        let start = Instant::now();
        let mut stall = Stall::new(after);
        assert!(!stall.stalled(10, 10, start), "caught up");
        assert!(!stall.stalled(20, 10, start), "just fell behind");
        assert!(!stall.stalled(20, 10, start + after / 2));
        assert!(stall.stalled(25, 10, start + after), "behind at the same position all along");
        assert!(!stall.stalled(25, 11, start + after * 2), "it moved: the clock starts again");
        assert!(!stall.stalled(25, 11, start + after * 2 + after / 2));
        assert!(stall.stalled(25, 11, start + after * 3));
        assert!(!stall.stalled(25, 25, start + after * 4), "caught up again");
        assert!(!stall.stalled(30, 25, start + after * 10), "an idle hour before an event is not a stall");
        assert!(stall.still_stalled(25, start + after * 11), "the head unknown, still at 25");
        assert!(!stall.still_stalled(26, start + after * 11), "the head unknown, but it moved");
    }

    #[tokio::test]
    async fn an_address_that_is_taken_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let probes = Probes { live: always(), ready: always() };
        assert!(serve_probes(addr, probes).await.is_err());
    }
}
