//! `GET /metrics`: Prometheus text with request, command and projection figures.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use command_api::{Failure, Success};
use domain::ErrorCode;

use crate::AppState;

/// Counters kept by the gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `POST /graphql` requests.
    pub graphql_requests: AtomicU64,
    /// `POST /webhooks/payments` requests.
    pub webhook_requests: AtomicU64,
    /// Commands that succeeded.
    pub commands_ok: AtomicU64,
    /// Commands refused by a rule.
    pub commands_refused: AtomicU64,
    /// Commands that failed (internal errors, timeouts).
    pub commands_failed: AtomicU64,
    /// Batched queries made by the dataloaders.
    pub loader_queries: AtomicU64,
    /// Subscriptions open now (each counted while its stream lives: see [`Watching`]).
    pub subscriptions: AtomicU64,
}

/// Counts one open subscription for as long as it lives: a subscription's stream holds one.
#[derive(Debug)]
pub struct Watching(std::sync::Arc<Metrics>);

impl Watching {
    /// Counts a subscription that has just been set up.
    #[must_use]
    pub fn new(metrics: &std::sync::Arc<Metrics>) -> Self {
        metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
        Self(std::sync::Arc::clone(metrics))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a command's outcome.
    pub fn count_command(&self, outcome: &Result<Success, Failure>) {
        let counter = match outcome {
            Ok(_) => &self.commands_ok,
            Err(failure) if failure.code == ErrorCode::InternalServerError => &self.commands_failed,
            Err(_) => &self.commands_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders the metrics; figures that cannot be read right now are left out.
pub async fn render(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    line(
        "ticketing_http_requests_total",
        "counter",
        "HTTP requests by route.",
        &[
            ("{route=\"graphql\"}", m.graphql_requests.load(Ordering::Relaxed)),
            ("{route=\"webhook\"}", m.webhook_requests.load(Ordering::Relaxed)),
        ],
    );
    line(
        "ticketing_commands_total",
        "counter",
        "Commands sent to command-service, by outcome.",
        &[
            ("{outcome=\"ok\"}", m.commands_ok.load(Ordering::Relaxed)),
            ("{outcome=\"refused\"}", m.commands_refused.load(Ordering::Relaxed)),
            ("{outcome=\"failed\"}", m.commands_failed.load(Ordering::Relaxed)),
        ],
    );
    line(
        "ticketing_loader_queries_total",
        "counter",
        "Batched read-model queries made by dataloaders.",
        &[("", m.loader_queries.load(Ordering::Relaxed))],
    );
    let batched = [
        ("{read=\"sign_out\"}", &state.sign_outs.counts),
        ("{read=\"ticket\"}", &state.tickets.counts),
        ("{read=\"order\"}", &state.orders.counts),
    ];
    line(
        "ticketing_batched_reads_total",
        "counter",
        "Reads by key batched across requests (session sign-out checks, ticket(id), orders).",
        &batched.map(|(labels, counts)| (labels, counts.reads.load(Ordering::Relaxed))),
    );
    line(
        "ticketing_batched_read_queries_total",
        "counter",
        "Queries those reads made (reads arriving together share one).",
        &batched.map(|(labels, counts)| (labels, counts.queries.load(Ordering::Relaxed))),
    );
    line(
        "ticketing_subscriptions",
        "gauge",
        "GraphQL subscriptions open on this gateway.",
        &[("", m.subscriptions.load(Ordering::Relaxed))],
    );
    let projected = *state.projected.borrow();
    line("ticketing_projected_position", "gauge", "Stream position the read models reflect.", &[("", projected)]);
    let js = async_nats::jetstream::new(state.nats.clone());
    if let Ok(mut stream) = js.get_stream(&state.config.stream_name).await
        && let Ok(info) = stream.info().await
    {
        let last = info.state.last_sequence;
        line("ticketing_stream_last_sequence", "gauge", "Last sequence of the event stream.", &[("", last)]);
        line(
            "ticketing_projection_lag_events",
            "gauge",
            "Events stored but not yet projected.",
            &[("", last.saturating_sub(projected))],
        );
    }
    if let Ok(parked) =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM read.parked_events").fetch_one(&state.pool).await
    {
        line(
            "ticketing_parked_events",
            "gauge",
            "Events the projector could not apply.",
            &[("", u64::try_from(parked).unwrap_or(0))],
        );
    }
    // What the process records through the `metrics` crate: latency histograms (GraphQL, the
    // read-your-writes wait) and, in `ticketing up`, the command service's and projector's own.
    out.push_str(&service_kit::metrics().render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
