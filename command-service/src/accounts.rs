//! Accounts: sign-up, sign-in (with throttling), sign-out and session checks.

use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, Version};
use domain::account::check_password;
use domain::{
    Account, AccountCommand, AccountError, AccountId, Actor, Email, EmailClaim, EmailClaimCommand, SessionId,
    Timestamp, subjects,
};
use uuid::Uuid;

use crate::api::{Outcome, Success};
use crate::{CommandError, Refused, Service, Target, now, throttle};

/// Memory one argon2id hash takes, in KiB (19 MiB).
const HASH_MEMORY_KIB: u32 = 19 * 1024;

/// Memory one argon2id hash takes, in MiB.
pub(crate) const HASH_MEMORY_MIB: u64 = HASH_MEMORY_KIB as u64 / 1024;

/// How many hash requests may wait for a hashing thread before more are refused.
const HASH_QUEUE: usize = 512;

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane. Checked when the
/// crate compiles: parameters argon2 refuses fail the build instead of falling back to others.
const HASH_PARAMS: Params = match Params::new(HASH_MEMORY_KIB, 2, 1, None) {
    Ok(params) => params,
    Err(_) => panic!("argon2 refuses the password hash parameters"),
};

/// Argon2id with [`HASH_PARAMS`].
pub(crate) fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, HASH_PARAMS)
}

/// One hashing thread's tools: the hasher and the memory it fills, allocated once and reused, so
/// that what a hash takes is given back to no allocator (which would keep it: glibc held 300 MiB
/// after 200 hashes on two threads).
struct Workspace {
    hasher: Argon2<'static>,
    blocks: Vec<argon2::Block>,
}

impl Workspace {
    fn new() -> Self {
        let hasher = hasher();
        let blocks = vec![argon2::Block::default(); hasher.params().block_count()];
        Self { hasher, blocks }
    }

    /// An argon2id hash of `password` in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    fn hash(&mut self, password: &[u8]) -> Result<String, String> {
        let salt = *Uuid::new_v4().as_bytes();
        let mut output = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        self.hasher
            .hash_password_into_with_memory(password, &salt, &mut output, &mut self.blocks)
            .map_err(|e| e.to_string())?;
        let phc = argon2::PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: phc::ParamsString::try_from(self.hasher.params()).map_err(|e| e.to_string())?,
            salt: Some(phc::Salt::new(&salt).map_err(|e| e.to_string())?),
            hash: Some(phc::Output::new(&output).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches a PHC hash (with the parameters the hash names).
    fn verify(&mut self, password: &[u8], hash: &str) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(hash) else { return false };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
        let version = match parsed.version {
            None => Version::default(),
            Some(v) => match Version::try_from(v) {
                Ok(version) => version,
                Err(_) => return false,
            },
        };
        let Ok(params) = Params::try_from(&parsed) else { return false };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
        let needed = params.block_count();
        if self.blocks.len() < needed {
            // A hash made with more memory than ours (a past setting): grow once for it.
            self.blocks.resize(needed, argon2::Block::default());
        }
        let mut output = vec![0u8; expected.as_bytes().len()];
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut output,
            &mut self.blocks[..needed],
        );
        computed.is_ok() && crate::constant_time_eq(&output, expected.as_bytes())
    }
}

type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A fixed set of threads that hash and verify passwords, so that their memory is bounded: each
/// thread owns one [`HASH_MEMORY_MIB`] workspace, and however many sign-ins and sign-ups arrive,
/// the rest queue (up to [`HASH_QUEUE`], then `RATE_LIMITED`).
pub(crate) struct Hashers {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl Hashers {
    /// Starts `threads` hashing threads; they end when the last handle is dropped.
    pub(crate) fn start(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(HASH_QUEUE);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("password-hash-{n}")).spawn(move || {
                let mut workspace = Workspace::new();
                loop {
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(&mut workspace),
                        Err(_) => return,
                    }
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password-hashing thread");
            }
        }
        Self { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, CommandError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            let _ = tx.send(work(workspace));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(Refused::RateLimited("too many sign-ins and sign-ups at once; try again shortly").into());
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(CommandError::Internal("password hashing stopped".into()));
            }
        }
        rx.await.map_err(|_| CommandError::Internal("password hashing failed".into()))
    }

    /// An argon2id hash of `password` in PHC form.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, CommandError> {
        let password = password.to_owned();
        self.run(move |workspace| workspace.hash(password.as_bytes()))
            .await?
            .map_err(|e| CommandError::Internal(format!("hashing: {e}")))
    }

    /// Whether `password` matches a PHC hash.
    async fn verify(&self, password: &str, hash: &str) -> Result<bool, CommandError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move |workspace| workspace.verify(password.as_bytes(), &hash)).await
    }
}

fn account_target(id: AccountId) -> Target {
    Target { boundary: subjects::account(id), wildcard: false }
}

impl Service {
    fn roles(&self, email: &Email) -> Vec<command_api::Role> {
        command_api::roles(self.inner.config.admin_emails.contains(email))
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
        event_count: u64,
    ) -> Success {
        Success {
            position,
            event_count,
            result: Outcome::Session { account_id, email: email.to_string(), roles: self.roles(email), session_id },
        }
    }

    pub(crate) async fn sign_up(
        &self,
        email: &str,
        password: &str,
        client_addr: Option<&str>,
    ) -> Result<Success, CommandError> {
        let email = Email::parse(email).map_err(|e| CommandError::refused(AccountError::from(e)))?;
        check_password(password).map_err(CommandError::refused)?;
        // The cheap checks first: a client over its rate costs no lookup (so probing which
        // addresses are registered is throttled too), and a taken address costs no hash.
        if let Some(client) = client_addr
            && self.inner.config.signup_per_minute_per_client > 0
        {
            let key = format!("signup.{}.{}", throttle::part(client), throttle::minute(now()));
            self.admit(&key, self.inner.config.signup_per_minute_per_client, "too many sign-ups from this address")
                .await?;
        }
        if self.find_account(&email).await?.is_some() {
            return Err(CommandError::refused(AccountError::EmailTaken));
        }
        let password_hash = self.inner.hashers.hash(password).await?;

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
            return Err(CommandError::refused(AccountError::EmailTaken));
        }
        Ok(self.session(account_id, &email, SessionId(Uuid::new_v4()), registered.position, registered.event_count))
    }

    /// Signs in. Each attempt is counted before the password is checked, per email and client
    /// address and per client address, so parallel guesses cannot all be checked; the right
    /// password takes its attempt back. Failures from one address never refuse another's.
    pub(crate) async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client_addr: Option<&str>,
    ) -> Result<Success, CommandError> {
        let unauthenticated = || CommandError::from(Refused::WrongCredentials);
        let address = match Email::parse(email) {
            Ok(email) => email.as_str().to_owned(),
            Err(_) => email.trim().to_lowercase(),
        };
        let client = client_addr.unwrap_or("-");
        let email_key = format!("email.{}.{}", throttle::part(&address), throttle::part(client));
        let config = &self.inner.config;
        let refused = "too many failed sign-ins; try again later";
        self.admit(&email_key, config.signin_max_failures, refused).await?;
        let client_stem = client_addr.map(|addr| format!("addr.{}", throttle::part(addr)));
        let client_key = match &client_stem {
            None => None,
            Some(stem) => {
                // Two windows of half the throttle time: failures count 450 to 900 s (by default),
                // and a window's key never outlives the bucket's age limit.
                let windows = throttle::Windows { stem, seconds: (config.signin_throttle_seconds / 2).max(1) };
                match windows.take(&self.inner.throttle, now(), config.signin_max_failures_per_addr).await {
                    Ok(key) => Some(key),
                    Err(error) => {
                        self.inner.throttle.give_back(&email_key).await;
                        return Err(Self::throttle_refusal(error, refused));
                    }
                }
            }
        };
        // Only a wrong password stays counted: an attempt we could not check gives its place back.
        let give_back = || async {
            self.inner.throttle.give_back(&email_key).await;
            if let Some(key) = &client_key {
                self.inner.throttle.give_back(key).await;
            }
        };

        let found = match Email::parse(email) {
            Ok(email) => match self.find_account(&email).await {
                Ok(found) => found,
                Err(error) => {
                    give_back().await;
                    return Err(error);
                }
            },
            Err(_) => None,
        };
        // Unknown addresses cost a hash check too, so timing does not tell them apart.
        let hash = found.as_ref().map_or(self.inner.dummy_hash.as_str(), |(account, _, _)| {
            account.profile.as_ref().map_or(self.inner.dummy_hash.as_str(), |p| p.password_hash.as_str())
        });
        let verified = match self.inner.hashers.verify(password, hash).await {
            Ok(verified) => verified,
            Err(error) => {
                give_back().await;
                return Err(error);
            }
        };
        match found {
            Some((account, position, version)) if verified => {
                self.inner.throttle.clear(&email_key).await;
                if let Some(key) = &client_key {
                    self.inner.throttle.give_back(key).await;
                }
                let profile = account.profile.ok_or_else(unauthenticated)?;
                Ok(self.session(profile.id, &profile.email, SessionId(Uuid::new_v4()), position, version))
            }
            // The attempt stays counted as a failure.
            _ => Err(unauthenticated()),
        }
    }

    /// What a client sees when a throttle refuses: `RATE_LIMITED` at the limit (or in a burst), an
    /// internal error (never a free pass) when the counters cannot be reached.
    fn throttle_refusal(error: throttle::Refused, message: &'static str) -> CommandError {
        match error {
            throttle::Refused::Limit | throttle::Refused::Contended => {
                CommandError::from(Refused::RateLimited(message))
            }
            error @ throttle::Refused::Unavailable(_) => CommandError::Internal(error.to_string()),
        }
    }

    /// Counts one attempt under a throttle key, or refuses: `RATE_LIMITED` at the limit, and an
    /// internal error (never a free pass) when the counters cannot be reached.
    pub(crate) async fn admit(&self, key: &str, limit: u64, message: &'static str) -> Result<(), CommandError> {
        self.inner.throttle.take(key, limit).await.map_err(|error| Self::throttle_refusal(error, message))
    }

    /// The account registered with an address, with its position and version.
    async fn find_account(&self, email: &Email) -> Result<Option<(Account, u64, u64)>, CommandError> {
        let claim = self.inner.store.load::<EmailClaim>(&subjects::email(email)).await?;
        let Some(account_id) = claim.state.account_id else { return Ok(None) };
        let loaded = self.inner.store.load::<Account>(&subjects::account(account_id)).await?;
        let event_count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
        Ok(loaded.state.profile.is_some().then_some((loaded.state, loaded.last_sequence, event_count)))
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
        Ok(Success { position: done.position, event_count: done.event_count, result: Outcome::SignedOut })
    }

    pub(crate) async fn authenticate(
        &self,
        account_id: AccountId,
        session_id: SessionId,
    ) -> Result<Success, CommandError> {
        let loaded = self.inner.store.load::<Account>(&subjects::account(account_id)).await?;
        let event_count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
        match &loaded.state.profile {
            Some(profile) if !loaded.state.is_session_revoked(session_id) => {
                Ok(self.session(account_id, &profile.email, session_id, loaded.last_sequence, event_count))
            }
            _ => Err(Refused::SessionEnded.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_made_in_a_workspace_and_by_the_crate_verify_either_way() {
        let mut workspace = Workspace::new();
        let ours = workspace.hash(b"correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(hasher().verify_password(b"correct horse", ours.as_str()).is_ok(), "the crate accepts ours");
        assert!(workspace.verify(b"correct horse", &ours));
        assert!(!workspace.verify(b"wrong horse", &ours));
        // Hashes stored before (made by the crate, with its own salt) still verify.
        let theirs = hasher().hash_password(b"stored before").unwrap_or_else(|e| panic!("{e}")).to_string();
        assert!(workspace.verify(b"stored before", &theirs));
        assert!(!workspace.verify(b"stored after", &theirs));
        assert!(!workspace.verify(b"x", "not a hash"));
    }
}
