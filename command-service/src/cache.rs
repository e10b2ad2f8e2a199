//! The last state this replica wrote for each consistency boundary.
//!
//! A command decides from the cached state and appends guarded by the cached last_sequence, so the
//! common path (nobody else wrote to the boundary in between) needs no load from the stream. The
//! cache changes speed, never answers:
//! - a stale entry fails the append's guard (a conflict): the entry is dropped and the command
//!   loads and decides again, as it would after losing any race;
//! - a refusal or an "already done" decided from a cached state is not believed: the command
//!   loads and decides again, and only an answer from a fresh load goes back to the client.
//!
//! Entries are written only after an acknowledged append. The cache holds at most [`CAPACITY`]
//! boundaries; when full it starts again empty (a miss costs one load, nothing more).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

/// The most boundaries kept.
pub const CAPACITY: usize = 100_000;

/// A cached aggregate state, the boundary's last stream sequence and how many
/// events it was built from.
pub struct Cached<A> {
    /// The state after the last event.
    pub state: A,
    /// The boundary's last stream sequence: the guard of the next append.
    pub last_sequence: u64,
    /// How many events the state was built from.
    pub event_count: u64,
}

struct Entry {
    state: Box<dyn Any + Send + Sync>,
    last_sequence: u64,
    event_count: u64,
}

/// Boundary → the state this replica last wrote there.
#[derive(Default)]
pub struct StateCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl StateCache {
    /// The cached state of `boundary`, if any (and if it is an `A`).
    pub fn get<A: Clone + Send + Sync + 'static>(&self, boundary: &str) -> Option<Cached<A>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(boundary)?;
        let state = entry.state.downcast_ref::<A>()?.clone();
        Some(Cached { state, last_sequence: entry.last_sequence, event_count: entry.event_count })
    }

    /// Remembers `state` as `boundary`'s after an acknowledged append at `last_sequence`.
    pub fn put<A: Clone + Send + Sync + 'static>(
        &self,
        boundary: &str,
        state: &A,
        last_sequence: u64,
        event_count: u64,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(boundary) {
            entries.clear();
        }
        entries.insert(boundary.to_owned(), Entry { state: Box::new(state.clone()), last_sequence, event_count });
    }

    /// Drops `boundary`'s entry (it lost a race, or its answer is to be checked).
    pub fn forget(&self, boundary: &str) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(boundary);
    }

    /// How many boundaries are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_returned_as_its_own_type_only_and_can_be_forgotten() {
        let cache = StateCache::default();
        cache.put("a", &7_u32, 10, 3);
        let hit = cache.get::<u32>("a").unwrap_or_else(|| panic!("cached"));
        assert_eq!((hit.state, hit.last_sequence, hit.event_count), (7, 10, 3));
        assert!(cache.get::<String>("a").is_none(), "another type is a miss");
        cache.forget("a");
        assert!(cache.get::<u32>("a").is_none());
    }

    #[test]
    fn a_full_cache_starts_again_empty() {
        let cache = StateCache::default();
        for n in 0..CAPACITY {
            cache.put(&n.to_string(), &n, 1, 1);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.put("0", &0_usize, 2, 2);
        assert_eq!(cache.len(), CAPACITY, "overwriting an entry keeps the rest");
        cache.put("one more", &0_usize, 1, 1);
        assert_eq!(cache.len(), 1);
    }
}
