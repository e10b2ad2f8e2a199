//! Accounts: sign-up, sign-in (with throttling), sign-out and session checks.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use async_nats::jetstream::kv;
use domain::account::check_password;
use domain::{
    Account, AccountCommand, AccountError, AccountId, Actor, Email, EmailClaim, EmailClaimCommand, ErrorCode,
    SessionId, Timestamp, subjects,
};
use uuid::Uuid;

use crate::api::{Failure, Outcome, Success};
use crate::{CommandError, Service, Target, now};

/// Argon2id with OWASP's minimum: 19 MiB of memory, 2 iterations, 1 lane.
pub(crate) fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on a blocking thread: argon2 takes tens of milliseconds of CPU by design.
pub(crate) async fn hash_password(hasher: &Argon2<'static>, password: &str) -> anyhow::Result<String> {
    let hasher = hasher.clone();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        hasher.hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("hashing: {e}"))
    })
    .await?
}

async fn verify_password(hasher: &Argon2<'static>, password: &str, hash: &str) -> bool {
    let hasher = hasher.clone();
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || hasher.verify_password(password.as_bytes(), hash.as_str()).is_ok())
        .await
        .unwrap_or(false)
}

fn account_target(id: AccountId) -> Target {
    Target { boundary: subjects::account(id), wildcard: false }
}

impl Service {
    fn roles(&self, email: &Email) -> Vec<String> {
        let mut roles = vec!["USER".to_owned()];
        if self.inner.config.admin_emails.contains(email) {
            roles.push("ADMIN".to_owned());
        }
        roles
    }

    /// Whether an address belongs to an administrator.
    pub fn is_admin(&self, email: &Email) -> bool {
        self.inner.config.admin_emails.contains(email)
    }

    fn session(
        &self,
        account_id: AccountId,
        email: &Email,
        session_id: SessionId,
        position: u64,
        version: u64,
    ) -> Success {
        Success {
            position,
            version,
            result: Outcome::Session { account_id, email: email.to_string(), roles: self.roles(email), session_id },
        }
    }

    pub(crate) async fn sign_up(&self, email: &str, password: &str) -> Result<Success, CommandError> {
        let email = Email::parse(email).map_err(|e| CommandError::refused(&AccountError::from(e)))?;
        check_password(password).map_err(|e| CommandError::refused(&e))?;
        let password_hash =
            hash_password(&self.inner.hasher, password).await.map_err(|e| CommandError::Internal(e.to_string()))?;

        // Claim the address, or learn which account claimed it; then register that account.
        // Both appends expect an empty subject, so one sign-up per address wins.
        let fresh = AccountId(Uuid::new_v4());
        let claim = Target { boundary: subjects::email(&email), wildcard: false };
        let claimed = self
            .execute::<EmailClaim, _>(&claim, |_| EmailClaimCommand::Claim {
                email: email.clone(),
                account_id: fresh,
                at: now(),
            })
            .await?;
        let account_id = claimed.state.account_id.unwrap_or(fresh);
        let registered = self
            .execute::<Account, _>(&account_target(account_id), |_| AccountCommand::Register {
                account_id,
                email: email.clone(),
                password_hash: password_hash.clone(),
                at: now(),
            })
            .await?;
        if registered.events.is_empty() {
            return Err(CommandError::refused(&AccountError::EmailTaken));
        }
        Ok(self.session(account_id, &email, SessionId(Uuid::new_v4()), registered.position, registered.version))
    }

    pub(crate) async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client_addr: Option<&str>,
    ) -> Result<Success, CommandError> {
        let unauthenticated =
            || CommandError::Refused(Failure::new(ErrorCode::Unauthenticated, "wrong email or password"));
        let email_key = match Email::parse(email) {
            Ok(email) => format!("email.{}", hex::encode(email.as_str())),
            Err(_) => format!("email.{}", hex::encode(email.trim().to_lowercase())),
        };
        let addr_key = client_addr.map(|addr| format!("addr.{}", hex::encode(addr)));
        let config = &self.inner.config;
        if self.failures(&email_key).await >= config.signin_max_failures
            || match &addr_key {
                Some(key) => self.failures(key).await >= config.signin_max_failures_per_addr,
                None => false,
            }
        {
            return Err(CommandError::Refused(Failure::new(
                ErrorCode::RateLimited,
                "too many failed sign-ins; try again later",
            )));
        }

        let found = match Email::parse(email) {
            Ok(email) => self.find_account(&email).await?,
            Err(_) => None,
        };
        // Unknown addresses cost a hash check too, so timing does not tell them apart.
        let hash = found.as_ref().map_or(self.inner.dummy_hash.as_str(), |(account, _, _)| {
            account.profile.as_ref().map_or(self.inner.dummy_hash.as_str(), |p| p.password_hash.as_str())
        });
        let verified = verify_password(&self.inner.hasher, password, hash).await;
        match found {
            Some((account, position, version)) if verified => {
                let _ = self.inner.signin_failures.delete(&email_key).await;
                let profile = account.profile.ok_or_else(unauthenticated)?;
                Ok(self.session(profile.id, &profile.email, SessionId(Uuid::new_v4()), position, version))
            }
            _ => {
                self.count_failure(&email_key).await;
                if let Some(key) = &addr_key {
                    self.count_failure(key).await;
                }
                Err(unauthenticated())
            }
        }
    }

    /// The account registered with an address, with its position and version.
    async fn find_account(&self, email: &Email) -> Result<Option<(Account, u64, u64)>, CommandError> {
        let claim = self.inner.store.load::<EmailClaim>(&subjects::email(email)).await?;
        let Some(account_id) = claim.state.account_id else { return Ok(None) };
        let loaded = self.inner.store.load::<Account>(&subjects::account(account_id)).await?;
        let version = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
        Ok(loaded.state.profile.is_some().then_some((loaded.state, loaded.version, version)))
    }

    async fn failures(&self, key: &str) -> u64 {
        match self.inner.signin_failures.get(key).await {
            Ok(Some(value)) => std::str::from_utf8(&value).ok().and_then(|v| v.parse().ok()).unwrap_or(0),
            _ => 0,
        }
    }

    /// Counts a failure with compare-and-set, so replicas never lose an increment.
    async fn count_failure(&self, key: &str) {
        let kv = &self.inner.signin_failures;
        for _ in 0..10 {
            let stored = match kv.entry(key).await {
                Ok(Some(entry)) => {
                    let count: u64 = match entry.operation {
                        kv::Operation::Put => {
                            std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
                        }
                        kv::Operation::Delete | kv::Operation::Purge => 0,
                    };
                    kv.update(key, (count + 1).to_string().into(), entry.revision).await.is_ok()
                }
                Ok(None) => kv.create(key, "1".into()).await.is_ok(),
                Err(error) => {
                    tracing::warn!(%error, "sign-in throttle unavailable");
                    return;
                }
            };
            if stored {
                return;
            }
        }
    }

    pub(crate) async fn sign_out(
        &self,
        actor: Actor,
        session_id: SessionId,
        expires_at: Timestamp,
    ) -> Result<Success, CommandError> {
        let done = self
            .execute::<Account, _>(&account_target(actor.id), |_| AccountCommand::RevokeSession {
                session_id,
                expires_at,
                at: now(),
            })
            .await?;
        Ok(Success { position: done.position, version: done.version, result: Outcome::SignedOut })
    }

    pub(crate) async fn authenticate(
        &self,
        account_id: AccountId,
        session_id: SessionId,
    ) -> Result<Success, CommandError> {
        let loaded = self.inner.store.load::<Account>(&subjects::account(account_id)).await?;
        let version = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
        match &loaded.state.profile {
            Some(profile) if !loaded.state.is_session_revoked(session_id) => {
                Ok(self.session(account_id, &profile.email, session_id, loaded.version, version))
            }
            _ => Err(CommandError::Refused(Failure::new(ErrorCode::Unauthenticated, "session expired or signed out"))),
        }
    }
}
