//! One batch: applied in one transaction with its checkpoint, under a savepoint, redone event by
//! event (and the culprit parked) when something fails, and announced to the gateways on commit.

use std::sync::atomic::Ordering;

use command_api::Notification;
use command_api::notification::CHANNEL;
use domain::EventEnvelope;
use sqlx::{Connection, PgConnection};

use crate::models::{self, Applied, Changes};
use crate::{Committed, Incoming, Projector, ProjectorError};

/// The most other operations' traces one batch's span links to.
const MAX_LINKS: usize = 64;

/// Attempts per event before it is parked.
const ATTEMPTS: u32 = 3;

impl Projector {
    /// Applies a batch to `generation` and commits it with the checkpoint; returns `None`, having
    /// written nothing, when `generation` is no longer live. Does not acknowledge anything.
    ///
    /// # Errors
    /// A database error (the batch is not committed).
    pub async fn commit(&self, generation: &str, batch: &[Incoming]) -> Result<Option<Committed>, ProjectorError> {
        // Part of the trace of the operation that wrote its first event (a batch of one event,
        // when the system is quiet, is that operation's own), and linked from the others' (a
        // batch of a busy sale holds many operations' events).
        let span = tracing::info_span!("projection commit", events = batch.len());
        let mut traces = batch.iter().filter_map(|incoming| incoming.traceparent.as_deref());
        if let Some(first) = traces.next() {
            service_kit::telemetry::continue_trace_from(&span, first);
        }
        for other in traces.take(MAX_LINKS) {
            service_kit::telemetry::link(&span, other);
        }
        tracing::Instrument::instrument(self.commit_traced(generation, batch), span).await
    }

    async fn commit_traced(&self, generation: &str, batch: &[Incoming]) -> Result<Option<Committed>, ProjectorError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // FOR SHARE: a rebuild's switch (FOR UPDATE) waits for this batch, and vice versa.
        let live: String =
            sqlx::query_scalar("SELECT active FROM public.projection_generation FOR SHARE").fetch_one(&mut *tx).await?;
        if live != generation {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let committed = apply_batch(&mut tx, generation, batch, true).await?;
        tx.commit().await?;
        metrics::histogram!("ticketing_projection_commit_seconds").record(started.elapsed().as_secs_f64());
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!("ticketing_projector_batch_events").record(batch.len() as f64);
        metrics::counter!("ticketing_projector_applied_events_total").increment(committed.applied);
        metrics::counter!("ticketing_projector_parked_events_total").increment(committed.parked);
        self.stats.applied.fetch_add(committed.applied, Ordering::Relaxed);
        self.stats.parked.fetch_add(committed.parked, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = batch.last() {
            let millis = last.recorded_at.unix_timestamp_nanos() / 1_000_000;
            self.stats.position_recorded_ms.store(u64::try_from(millis).unwrap_or(0), Ordering::Relaxed);
        }
        self.stats.position.store(committed.position, Ordering::Relaxed);
        Ok(Some(committed))
    }
}

/// The checkpoint of a generation.
///
/// # Errors
/// A database error.
pub fn checkpoint<'a>(
    conn: &'a mut PgConnection,
    generation: &'a str,
) -> futures::future::BoxFuture<'a, Result<u64, ProjectorError>> {
    Box::pin(checkpoint_inner(conn, generation))
}

async fn checkpoint_inner(conn: &mut PgConnection, generation: &str) -> Result<u64, ProjectorError> {
    let position: i64 =
        sqlx::query_scalar(&format!("SELECT position FROM {generation}.checkpoint")).fetch_one(conn).await?;
    Ok(u64::try_from(position).unwrap_or(0))
}

/// A batch that does not continue from the checkpoint: positions are consecutive (nothing is ever
/// deleted from the stream), so a missing one was lost in delivery and applying past it would skip
/// it for good. Nothing of the batch is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a gap in delivery: expected position {expected}, got {found}")]
pub struct Gap {
    /// The position that should have come next.
    pub expected: u64,
    /// The position that came instead.
    pub found: u64,
}

/// Checks that the positions after `checkpoint` run on from it without a hole.
fn check_continuity(checkpoint: u64, batch: &[Incoming]) -> Result<(), Gap> {
    let after = batch.iter().filter(|m| m.position > checkpoint);
    for (expected, message) in (checkpoint + 1..).zip(after) {
        if message.position != expected {
            return Err(Gap { expected, found: message.position });
        }
    }
    Ok(())
}

/// Applies a batch inside the caller's transaction: refuses a batch that does not continue from
/// the checkpoint ([`Gap`]), skips what the checkpoint covers, retries then parks what fails,
/// advances the checkpoint and, when `announce` (the live generation), queues the change
/// notifications that move the gateways' read-your-writes position. A rebuild's replay into a
/// generation nobody reads yet announces nothing.
///
/// # Errors
/// [`Gap`], or a database error that is not the event's fault (the caller's transaction is then
/// unusable).
pub async fn apply_batch(
    tx: &mut PgConnection,
    generation: &str,
    batch: &[Incoming],
    announce: bool,
) -> Result<Committed, ProjectorError> {
    // Planned per execution whatever pool this came from (see `query_service::db::connect_options`:
    // a generic plan made while a table was empty keeps scanning it whole as it grows).
    sqlx::query(&format!("SET LOCAL search_path TO {generation}")).execute(&mut *tx).await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut *tx).await?;
    let checkpoint: i64 = sqlx::query_scalar("SELECT position FROM checkpoint FOR UPDATE").fetch_one(&mut *tx).await?;
    check_continuity(u64::try_from(checkpoint).unwrap_or(0), batch)?;
    // Fast path: the whole batch under one savepoint. Only when something fails is the batch
    // redone event by event, each in its own savepoint, to find and park the culprit.
    sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
    let (position, changes, committed) = match apply_events(tx, batch, checkpoint, false).await {
        Ok(outcome) => {
            sqlx::query("RELEASE SAVEPOINT batch").execute(&mut *tx).await?;
            outcome
        }
        Err(error) => {
            tracing::warn!(%error, "a batch failed; applying it event by event");
            sqlx::query("ROLLBACK TO SAVEPOINT batch").execute(&mut *tx).await?;
            apply_events(tx, batch, checkpoint, true).await?
        }
    };
    sqlx::query("UPDATE checkpoint SET position = $1, updated_at = now()").bind(position).execute(&mut *tx).await?;
    if announce {
        notify(tx, position, &changes).await?;
    }
    Ok(Committed { position: u64::try_from(position).unwrap_or(0), ..committed })
}

/// Applies the events after `checkpoint`. Without `isolate`, the first failure fails the call;
/// with it, each event gets savepoints and retries, and a failing one is parked.
async fn apply_events(
    tx: &mut PgConnection,
    batch: &[Incoming],
    checkpoint: i64,
    isolate: bool,
) -> sqlx::Result<(i64, Changes, Committed)> {
    let mut position = checkpoint;
    let mut changes = Changes::default();
    let mut committed = Committed::default();
    if !isolate {
        // The fast path: decode everything, then apply the batch set-based.
        let mut decoded = Vec::with_capacity(batch.len());
        for message in batch {
            let Ok(seq) = i64::try_from(message.position) else { continue };
            if seq <= position {
                continue;
            }
            position = seq;
            match EventEnvelope::decode(&message.payload) {
                Ok(event) => decoded.push((seq, message, event)),
                Err(error) => {
                    tracing::error!(position = seq, subject = %message.subject, %error, "unreadable event parked");
                    park(tx, message, &error.to_string(), 1).await?;
                    committed.parked += 1;
                }
            }
        }
        let applied: Vec<Applied<'_>> = decoded
            .iter()
            .map(|(seq, message, event)| Applied {
                position: *seq,
                subject: &message.subject,
                recorded_at: message.recorded_at,
                event,
            })
            .collect();
        models::apply(tx, &applied, &mut changes).await?;
        committed.applied += u64::try_from(applied.len()).unwrap_or(u64::MAX);
        return Ok((position, changes, committed));
    }
    for message in batch {
        let Ok(seq) = i64::try_from(message.position) else { continue };
        if seq <= position {
            continue;
        }
        position = seq;
        let event = match EventEnvelope::decode(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(position = seq, subject = %message.subject, %error, "unreadable event parked");
                park(tx, message, &error.to_string(), 1).await?;
                committed.parked += 1;
                continue;
            }
        };
        let applied =
            Applied { position: seq, subject: &message.subject, recorded_at: message.recorded_at, event: &event };
        let mut last_error = String::new();
        let mut done = false;
        for _ in 0..ATTEMPTS {
            sqlx::query("SAVEPOINT event").execute(&mut *tx).await?;
            let mut attempt_changes = changes.clone();
            match models::apply(tx, std::slice::from_ref(&applied), &mut attempt_changes).await {
                Ok(()) => {
                    sqlx::query("RELEASE SAVEPOINT event").execute(&mut *tx).await?;
                    changes = attempt_changes;
                    done = true;
                    break;
                }
                Err(error) => {
                    last_error = error.to_string();
                    // If even this fails the connection is gone: the whole batch is retried.
                    sqlx::query("ROLLBACK TO SAVEPOINT event").execute(&mut *tx).await?;
                }
            }
        }
        if done {
            committed.applied += 1;
        } else {
            tracing::error!(position = seq, subject = %message.subject, error = %last_error, "event parked");
            park(tx, message, &last_error, ATTEMPTS).await?;
            committed.parked += 1;
        }
    }
    Ok((position, changes, committed))
}

async fn park(tx: &mut PgConnection, message: &Incoming, error: &str, attempts: u32) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO parked_events (position, subject, payload, error, attempts) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (position) DO NOTHING",
    )
    .bind(i64::try_from(message.position).unwrap_or(i64::MAX))
    .bind(&message.subject)
    .bind(message.payload.as_ref())
    .bind(error)
    .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues the change notifications ([`command_api::Notification`]); PostgreSQL sends them when
/// the transaction commits. A commit that changed nothing still sends its position.
pub(crate) async fn notify(tx: &mut PgConnection, position: i64, changes: &Changes) -> sqlx::Result<()> {
    let position = u64::try_from(position).unwrap_or(0);
    let notifications = Notification::for_commit(
        position,
        changes.tickets.iter().copied(),
        changes.orders.iter().copied(),
        changes.sessions.iter().copied(),
        changes.events.iter().copied(),
    );
    for notification in notifications {
        let payload = notification.encode().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Gap, Incoming, check_continuity};

    fn at(position: u64) -> Incoming {
        Incoming {
            position,
            subject: String::new(),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            payload: bytes::Bytes::new(),
            traceparent: None,
        }
    }

    #[test]
    fn a_batch_must_continue_from_the_checkpoint() {
        assert_eq!(check_continuity(4, &[at(5), at(6)]), Ok(()));
        assert_eq!(check_continuity(4, &[at(3), at(4), at(5)]), Ok(()), "redeliveries are skipped, not gaps");
        assert_eq!(check_continuity(4, &[at(6), at(7)]), Err(Gap { expected: 5, found: 6 }), "the first one counts");
        assert_eq!(check_continuity(4, &[at(5), at(7)]), Err(Gap { expected: 6, found: 7 }));
        assert_eq!(check_continuity(0, &[]), Ok(()));
    }
}
