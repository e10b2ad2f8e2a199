//! Idempotency keys: a key names one request of one user.
//!
//! The first request with a key records, in the key-value bucket `<STREAM>_IDEMPOTENCY`, a digest
//! of what it asked for (the operation and its arguments). A later request with the same key and
//! the same digest goes on, and finds what the first one wrote (its ids are derived from the key,
//! so it writes nothing more); one with another digest is refused with `CONFLICT` on field
//! `idempotencyKey` before anything is written, as Stripe does. The bucket is shared by every
//! replica: `create` is a compare-and-set on an empty key, so of two simultaneous first requests
//! exactly one records its digest. Records live [`KEY_LIFETIME`].

use std::time::Duration;

use async_nats::jetstream::kv;
use domain::AccountId;
use sha2::{Digest, Sha256};

use crate::{CommandError, Refused, Service};

/// How long a key is remembered (PRODUCT.md: at least 24 h).
pub(crate) const KEY_LIFETIME: Duration = Duration::from_secs(48 * 3600);

/// How often a record that vanished between two reads (aged out) is created again.
const ATTEMPTS: u32 = 4;

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bucket key of a user's idempotency key: the key itself is hashed, so any client text fits
/// the bucket's key alphabet.
fn record_key(user: AccountId, key: &str) -> String {
    format!("{}.{}", user.as_uuid().simple(), digest(key.as_bytes()))
}

/// The refusal for a key reused with other arguments.
fn reused() -> CommandError {
    Refused::IdempotencyKeyReused.into()
}

impl Service {
    /// Records that `user`'s `key` names `request` (the operation and its arguments, in a fixed
    /// text form), or checks that it already names exactly that request. Answers whether the key
    /// was seen before (a replay: what the first request wrote must be looked up fresh, never in a
    /// cache that may predate it).
    ///
    /// # Errors
    /// `CONFLICT` (field `idempotencyKey`) when the key names another request; an internal error
    /// when the bucket cannot be reached (the request is not attempted: fail closed).
    pub(crate) async fn claim_idempotency_key(
        &self,
        user: AccountId,
        key: &str,
        request: &str,
    ) -> Result<bool, CommandError> {
        let name = record_key(user, key);
        let wanted = digest(request.as_bytes());
        let bucket = &self.inner.idempotency;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            match bucket.create(&name, wanted.clone().into()).await {
                // A lost acknowledgement retried here finds its own record: counted as a replay,
                // which only makes the caller look more carefully.
                Ok(_) => return Ok(attempt > 0),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => match bucket.get(&name).await {
                    Ok(Some(found)) if found.as_ref() == wanted.as_bytes() => return Ok(true),
                    Ok(Some(_)) => return Err(reused()),
                    // Aged out between the two calls: record it again.
                    Ok(None) => last = "record vanished".into(),
                    Err(error) => last = error.to_string(),
                },
                // A lost acknowledgement may have stored it: the next attempt finds out.
                Err(error) => last = error.to_string(),
            }
        }
        Err(CommandError::Internal(format!("idempotency key store unavailable: {last}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_fit_the_bucket_alphabet_whatever_the_client_sends() {
        let user = AccountId(uuid::Uuid::from_u128(7));
        for key in ["k1", "a key with spaces.and*wildcards>", "ключ", &"x".repeat(255)] {
            let name = record_key(user, key);
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'), "{name}");
            assert_eq!(name.len(), 32 + 1 + 64);
        }
        assert_ne!(record_key(user, "a"), record_key(AccountId(uuid::Uuid::from_u128(8)), "a"));
    }
}
