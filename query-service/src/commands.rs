//! Mutations become commands: sent over NATS, then answered once the projector has caught up.

use std::time::Duration;

use command_api::{Failure, Notification, Reply, Request, Success};
use domain::ErrorCode;
use tokio::sync::watch;

use crate::AppState;

/// How long a mutation waits for its write to be projected before answering anyway.
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

impl AppState {
    /// Sends a command and waits until the read models reflect it.
    ///
    /// # Errors
    /// The command's refusal, or an internal failure (NATS unreachable, timeout).
    pub async fn command(&self, request: Request) -> Result<Success, Failure> {
        let outcome = self.send(&request).await;
        match &outcome {
            Ok(success) => self.wait_projected(success.position).await,
            // A refusal that still wrote something (a declined charge): wait for it too, so what
            // the client reads next shows it.
            Err(Failure { position: Some(position), .. }) => self.wait_projected(*position).await,
            Err(_) => {}
        }
        self.metrics.count_command(&outcome);
        outcome
    }

    /// Sends a command over NATS and decodes the reply, without waiting for the projection.
    ///
    /// # Errors
    /// The command's refusal, or an internal failure (NATS unreachable, timeout).
    pub async fn send(&self, request: &Request) -> Result<Success, Failure> {
        use tracing::Instrument;
        let span = tracing::info_span!("send command", command = request.command.name(), otel.kind = "client");
        self.send_traced(request).instrument(span).await
    }

    async fn send_traced(&self, request: &Request) -> Result<Success, Failure> {
        let subject = domain::subjects::on_wire(&self.subject_root, &request.subject());
        // The operation's trace goes along (W3C traceparent), and names the command in logs.
        let mut headers = async_nats::HeaderMap::new();
        service_kit::telemetry::inject(&mut headers);
        let body = if request.correlation_id.is_none() {
            let mut traced = request.clone();
            traced.correlation_id = service_kit::telemetry::trace_id();
            serde_json::to_vec(&traced)
        } else {
            serde_json::to_vec(request)
        }
        .map_err(|_| Failure::internal())?;
        let sent = self.nats.request_with_headers(subject, headers, body.into());
        let reply = match tokio::time::timeout(Duration::from_secs(15), sent).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                tracing::error!(%error, command = request.command.name(), "command request failed");
                return Err(Failure::internal());
            }
            Err(_) => {
                tracing::error!(command = request.command.name(), "command timed out");
                return Err(Failure::internal());
            }
        };
        match serde_json::from_slice::<Reply>(&reply.payload) {
            Ok(Reply::Ok(success)) => Ok(success),
            Ok(Reply::Error(failure)) => Err(failure),
            Err(error) => {
                tracing::error!(command = request.command.name(), %error, "unreadable command reply");
                Err(Failure::new(ErrorCode::InternalServerError, "internal error"))
            }
        }
    }

    /// Waits (bounded by [`READ_YOUR_WRITES`]) until the projector has passed `position`.
    #[tracing::instrument(name = "read-your-writes wait", skip(self))]
    pub async fn wait_projected(&self, position: u64) {
        let mut projected: watch::Receiver<u64> = self.projected.clone();
        let started = std::time::Instant::now();
        let reached = tokio::time::timeout(READ_YOUR_WRITES, projected.wait_for(|p| *p >= position)).await;
        let outcome = if reached.is_ok() { "projected" } else { "timed_out" };
        ::metrics::histogram!("ticketing_read_your_writes_wait_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if reached.is_err() {
            tracing::warn!(position, "read-your-writes wait timed out; answering from the read model as it is");
        }
    }
}

/// Follows the projector's notifications (and, as a fallback, polls the checkpoint) to keep
/// `projected` at the latest projected position.
pub async fn follow_projection(
    pool: sqlx::PgPool,
    projected: watch::Sender<u64>,
    changes: tokio::sync::broadcast::Sender<std::sync::Arc<crate::Changed>>,
) {
    loop {
        let result: anyhow::Result<()> = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(command_api::notification::CHANNEL).await?;
            if let Ok(position) = crate::db::checkpoint(&pool).await {
                projected.send_if_modified(|p| bump(p, position));
            }
            // What changed is unknown (notifications were lost, or one could not be read): every
            // subscriber re-reads what it watches.
            let resync_all = || {
                let position = *projected.borrow();
                let _ = changes.send(std::sync::Arc::new(crate::Changed::resync(position, vec![], vec![])));
            };
            loop {
                match tokio::time::timeout(Duration::from_millis(500), listener.try_recv()).await {
                    // The connection dropped (it reconnects at the next call): notifications sent
                    // meanwhile are lost, so every subscriber re-reads what it watches.
                    Ok(Ok(None)) => {
                        tracing::warn!("projection listener reconnecting; subscribers re-read");
                        resync_all();
                    }
                    Ok(notification) => {
                        let Some(notification) = notification? else { continue };
                        let body = match Notification::decode(notification.payload()) {
                            Ok(body) => body,
                            Err(error) => {
                                // Not ours to read (a newer projector?).
                                tracing::error!(%error, payload = notification.payload(), "unreadable notification");
                                // The position it announced is unknown too: read it, so writers
                                // waiting to read their writes are not held up.
                                let position = crate::db::checkpoint(&pool).await?;
                                projected.send_if_modified(|p| bump(p, position));
                                resync_all();
                                continue;
                            }
                        };
                        let mut changed = crate::Changed::new(
                            body.position,
                            body.tickets.iter().map(|id| id.0).collect(),
                            body.orders.iter().map(|id| id.0).collect(),
                        );
                        changed.sessions = body.sessions.iter().map(|id| id.0).collect();
                        changed.events = body.events.iter().map(|id| id.0).collect();
                        projected.send_if_modified(|p| bump(p, i64::try_from(body.position).unwrap_or(i64::MAX)));
                        if !changed.tickets.is_empty()
                            || !changed.orders.is_empty()
                            || !changed.sessions.is_empty()
                            || !changed.events.is_empty()
                        {
                            // Nobody listening is fine.
                            let _ = changes.send(std::sync::Arc::new(changed));
                        }
                    }
                    // Quiet: check the checkpoint in case a notification was missed.
                    Err(_) => {
                        let position = crate::db::checkpoint(&pool).await?;
                        projected.send_if_modified(|p| bump(p, position));
                    }
                }
            }
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "projection follower restarting");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn bump(current: &mut u64, position: i64) -> bool {
    let position = u64::try_from(position).unwrap_or(0);
    if position > *current {
        *current = position;
        true
    } else {
        false
    }
}
