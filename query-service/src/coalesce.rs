//! Reads by key that arrive together share one query, across requests.
//!
//! The trivial request with a session cookie used to ask PostgreSQL whether its session was
//! signed out, one query per request, and `ticket(id)` read its row the same way: PostgreSQL was
//! kept busier than the gateway (0.62 cores for the trivial request in the side-by-side run). A
//! [`Coalesced`] read has a few workers; each, when free, takes every read waiting (up to
//! [`MAX_BATCH`]) and makes one `= ANY($1)` query for all of them.
//!
//! The answers stay exact: a read joins only a query that begins after it arrived, so whatever
//! was committed before a request arrived (a sign-out through another gateway, the write a
//! mutation waited for) is seen by it. A cache or a set kept in memory instead would be current
//! only once every gateway had heard of the change, which a notification cannot promise without
//! a round trip of its own; this needs no invalidation and holds no rows.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc, oneshot};

/// Queries one [`Coalesced`] may have in flight at once: enough that a read seldom waits behind a
/// whole round trip, few against the pool's 16 connections.
pub const WORKERS: usize = 4;
/// The most keys one query asks about.
pub const MAX_BATCH: usize = 512;
/// Reads that may wait for a worker; beyond that, callers wait to be queued.
const QUEUE: usize = 16 * 1024;

/// A read model read by keys, in batches.
pub trait Fetch: Send + Sync + 'static {
    /// What a read asks for.
    type Key: Copy + Eq + Hash + Send + Sync + 'static;
    /// What it finds.
    type Value: Clone + Send + Sync + 'static;
    /// The values found for `keys` (distinct); a key that is absent found nothing.
    fn fetch(&self, keys: Vec<Self::Key>)
    -> impl Future<Output = sqlx::Result<HashMap<Self::Key, Self::Value>>> + Send;
}

/// How busy a [`Coalesced`] read was, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct Counts {
    /// Reads asked.
    pub reads: AtomicU64,
    /// Queries made for them.
    pub queries: AtomicU64,
}

/// The answer a read waits for: `Err` when the query failed.
type Answer<V> = oneshot::Sender<Result<Option<V>, ()>>;
/// The reads waiting for a worker, shared by the workers.
type Waiting<F> = Arc<Mutex<mpsc::Receiver<(<F as Fetch>::Key, Answer<<F as Fetch>::Value>)>>>;

/// Batched reads through `F`, shared by a gateway's requests.
pub struct Coalesced<F: Fetch> {
    queue: mpsc::Sender<(F::Key, Answer<F::Value>)>,
    /// How busy it was.
    pub counts: Arc<Counts>,
}

impl<F: Fetch> Clone for Coalesced<F> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone(), counts: Arc::clone(&self.counts) }
    }
}

impl<F: Fetch> std::fmt::Debug for Coalesced<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesced").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl<F: Fetch> Coalesced<F> {
    /// Starts [`WORKERS`] workers reading through `fetch`; they stop when the last clone is
    /// dropped.
    #[must_use]
    pub fn spawn(fetch: F) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let fetch = Arc::new(fetch);
        let counts = Arc::<Counts>::default();
        for _ in 0..WORKERS {
            tokio::spawn(work(Arc::clone(&fetch), Arc::clone(&waiting), Arc::clone(&counts)));
        }
        Self { queue, counts }
    }

    /// The value for `key` as of a query that began after this call; `Err` when the read model
    /// could not answer.
    ///
    /// # Errors
    /// The query failed (its error is logged once for the whole batch).
    pub async fn get(&self, key: F::Key) -> Result<Option<F::Value>, ()> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((key, answer)).await.map_err(|_| ())?;
        answered.await.map_err(|_| ())?
    }
}

/// One worker: takes every read waiting, makes one query for them all and answers each; until
/// the queue closes.
async fn work<F: Fetch>(fetch: Arc<F>, waiting: Waiting<F>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // Takes what is waiting now (at least one), never what arrives while it queries.
            let mut waiting = waiting.lock().await;
            if waiting.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        counts.queries.fetch_add(1, Ordering::Relaxed);
        counts.reads.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let keys: Vec<F::Key> = batch.iter().map(|(key, _)| *key).collect::<HashSet<_>>().into_iter().collect();
        match fetch.fetch(keys).await {
            Ok(found) => {
                for (key, answer) in batch.drain(..) {
                    let _ = answer.send(Ok(found.get(&key).cloned()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, reads = batch.len(), "a batched read failed");
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Err(()));
                }
            }
        }
    }
}

/// Signed-out sessions (`read.revoked_sessions`): a session found there was signed out.
#[derive(Debug)]
pub struct SignOuts(pub sqlx::PgPool);

impl Fetch for SignOuts {
    type Key = uuid::Uuid;
    type Value = ();

    async fn fetch(&self, keys: Vec<uuid::Uuid>) -> sqlx::Result<HashMap<uuid::Uuid, ()>> {
        Ok(crate::db::revoked_among(&self.0, &keys).await?.into_iter().map(|session| (session, ())).collect())
    }
}

/// Tickets by id (`read.tickets`).
#[derive(Debug)]
pub struct Tickets(pub sqlx::PgPool);

impl Fetch for Tickets {
    type Key = uuid::Uuid;
    type Value = crate::db::TicketRow;

    async fn fetch(&self, keys: Vec<uuid::Uuid>) -> sqlx::Result<HashMap<uuid::Uuid, crate::db::TicketRow>> {
        let rows: Vec<crate::db::TicketRow> = crate::db::by_ids(&self.0, crate::db::TICKET, &keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}
