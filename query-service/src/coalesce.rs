//! Reads by key that arrive together share one query, across requests.
//!
//! The trivial request with a session cookie used to ask PostgreSQL whether its session was
//! signed out, one query per request, and `ticket(id)` read its row the same way: PostgreSQL was
//! kept half as busy as the gateway (0.53 cores against 1.1 for the trivial request in the
//! side-by-side run, `bench/results/peers.md`). A
//! [`Coalesced`] read has a few workers; each, when free, takes every read waiting (up to
//! [`MAX_BATCH`]) and makes one `= ANY($1)` query for all of them.
//!
//! The answers stay exact: a read joins only a query that begins after it arrived, so whatever
//! was committed before a request arrived (a sign-out through another gateway, the write a
//! mutation waited for) is seen by it. A cache or a set kept in memory instead would be current
//! only once every gateway had heard of the change, which a notification cannot promise without
//! a round trip of its own; this needs no invalidation and holds no rows.
//!
//! A query that takes longer than [`DEADLINE`] answers [`Unanswered`] to its reads (a session then
//! counts as signed out), so a database that hangs holds no request longer than that; a worker
//! that panics is started again.
//!
//! Mutations read the order they answer with the same way: 2,000 buyers of one event answered in
//! the same moment are a few queries, not 2,000.

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
/// The longest one batched query may take before its reads are answered [`Unanswered`].
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// A batched read the read model did not answer (an error, or past [`DEADLINE`]); logged once per
/// batch by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the read model could not answer")]
pub struct Unanswered;

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
    /// Reads a worker took from the queue.
    pub reads: AtomicU64,
    /// Queries made for them.
    pub queries: AtomicU64,
}

/// The answer a read waits for.
type Answer<V> = oneshot::Sender<Result<Option<V>, Unanswered>>;
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
            tokio::spawn(supervise(Arc::clone(&fetch), Arc::clone(&waiting), Arc::clone(&counts)));
        }
        Self { queue, counts }
    }

    /// The value for `key` as of a query that began after this call.
    ///
    /// # Errors
    /// [`Unanswered`]: the query failed or took longer than [`DEADLINE`], or its worker panicked.
    pub async fn get(&self, key: F::Key) -> Result<Option<F::Value>, Unanswered> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((key, answer)).await.map_err(|_| Unanswered)?;
        answered.await.map_err(|_| Unanswered)?
    }
}

/// Runs one worker, and starts it again if it panics (its batch's reads get [`Unanswered`] as
/// their answers are dropped); ends with the queue.
async fn supervise<F: Fetch>(fetch: Arc<F>, waiting: Waiting<F>, counts: Arc<Counts>) {
    loop {
        let worker = tokio::spawn(work(Arc::clone(&fetch), Arc::clone(&waiting), Arc::clone(&counts)));
        match worker.await {
            Err(error) if error.is_panic() => tracing::error!("a batched-read worker panicked; starting it again"),
            _ => return,
        }
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
        match tokio::time::timeout(DEADLINE, fetch.fetch(keys)).await.unwrap_or(Err(sqlx::Error::PoolTimedOut)) {
            Ok(found) => {
                for (key, answer) in batch.drain(..) {
                    let _ = answer.send(Ok(found.get(&key).cloned()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, reads = batch.len(), "a batched read failed");
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Err(Unanswered));
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
        crate::db::tickets_by_id(&self.0, &keys).await
    }
}

/// Orders by id (`read.orders`): the order a mutation answers with, read once it is projected.
#[derive(Debug)]
pub struct Orders(pub sqlx::PgPool);

impl Fetch for Orders {
    type Key = uuid::Uuid;
    type Value = crate::db::OrderRow;

    async fn fetch(&self, keys: Vec<uuid::Uuid>) -> sqlx::Result<HashMap<uuid::Uuid, crate::db::OrderRow>> {
        let rows: Vec<crate::db::OrderRow> = crate::db::by_ids(&self.0, crate::db::ORDER, &keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::{Notify, Semaphore};

    use super::{Coalesced, Fetch, MAX_BATCH, Unanswered, WORKERS};

    /// A store of numbers whose queries read it when they begin (like a statement's snapshot) and
    /// then wait for a permit to answer: a test decides when each one ends.
    struct Gated {
        values: std::sync::Mutex<HashMap<u32, u64>>,
        gate: Arc<Semaphore>,
        started: Arc<Notify>,
        queries: AtomicU64,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Fetch for Arc<Gated> {
        type Key = u32;
        type Value = u64;

        async fn fetch(&self, keys: Vec<u32>) -> sqlx::Result<HashMap<u32, u64>> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            let snapshot: HashMap<u32, u64> = {
                let values = self.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                keys.iter().filter_map(|k| values.get(k).map(|v| (*k, *v))).collect()
            };
            let failing = self.fail.load(Ordering::SeqCst);
            self.started.notify_one();
            let _permit = self.gate.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
            if failing { Err(sqlx::Error::PoolTimedOut) } else { Ok(snapshot) }
        }
    }

    fn gated() -> Arc<Gated> {
        Arc::new(Gated {
            values: std::sync::Mutex::default(),
            gate: Arc::new(Semaphore::new(0)),
            started: Arc::default(),
            queries: AtomicU64::new(0),
            fail: std::sync::atomic::AtomicBool::new(false),
        })
    }

    #[tokio::test]
    async fn reads_waiting_together_share_one_query_and_each_gets_its_own_answer() {
        let store = gated();
        store.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend([(1, 10), (2, 20)]);
        let reads = Coalesced::spawn(Arc::clone(&store));
        // Every worker busy with one read, held at the gate.
        let mut first = Vec::new();
        for _ in 0..WORKERS {
            let reads = reads.clone();
            first.push(tokio::spawn(async move { reads.get(1).await }));
            store.started.notified().await;
        }
        // 1,000 reads queue meanwhile: 2 of them known, the rest unknown, many duplicates.
        let mut queued = Vec::new();
        for n in 0..1000_u32 {
            let reads = reads.clone();
            queued.push(tokio::spawn(async move { (n, reads.get(n % 3).await) }));
        }
        while reads.queue.capacity() > super::QUEUE - 1000 {
            tokio::task::yield_now().await;
        }
        store.gate.add_permits(1_000_000);
        for read in first {
            assert_eq!(read.await.unwrap_or_else(|e| panic!("{e}")), Ok(Some(10)));
        }
        for read in queued {
            let (n, answer) = read.await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(answer, Ok([None, Some(10), Some(20)][(n % 3) as usize]), "read {n}");
        }
        let queries = store.queries.load(Ordering::SeqCst);
        let batches = 1000_usize.div_ceil(MAX_BATCH) as u64;
        assert!(queries <= WORKERS as u64 + batches, "1,000 queued reads made {} queries", queries - WORKERS as u64);
        assert_eq!(reads.counts.reads.load(Ordering::SeqCst), 1000 + WORKERS as u64);
    }

    #[tokio::test]
    async fn a_read_never_joins_a_query_that_began_before_it() {
        let store = gated();
        store.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(7, 1);
        let reads = Coalesced::spawn(Arc::clone(&store));
        // Queries of key 7 are in flight on every worker, begun before the change below.
        let mut early = Vec::new();
        for _ in 0..WORKERS {
            let reads = reads.clone();
            early.push(tokio::spawn(async move { reads.get(7).await }));
            store.started.notified().await;
        }
        // The change commits, then a read of the same key arrives.
        store.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(7, 2);
        let late = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(7).await }
        });
        store.gate.add_permits(1_000_000);
        assert_eq!(late.await.unwrap_or_else(|e| panic!("{e}")), Ok(Some(2)), "answered from a query begun before it");
        for read in early {
            assert!(read.await.unwrap_or_else(|e| panic!("{e}")).is_ok());
        }
    }

    #[tokio::test]
    async fn a_failed_or_hung_query_answers_unanswered_and_the_next_one_works() {
        let store = gated();
        store.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(1, 1);
        let reads = Coalesced::spawn(Arc::clone(&store));
        store.fail.store(true, Ordering::SeqCst);
        store.gate.add_permits(1_000_000);
        assert_eq!(reads.get(1).await, Err(Unanswered));
        store.fail.store(false, Ordering::SeqCst);
        assert_eq!(reads.get(1).await, Ok(Some(1)));

        // A query that never ends: its reads are answered at the deadline.
        let hung = gated();
        let reads = Coalesced::spawn(Arc::clone(&hung));
        let asked = std::time::Instant::now();
        assert_eq!(reads.get(1).await, Err(Unanswered));
        assert!(asked.elapsed() < super::DEADLINE * 2, "answered after {:?}", asked.elapsed());
    }
}
