//! Counters that throttle abuse, shared by every replica through one JetStream key-value bucket
//! (`<STREAM>_SIGNIN_FAILURES`): failed sign-ins per email and client address and per address,
//! sign-ups per address and minute, listings per account and minute.
//!
//! An attempt is counted *before* the work it guards ([`Throttle::take`]: compare-and-set, so
//! parallel attempts on several replicas cannot all read the same count), and a counter that
//! cannot be read or written refuses (fails closed): a throttle that reads as zero when its store
//! is down is no throttle.

use std::time::Duration;

use async_nats::jetstream::kv;

/// How long an attempt keeps retrying a compare-and-set that lost a race before it is refused: a
/// burst of a few hundred attempts on one key (one account listing in parallel) all get counted.
const CONTENDED_FOR: Duration = Duration::from_secs(3);
/// How often a give-back is tried.
const ATTEMPTS: u32 = 32;

/// Why an attempt was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The limit is reached.
    #[error("limit reached")]
    Limit,
    /// So many attempts raced for the counter that this one could not be counted: refused, as
    /// what it is (a burst).
    #[error("too many simultaneous attempts")]
    Contended,
    /// The counter could not be read or written: refused all the same.
    #[error("throttle unavailable: {0}")]
    Unavailable(String),
}

/// Counters in one bucket; keys must use the bucket alphabet (callers hex-encode what clients send).
#[derive(Clone)]
pub(crate) struct Throttle {
    bucket: kv::Store,
}

fn count_of(entry: &kv::Entry) -> u64 {
    match entry.operation {
        kv::Operation::Put => std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0),
        kv::Operation::Delete | kv::Operation::Purge => 0,
    }
}

impl Throttle {
    /// Counters in `bucket`.
    pub(crate) fn new(bucket: kv::Store) -> Self {
        Self { bucket }
    }

    /// Writes `count` over the entry read (revision 0: none), as one compare-and-set.
    async fn write(&self, key: &str, count: u64, revision: u64) -> bool {
        self.bucket.update(key, count.to_string().into(), revision).await.is_ok()
    }

    /// Counts one attempt under `key` unless `limit` attempts are counted already.
    ///
    /// # Errors
    /// [`Refused::Limit`] at the limit, [`Refused::Contended`] when it could not be counted for
    /// racing attempts, [`Refused::Unavailable`] when the store fails.
    pub(crate) async fn take(&self, key: &str, limit: u64) -> Result<(), Refused> {
        let gave_up_at = std::time::Instant::now() + CONTENDED_FOR;
        let mut attempt: u64 = 0;
        while std::time::Instant::now() < gave_up_at {
            attempt += 1;
            let (count, revision) = match self.bucket.entry(key).await {
                Ok(Some(entry)) => (count_of(&entry), entry.revision),
                Ok(None) => (0, 0),
                Err(error) => return Err(Refused::Unavailable(error.to_string())),
            };
            if count >= limit {
                return Err(Refused::Limit);
            }
            if self.write(key, count + 1, revision).await {
                return Ok(());
            }
            // Lost a race to another attempt: back off a little, spread, and read again.
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 4);
            tokio::time::sleep(Duration::from_millis(attempt.min(4) + jitter)).await;
        }
        Err(Refused::Contended)
    }

    /// Takes back one attempt counted by [`Throttle::take`] (it turned out not to be abuse, e.g. the
    /// right password). Best effort: a lost give-back only makes the throttle stricter.
    pub(crate) async fn give_back(&self, key: &str) {
        for _ in 0..ATTEMPTS {
            let Ok(Some(entry)) = self.bucket.entry(key).await else { return };
            let count = count_of(&entry);
            if count == 0 || self.write(key, count - 1, entry.revision).await {
                return;
            }
        }
    }

    /// Forgets every attempt counted under `key`.
    pub(crate) async fn clear(&self, key: &str) {
        if let Err(error) = self.bucket.delete(key).await {
            tracing::warn!(%error, "could not clear a throttle counter");
        }
    }
}

/// A key part from what a client sent: a digest, so that any text (a 100 KiB "email") makes a
/// short key in the bucket alphabet; a key as long as the text would make a subject too long for
/// NATS, which closes the connection it arrives on.
pub(crate) fn part(raw: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(raw.as_bytes())[..16])
}

/// Counts failures in windows of `seconds`: an attempt is admitted while the failures of this
/// window and the one before stay under `limit`. Unlike one counter whose age restarts at every
/// write, a window's count stops growing when its window ends, so failures age out even where
/// sign-ins never stop (a shared office address).
pub(crate) struct Windows<'a> {
    /// The key's stem (`addr.<client>`).
    pub stem: &'a str,
    /// The window length.
    pub seconds: u64,
}

impl Windows<'_> {
    fn key(&self, window: i64) -> String {
        format!("{}.{window}", self.stem)
    }

    fn window(&self, now: time::OffsetDateTime) -> i64 {
        now.unix_timestamp().div_euclid(i64::try_from(self.seconds.max(1)).unwrap_or(i64::MAX))
    }

    /// The current window's key, once the attempt is counted in it.
    ///
    /// # Errors
    /// As [`Throttle::take`].
    pub(crate) async fn take(
        &self,
        throttle: &Throttle,
        now: time::OffsetDateTime,
        limit: u64,
    ) -> Result<String, Refused> {
        let window = self.window(now);
        let before = match throttle.bucket.entry(self.key(window - 1)).await {
            Ok(Some(entry)) => count_of(&entry),
            Ok(None) => 0,
            Err(error) => return Err(Refused::Unavailable(error.to_string())),
        };
        let key = self.key(window);
        throttle.take(&key, limit.saturating_sub(before)).await?;
        Ok(key)
    }
}

/// The current one-minute window (unix minutes), for per-minute counters.
pub(crate) fn minute(now: time::OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(60)
}
