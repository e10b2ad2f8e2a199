//! Loads of one listing that arrive together share one read of the stream.
//!
//! When 1,000 buyers want one ticket, the first hold is placed and the other 999 are refused from a
//! fresh load of the listing (a replica's cached state is never enough to refuse). Each of those
//! loads asks the stream's subject index and reads every subject of the boundary: 999 times the
//! same reads. Here, a load of a boundary that arrives while one of it is in flight waits for the
//! next, which begins once the one in flight has finished, and everyone who arrived meanwhile
//! shares it.
//!
//! A load is only shared with callers who arrived before it began, so each sees every write that
//! was acknowledged before it asked: a refusal decided from a shared load is as exact as one
//! decided from a load of its own. A shared read that fails is retried by each caller alone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

/// The callers waiting for the next read of one boundary.
struct Boundary<T> {
    /// Whether a task is reading this boundary (it reads again while anyone is waiting).
    running: bool,
    waiting: Vec<oneshot::Sender<Option<T>>>,
}

/// Shared reads of boundaries, one set per replica.
pub struct SharedLoads<T> {
    boundaries: std::sync::Mutex<HashMap<String, Boundary<T>>>,
    /// Loads asked.
    pub asked: AtomicU64,
    /// Reads made for them.
    pub reads: AtomicU64,
}

impl<T> Default for SharedLoads<T> {
    fn default() -> Self {
        Self { boundaries: std::sync::Mutex::default(), asked: AtomicU64::new(0), reads: AtomicU64::new(0) }
    }
}

impl<T: Clone + Send + 'static> SharedLoads<T> {
    /// What `read` finds for `boundary`, from a read that began after this call: shared with the
    /// callers that arrived with this one, or `None` when that read failed (the caller then reads
    /// alone).
    pub async fn load<R, F>(self: &Arc<Self>, boundary: &str, read: R) -> Option<T>
    where
        R: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = Option<T>> + Send + 'static,
    {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut boundaries = self.boundaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry =
                boundaries.entry(boundary.to_owned()).or_insert_with(|| Boundary { running: false, waiting: vec![] });
            entry.waiting.push(answer);
            !std::mem::replace(&mut entry.running, true)
        };
        if lead {
            // On a task of its own, so a caller that goes away does not leave the others waiting.
            tokio::spawn(Arc::clone(self).run(boundary.to_owned(), read));
        }
        answered.await.ok().flatten()
    }

    /// Reads `boundary` for everyone waiting, and again while anyone arrived during the last read.
    async fn run<R, F>(self: Arc<Self>, boundary: String, read: R)
    where
        R: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = Option<T>> + Send + 'static,
    {
        let mut leading = Leading { loads: &self, boundary: &boundary, done: false };
        loop {
            let waiting = {
                let mut boundaries = self.boundaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(entry) = boundaries.get_mut(&boundary) else {
                    leading.done = true;
                    return;
                };
                if entry.waiting.is_empty() {
                    boundaries.remove(&boundary);
                    leading.done = true;
                    return;
                }
                std::mem::take(&mut entry.waiting)
            };
            // Everyone in `waiting` arrived before this read begins.
            self.reads.fetch_add(1, Ordering::Relaxed);
            let found = read().await;
            for answer in waiting {
                let _ = answer.send(found.clone());
            }
        }
    }
}

/// The task reading a boundary; if it ends without saying it is done (a panic), the boundary's
/// waiters are dropped (they read alone) and the next caller leads again.
struct Leading<'a, T> {
    loads: &'a SharedLoads<T>,
    boundary: &'a str,
    done: bool,
}

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.loads.boundaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(self.boundary);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::{Notify, Semaphore};

    use super::SharedLoads;

    /// A value read when a read begins, answered when the gate lets it.
    struct Gated {
        value: AtomicU64,
        gate: Semaphore,
        started: Notify,
    }

    fn read(
        store: &Arc<Gated>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<u64>> + Send>> + Send + Sync + 'static {
        let store = Arc::clone(store);
        move || {
            let store = Arc::clone(&store);
            Box::pin(async move {
                let seen = store.value.load(Ordering::SeqCst);
                store.started.notify_one();
                let _permit = store.gate.acquire().await.ok()?;
                Some(seen)
            })
        }
    }

    #[tokio::test]
    async fn loads_that_arrive_during_a_read_share_the_next_one_which_sees_what_came_before_them() {
        let store = Arc::new(Gated { value: AtomicU64::new(1), gate: Semaphore::new(0), started: Notify::new() });
        let loads = Arc::new(SharedLoads::<u64>::default());
        // A read of "b" in flight, begun when the value was 1.
        let first = tokio::spawn({
            let (loads, read) = (Arc::clone(&loads), read(&store));
            async move { loads.load("b", read).await }
        });
        store.started.notified().await;
        // The value changes, then 100 loads arrive while that read is still in flight.
        store.value.store(2, Ordering::SeqCst);
        let mut later = Vec::new();
        for _ in 0..100 {
            let (loads, read) = (Arc::clone(&loads), read(&store));
            later.push(tokio::spawn(async move { loads.load("b", read).await }));
        }
        while loads.asked.load(Ordering::SeqCst) < 101 {
            tokio::task::yield_now().await;
        }
        store.gate.add_permits(1_000);
        assert_eq!(first.await.unwrap_or_else(|e| panic!("{e}")), Some(1));
        for load in later {
            assert_eq!(load.await.unwrap_or_else(|e| panic!("{e}")), Some(2), "answered by a read begun before it");
        }
        assert_eq!(loads.reads.load(Ordering::SeqCst), 2, "101 loads, two reads");
        assert!(
            loads.boundaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty(),
            "idle boundaries are forgotten"
        );
    }
}
