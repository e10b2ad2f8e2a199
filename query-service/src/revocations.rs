//! The signed-out sessions, in memory in each gateway: a request with a session cookie is checked
//! without asking PostgreSQL.
//!
//! Revocations are few, are events, and reach every gateway through the projector's
//! notifications, which PostgreSQL delivers to every listener when the projection commits. The
//! set is *complete* only while that holds:
//! - it is loaded from `read.revoked_sessions` after the gateway listens for notifications (so
//!   nothing committed in between is missed), before the gateway believes any projected position;
//! - each notification's sessions are added before its position is announced, so whoever waits
//!   for a position (a sign-out's read-your-writes) finds them;
//! - when notifications may have been lost (the listener's connection dropped, one could not be
//!   read), the set is marked incomplete until it is loaded again.
//!
//! While incomplete, or when there are more live revocations than the limit (the set is then
//! dropped, so memory stays bounded), [`Revocations::check`] answers "ask the read model" and the
//! gateway falls back to one query per request: never a revoked session let through.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

/// At most this many live revocations are kept in memory by default (about 40 MB at most).
pub const DEFAULT_LIMIT: usize = 1_000_000;

/// An expiry not known yet (a session just announced, its row read a moment later).
const UNKNOWN_EXPIRY: i64 = i64::MAX;

/// What [`Revocations::check`] knows of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Signed out.
    Revoked,
    /// Not signed out, as far as the projection has reached.
    Live,
    /// The set is incomplete: ask the read model.
    Unknown,
}

#[derive(Debug, Default)]
struct State {
    /// Every live revocation projected up to the announced position, when `complete`.
    sessions: HashMap<Uuid, i64>,
    /// Whether `sessions` can be trusted alone.
    complete: bool,
}

/// The signed-out sessions a gateway knows of.
#[derive(Debug)]
pub struct Revocations {
    state: RwLock<State>,
    limit: usize,
    /// The newest projected position whose sign-outs are all in the set.
    heard: tokio::sync::watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::with_limit(DEFAULT_LIMIT)
    }
}

impl Revocations {
    /// An empty, incomplete set that keeps at most `limit` revocations.
    pub fn with_limit(limit: usize) -> Self {
        Self { state: RwLock::default(), limit, heard: tokio::sync::watch::Sender::new(0) }
    }

    /// Records that every sign-out projected up to `position` is in the set.
    pub fn heard(&self, position: u64) {
        self.heard.send_if_modified(|heard| {
            let newer = position > *heard;
            if newer {
                *heard = position;
            }
            newer
        });
    }

    /// Waits (at most `within`) until every sign-out projected up to `position` is in the set;
    /// false when that did not happen in time.
    pub async fn wait_heard(&self, position: u64, within: std::time::Duration) -> bool {
        let mut heard = self.heard.subscribe();
        matches!(tokio::time::timeout(within, heard.wait_for(|h| *h >= position)).await, Ok(Ok(_)))
    }

    /// The most revocations kept in memory.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether `session` is signed out, if the set can say.
    pub fn check(&self, session: Uuid) -> Known {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match (state.complete, state.sessions.contains_key(&session)) {
            (_, true) => Known::Revoked,
            (true, false) => Known::Live,
            (false, false) => Known::Unknown,
        }
    }

    /// Notifications may have been lost: answer [`Known::Unknown`] for sessions not known to be
    /// revoked until the next [`Self::replace`].
    pub fn mark_incomplete(&self) {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner).complete = false;
    }

    /// The whole set, as loaded from the read model (`(session, expires at in Unix seconds)`)
    /// after its checkpoint was read at `as_of`, with at most `limit + 1` rows: more than `limit`
    /// drops the set and leaves it incomplete.
    pub fn replace(&self, loaded: Vec<(Uuid, i64)>, as_of: u64) {
        self.replace_set(loaded);
        self.heard(as_of);
    }

    fn replace_set(&self, loaded: Vec<(Uuid, i64)>) {
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.len() > self.limit {
            *state = State::default();
            return;
        }
        // Sessions announced while the load ran are in it (the load followed the LISTEN), or
        // their notification is still to come: keep them either way.
        let announced: Vec<(Uuid, i64)> = state.sessions.drain().collect();
        state.sessions = loaded.into_iter().collect();
        for (session, expires) in announced {
            state.sessions.entry(session).or_insert(expires);
        }
        state.complete = state.sessions.len() <= self.limit;
        if !state.complete {
            state.sessions = HashMap::new();
        }
    }

    /// Sessions a notification announced as signed out (their expiry read later, see
    /// [`Self::learn_expiries`]); forgets the ones whose tokens have expired by `now`.
    pub fn add(&self, sessions: &[Uuid], now: i64) {
        if sessions.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.sessions.retain(|_, expires| *expires > now);
        for session in sessions {
            state.sessions.entry(*session).or_insert(UNKNOWN_EXPIRY);
        }
        if state.sessions.len() > self.limit {
            // Over the limit: fall back to the read model rather than forget a revocation.
            *state = State::default();
        }
    }

    /// When the tokens of sessions added by [`Self::add`] expire, so they can be forgotten then.
    pub fn learn_expiries(&self, expiries: &[(Uuid, i64)]) {
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (session, expires) in expiries {
            if let Some(known) = state.sessions.get_mut(session) {
                *known = (*known).min(*expires);
            }
        }
    }

    /// How many revocations are held in memory.
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).sessions.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A read of the projected position that began after the caller asked, shared by every caller
/// asking meanwhile: at most one read is in flight, so PostgreSQL sees about one query per round
/// trip however many requests wait.
#[derive(Debug)]
pub struct Fence {
    /// Reads begun so far.
    started: std::sync::atomic::AtomicU64,
    /// Someone waits for a read.
    demand: tokio::sync::Notify,
    /// The last read: its number and what it found (`None`: the read failed).
    done: tokio::sync::watch::Sender<(u64, Option<u64>)>,
}

impl Fence {
    /// A fence reading the checkpoint on `pool`, with its reader task.
    pub fn spawn(pool: sqlx::PgPool) -> std::sync::Arc<Self> {
        let fence = std::sync::Arc::new(Self {
            started: std::sync::atomic::AtomicU64::new(0),
            demand: tokio::sync::Notify::new(),
            done: tokio::sync::watch::Sender::new((0, None)),
        });
        let reader = std::sync::Arc::downgrade(&fence);
        tokio::spawn(async move {
            loop {
                let Some(fence) = reader.upgrade() else { return };
                fence.demand.notified().await;
                let number = fence.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let found = crate::db::checkpoint(&pool).await.ok().and_then(|p| u64::try_from(p).ok());
                fence.done.send_replace((number, found));
            }
        });
        fence
    }

    /// The projected position as a read begun after this call found it; `None` when that read
    /// failed or took longer than `within`.
    pub async fn position(&self, within: std::time::Duration) -> Option<u64> {
        let needed = self.started.load(std::sync::atomic::Ordering::SeqCst) + 1;
        let mut done = self.done.subscribe();
        self.demand.notify_one();
        let read = tokio::time::timeout(within, done.wait_for(|(number, _)| *number >= needed)).await;
        read.ok()?.ok()?.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn nothing_is_trusted_before_the_first_load_nor_after_notifications_may_be_lost() {
        let set = Revocations::default();
        assert_eq!(set.check(id(1)), Known::Unknown);
        set.replace(vec![(id(2), 100)], 0);
        assert_eq!((set.check(id(1)), set.check(id(2))), (Known::Live, Known::Revoked));
        set.mark_incomplete();
        assert_eq!((set.check(id(1)), set.check(id(2))), (Known::Unknown, Known::Revoked));
        set.replace(vec![], 0);
        assert_eq!(set.check(id(2)), Known::Revoked, "announced before the reload, kept");
        assert_eq!(set.check(id(1)), Known::Live);
    }

    #[test]
    fn announced_sessions_are_revoked_at_once_and_forgotten_after_their_tokens_expire() {
        let set = Revocations::default();
        set.replace(vec![], 0);
        set.add(&[id(1), id(2)], 10);
        assert_eq!((set.check(id(1)), set.check(id(2))), (Known::Revoked, Known::Revoked));
        set.learn_expiries(&[(id(1), 20)]);
        set.add(&[id(3)], 30);
        assert_eq!(set.check(id(1)), Known::Live, "its token expired at 20");
        assert_eq!(set.check(id(2)), Known::Revoked, "expiry unknown: kept");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn past_the_limit_the_set_is_dropped_and_the_read_model_is_asked() {
        let set = Revocations::with_limit(3);
        set.replace(vec![(id(1), 100), (id(2), 100)], 0);
        set.add(&[id(3)], 0);
        assert_eq!((set.len(), set.check(id(3))), (3, Known::Revoked));
        set.add(&[id(4)], 0);
        assert_eq!(set.len(), 0, "memory stays bounded");
        assert_eq!(
            (set.check(id(1)), set.check(id(4)), set.check(id(9))),
            (Known::Unknown, Known::Unknown, Known::Unknown)
        );
        set.replace((1..=4).map(|n| (id(n), 100)).collect(), 0);
        assert_eq!((set.len(), set.check(id(9))), (0, Known::Unknown), "a load over the limit is not kept");
        set.replace(vec![(id(1), 100)], 0);
        assert_eq!((set.len(), set.check(id(9))), (1, Known::Live));
    }
}
