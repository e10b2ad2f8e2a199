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

mod batch;
pub mod cli;
mod consumer;
pub mod models;
pub mod rebuild;
pub mod schema;
pub mod watchdog;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_nats::jetstream;
use event_store::StreamSettings;
use sqlx::PgPool;

pub use batch::{Gap, apply_batch, checkpoint};

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
    /// When the server stored the event at [`Self::position`] (Unix milliseconds).
    pub position_recorded_ms: AtomicU64,
    /// Whether this projector holds the leader lock (a standby projects nothing).
    pub leading: std::sync::atomic::AtomicBool,
    /// Whether the [`watchdog`] saw it behind the stream with no progress for
    /// [`watchdog::WEDGED_AFTER`]: its `/healthz` then fails, so it is restarted.
    pub wedged: std::sync::atomic::AtomicBool,
}

/// A stored message to project.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The stream sequence: its position in the event stream.
    pub position: u64,
    /// Subject in the domain's naming.
    pub subject: String,
    /// When the server stored it.
    pub recorded_at: time::OffsetDateTime,
    /// The raw body.
    pub payload: bytes::Bytes,
    /// The trace context it was stored with (W3C `traceparent`), if any.
    pub traceparent: Option<String>,
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

/// Why projecting, rebuilding or changing generations failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// PostgreSQL failed; a batch in progress is not committed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A generation's migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batch did not continue from the checkpoint; nothing of it was applied.
    #[error(transparent)]
    Gap(#[from] Gap),
    /// JetStream failed: the stream, a consumer, a delivery or an acknowledgement.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A schema name that is not one of the projector's generations (`projection_<n>`).
    #[error("not a generation schema: {0:?}")]
    NotAGeneration(String),
    /// Refused to drop the generation readers use.
    #[error("{0} is the live generation")]
    LiveGeneration(String),
    /// The rebuild's replay consumer ended before the stream's head was replayed.
    #[error("the replay consumer ended")]
    ReplayEnded,
}

/// A JetStream error of any of `async_nats`'s kinds, as a [`ProjectorError`].
fn jetstream_error(error: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::JetStream(error.to_string())
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
}
