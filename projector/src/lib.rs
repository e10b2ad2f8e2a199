//! The read side's writer: projects every event from JetStream into PostgreSQL read models.
//!
//! - **Batches.** The projector pulls whatever is available (up to `batch_max`) and applies it in
//!   one transaction, so batches grow under load and the projector keeps up with the write path.
//! - **Exactly once in effect.** The checkpoint (the last applied stream sequence) is read with
//!   `FOR UPDATE` and written in the same transaction as the batch; events at or below it are
//!   skipped. Messages are acknowledged only after commit, and whenever a projector (re)starts or
//!   takes over, its durable consumer is repositioned at checkpoint + 1: the database, not the
//!   consumer, says what has been applied. A crash between commit and ack changes nothing.
//! - **Poison events.** An event that fails is retried (each attempt in its own savepoint), then
//!   parked in `parked_events` with its error; the batch goes on without it (see the README for
//!   what that means for the affected aggregate).
//! - **Notifications.** Each commit sends `pg_notify('ticketing_changes', …)` with the new
//!   position and the tickets and orders that changed and the sessions signed out; PostgreSQL delivers it only on commit.
//! - **Replicas.** Any number may run: one holds a PostgreSQL advisory lock and projects, the
//!   others wait to take over.
//! - **Rebuild.** [`rebuild::rebuild`] replays the stream into a new generation and switches
//!   readers over in one transaction ([`schema`]).

pub mod cli;
pub mod models;
pub mod rebuild;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use domain::EventEnvelope;
use event_store::StreamSettings;
use futures::{FutureExt, StreamExt};
use sqlx::{Connection, PgConnection, PgPool};

use crate::models::{Applied, Changes};

use command_api::Notification;
use command_api::notification::CHANNEL;

/// The advisory lock the projecting replica holds.
const LEADER_LOCK: i64 = 0x7469_636b_6574_0002;

/// Attempts per event before it is parked.
const ATTEMPTS: u32 = 3;

/// The durable consumer's name.
pub const CONSUMER: &str = "projector";

/// Counters an operator can watch.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events applied.
    pub applied: AtomicU64,
    /// Events parked.
    pub parked: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// The last committed position.
    pub position: AtomicU64,
}

/// A stored message to project.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Stream sequence.
    pub position: u64,
    /// Subject in the domain's naming.
    pub subject: String,
    /// When the server stored it.
    pub recorded_at: time::OffsetDateTime,
    /// The raw body.
    pub payload: bytes::Bytes,
}

/// The projector.
#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    js: jetstream::Context,
    settings: StreamSettings,
    batch_max: usize,
    stats: Arc<Stats>,
}

/// What committing a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The checkpoint after the batch.
    pub position: u64,
    /// Events applied (not skipped, not parked).
    pub applied: u64,
    /// Events parked.
    pub parked: u64,
}

impl Projector {
    /// A projector on `pool` for the stream `settings` describe.
    pub fn new(pool: PgPool, client: async_nats::Client, settings: StreamSettings, batch_max: usize) -> Self {
        Self { pool, js: jetstream::new(client), settings, batch_max: batch_max.max(1), stats: Arc::default() }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Projects forever: waits for leadership, then follows the stream; after losing the
    /// database connection it starts over from the checkpoint.
    ///
    /// # Errors
    /// Only when the read models cannot be created at all.
    pub async fn run(self) -> anyhow::Result<()> {
        schema::ensure_live(&self.pool).await?;
        loop {
            if let Err(error) = self.lead().await {
                tracing::warn!(error = %format!("{error:#}"), "projector interrupted; starting over from the checkpoint");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// Holds the leader lock on one connection and projects while it holds.
    async fn lead(&self) -> anyhow::Result<()> {
        // A connection of its own, outside the pool: if this projector dies, the connection dies
        // with it and PostgreSQL releases the lock for a standby.
        let mut leader = self.pool.acquire().await?.detach();
        loop {
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut leader).await?;
            if got {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::info!("projecting (leader)");
        let result = self.follow().await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LEADER_LOCK).execute(&mut leader).await;
        result
    }

    /// Follows the stream from the live generation's checkpoint until the generation changes.
    async fn follow(&self) -> anyhow::Result<()> {
        loop {
            let mut conn = self.pool.acquire().await?;
            let live = schema::live(&mut conn).await?;
            let from = checkpoint(&mut conn, &live).await? + 1;
            drop(conn);
            let consumer = self.position_consumer(from).await?;
            let mut messages = consumer.stream().max_messages_per_batch(self.batch_max.min(10_000)).messages().await?;
            // The first delivery must be `from` itself: anything later is a gap too.
            let mut next = Some(from);
            'batches: loop {
                let Some(first) = messages.next().await else { break 'batches };
                let mut batch = vec![first?];
                while batch.len() < self.batch_max {
                    match messages.next().now_or_never() {
                        Some(Some(message)) => batch.push(message?),
                        _ => break,
                    }
                }
                // Stream positions are consecutive (nothing is ever deleted). A message past the
                // next position means some were lost in delivery (while a NATS node failed over,
                // say) and would come back only after the ack wait: applying past them would
                // skip them for good. Apply up to the gap, then reposition at checkpoint + 1.
                let positions = batch.iter().map(|m| m.info().map_or(0, |info| info.stream_sequence));
                let in_order = in_order_len(positions, &mut next);
                let gap = in_order < batch.len();
                batch.truncate(in_order);
                let incoming: Vec<Incoming> = batch.iter().filter_map(|m| self.incoming(m)).collect();
                if !incoming.is_empty() {
                    match self.commit(&live, &incoming).await? {
                        Some(_) => {
                            if let Some(last) = batch.last() {
                                last.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                            }
                        }
                        // Another generation went live: start over from its checkpoint.
                        None => break 'batches,
                    }
                }
                if gap {
                    tracing::warn!(expected = ?next, "a gap in delivery; repositioning at the checkpoint");
                    break 'batches;
                }
            }
        }
    }

    /// Creates (or recreates) the durable consumer so it delivers from `from` on.
    async fn position_consumer(&self, from: u64) -> anyhow::Result<consumer::PullConsumer> {
        let stream = self.js.get_stream(&self.settings.name).await?;
        let _ = stream.delete_consumer(CONSUMER).await;
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: from },
                ack_policy: consumer::AckPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: i64::try_from(self.batch_max * 4).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await?;
        Ok(consumer)
    }

    fn incoming(&self, message: &jetstream::Message) -> Option<Incoming> {
        let info = message.info().ok()?;
        Some(Incoming {
            position: info.stream_sequence,
            subject: self.settings.domain_subject(&message.subject),
            recorded_at: info.published,
            payload: message.payload.clone(),
        })
    }

    /// Applies a batch to `generation` and commits it with the checkpoint; returns `None`, having
    /// written nothing, when `generation` is no longer live. Does not acknowledge anything.
    ///
    /// # Errors
    /// A database error (the batch is not committed).
    pub async fn commit(&self, generation: &str, batch: &[Incoming]) -> anyhow::Result<Option<Committed>> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // FOR SHARE: a rebuild's switch (FOR UPDATE) waits for this batch, and vice versa.
        let live: String =
            sqlx::query_scalar("SELECT active FROM public.projection_generation FOR SHARE").fetch_one(&mut *tx).await?;
        if live != generation {
            return Ok(None);
        }
        let committed = apply_batch(&mut tx, generation, batch, true).await?;
        tx.commit().await?;
        self.stats.applied.fetch_add(committed.applied, Ordering::Relaxed);
        self.stats.parked.fetch_add(committed.parked, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.position.store(committed.position, Ordering::Relaxed);
        Ok(Some(committed))
    }
}

/// How many of `positions` (as delivered) can be applied in order: up to the first one past the
/// next expected position. `next` carries the expected position between batches; it starts at
/// the position the consumer was created at (or, when `None`, the first message sets it).
/// Redeliveries of earlier positions are in order (the checkpoint skips them).
fn in_order_len(positions: impl IntoIterator<Item = u64>, next: &mut Option<u64>) -> usize {
    let mut count = 0;
    for position in positions {
        match *next {
            Some(expected) if position > expected => break,
            Some(expected) if position < expected => {}
            _ => *next = Some(position + 1),
        }
        count += 1;
    }
    count
}

/// The checkpoint of a generation.
///
/// # Errors
/// A database error.
pub fn checkpoint<'a>(
    conn: &'a mut PgConnection,
    generation: &'a str,
) -> futures::future::BoxFuture<'a, anyhow::Result<u64>> {
    Box::pin(checkpoint_inner(conn, generation))
}

async fn checkpoint_inner(conn: &mut PgConnection, generation: &str) -> anyhow::Result<u64> {
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
) -> anyhow::Result<Committed> {
    sqlx::query(&format!("SET LOCAL search_path TO {generation}")).execute(&mut *tx).await?;
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
) -> anyhow::Result<(i64, Changes, Committed)> {
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
async fn notify(tx: &mut PgConnection, position: i64, changes: &Changes) -> sqlx::Result<()> {
    let position = u64::try_from(position).unwrap_or(0);
    let notifications = Notification::for_commit(
        position,
        changes.tickets.iter().copied(),
        changes.orders.iter().copied(),
        changes.sessions.iter().copied(),
    );
    for notification in notifications {
        let payload = notification.encode().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Gap, Incoming, check_continuity, in_order_len};

    fn at(position: u64) -> Incoming {
        Incoming {
            position,
            subject: String::new(),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            payload: bytes::Bytes::new(),
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

    #[test]
    fn the_first_delivery_after_positioning_is_checked_too() {
        let mut next = Some(5);
        assert_eq!(in_order_len([6, 7], &mut next), 0, "5 never came");
        assert_eq!(next, Some(5));
    }

    #[test]
    fn delivery_is_applied_up_to_a_gap_and_redeliveries_pass() {
        let mut next = None;
        assert_eq!(in_order_len([5, 6, 7], &mut next), 3, "the first message sets the start");
        assert_eq!(next, Some(8));
        assert_eq!(in_order_len([6, 8, 9], &mut next), 3, "a redelivery of 6 passes, 8 follows 7");
        assert_eq!(next, Some(10));
        assert_eq!(in_order_len([10, 12, 13], &mut next), 1, "11 is missing: stop before 12");
        assert_eq!(next, Some(11));
        assert_eq!(in_order_len([], &mut next), 0);
    }
}
