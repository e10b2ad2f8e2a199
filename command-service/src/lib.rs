//! The command side: takes commands over NATS request-reply, loads the aggregate from the
//! [`event_store`], lets the [`domain`] decide, and appends the outcome with optimistic
//! concurrency. It also runs hold expiry (from JetStream message schedules) and payments.
//!
//! - [`api`]: the request and reply envelopes, and the subjects they travel on;
//! - [`Service`]: the handlers; [`Service::serve`] answers commands in the queue group,
//!   [`Service::run_expiry`] expires holds;
//! - [`payments`]: the provider seam (fake and Stripe) and webhook verification;
//! - [`config`]: settings from the environment.
//!
//! Every handler follows one loop ([`Service::execute`]): load the aggregate and its last sequence,
//! decide, append guarded by that sequence; on a conflict, load and decide again. A refusal is
//! answered as a typed error and writes nothing. The state this replica last wrote to a boundary
//! is kept in [`cache`], so the load is skipped while nobody else writes there.

mod accounts;
/// The command API this service serves (the [`command_api`] crate, which its clients share).
pub use command_api as api;
pub mod cache;
pub mod config;
mod desk;
mod expiry;
mod idempotency;
mod listings;
mod paying;
pub mod payments;
mod refused;
mod server;
mod shared_loads;
mod shows;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use domain::{Aggregate, ErrorCode, Event, Timestamp, error::Refusal};
use event_store::{Append, AppendError, EventStore, Guard, StoreError};
pub use refused::Refused;
use uuid::Uuid;

use crate::api::Failure;
use crate::config::{Config, ProviderKind};
use crate::payments::PaymentProvider;

/// Whether two byte strings are equal, in time that depends only on their lengths (password
/// hashes, webhook signatures).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// How many times a command is decided again after losing an optimistic-concurrency race.
const MAX_ATTEMPTS: u32 = 24;

/// The command service: configuration, the event store and the payment provider.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: EventStore,
    provider: Arc<dyn PaymentProvider>,
    throttle: throttle::Throttle,
    webhooks_seen: jetstream::kv::Store,
    idempotency: jetstream::kv::Store,
    hashers: accounts::Hashers,
    dummy_hash: String,
    cache: cache::StateCache,
    /// Fresh loads of listings, shared by the holds that arrive together.
    /// (Shared as one `Arc` by every waiter: a hot listing's history is not copied per caller.)
    loads: Arc<shared_loads::SharedLoads<Arc<event_store::Loaded<domain::Listing>>>>,
    /// Commands this replica has answered.
    answered: std::sync::atomic::AtomicU64,
    /// The shows this replica is selling: their states and stock writers.
    desks: desk::Desks,
}

/// Why a command failed: a refusal for the client, or a failure of ours.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A rule refused it; the client sees the code (and field) of `why`.
    #[error("{why}")]
    Refused {
        /// The rule, as the domain (or this service's own checks) named it.
        why: Refused,
        /// Set when the refusal is about something this command did write (a declined charge,
        /// a payment refunded because its hold lapsed): the stream position a reader must reach
        /// to see it (see [`Failure::after_write`]).
        written_at: Option<u64>,
    },
    /// The store failed (`INTERNAL_SERVER_ERROR` for the client, detail in the logs).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Still losing races after every retry (`CONFLICT`).
    #[error("too much contention")]
    Contended,
    /// Anything else of ours.
    #[error("{0}")]
    Internal(String),
}

impl From<Refused> for CommandError {
    fn from(why: Refused) -> Self {
        Self::refused(why)
    }
}

impl CommandError {
    /// A refusal of something nothing was written for.
    pub fn refused(why: impl Into<Refused>) -> Self {
        Self::Refused { why: why.into(), written_at: None }
    }

    /// The same error, about something already written at `position`: a refusal then tells the
    /// client where to wait for it (see [`Failure::after_write`]); other errors are unchanged.
    #[must_use]
    pub fn written_at(self, position: u64) -> Self {
        match self {
            Self::Refused { why, .. } => Self::Refused { why, written_at: Some(position) },
            other => other,
        }
    }

    /// The failure a client sees.
    pub fn to_failure(&self) -> Failure {
        match self {
            Self::Refused { why, written_at } => {
                let mut failure = Failure::new(why.code(), why.to_string());
                failure.field = why.field_path();
                failure.unavailable = why.unavailable();
                match written_at {
                    Some(position) => failure.after_write(*position),
                    None => failure,
                }
            }
            Self::Contended => Failure::new(ErrorCode::Conflict, "too many simultaneous changes; try again"),
            Self::Store(_) | Self::Internal(_) => Failure::internal(),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting is invalid; the text names it.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The streams could not be created or checked.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// A key-value bucket (throttle, webhooks, idempotency keys, the fake ledger) is unusable.
    #[error("key-value bucket {bucket}: {reason}")]
    Bucket {
        /// The bucket's name.
        bucket: String,
        /// What NATS said.
        reason: String,
    },
    /// The payment provider's client could not be built.
    #[error("payment provider: {0}")]
    Provider(#[from] payments::ProviderError),
    /// The queue group's subscription to the command subjects could not be made.
    #[error("could not subscribe to the commands: {0}")]
    Subscribe(String),
    /// The password hashers did not answer their first job.
    #[error("password hashing: {0}")]
    Hashing(String),
}

/// An aggregate after a command.
#[derive(Debug)]
pub(crate) struct Executed<A> {
    /// The state after the command's events.
    pub state: A,
    /// What was written (empty when nothing needed to change).
    pub events: Vec<Event>,
    /// The stream position reflecting the state: the new event, or the boundary's last one.
    pub position: u64,
    /// How many events the boundary holds now.
    pub event_count: u64,
}

/// Where an aggregate lives in the stream.
pub(crate) struct Target {
    /// The subject filter holding its history.
    pub boundary: String,
    /// Whether appends are guarded by the whole filter (a listing) or their own subject.
    pub wildcard: bool,
}

impl Service {
    /// Opens the event store (creating or checking the streams) and the key-value buckets.
    ///
    /// # Errors
    /// When NATS, the streams or the provider settings are unusable.
    pub async fn connect(
        config: Config,
        client: async_nats::Client,
        provider: Option<Arc<dyn PaymentProvider>>,
    ) -> Result<Self, ConnectError> {
        config.validate().map_err(ConnectError::Config)?;
        let settings = config.stream_settings();
        let store = EventStore::connect(client.clone(), &settings).await?;
        let js = jetstream::new(client);
        let replicas = settings.replicas;
        let signin_failures = key_value(
            &js,
            &format!("{}_SIGNIN_FAILURES", settings.name),
            Duration::from_secs(config.signin_throttle_seconds.max(1)),
            replicas,
        )
        .await?;
        let webhooks_seen =
            key_value(&js, &format!("{}_WEBHOOKS", settings.name), Duration::from_secs(30 * 24 * 3600), replicas)
                .await?;
        let idempotency =
            key_value(&js, &format!("{}_IDEMPOTENCY", settings.name), idempotency::KEY_LIFETIME, replicas).await?;
        let provider: Arc<dyn PaymentProvider> = match provider {
            Some(provider) => provider,
            None => match config.payment_provider {
                ProviderKind::Fake => {
                    let bank = config.fake_bank_webhook_url.as_ref().filter(|url| !url.is_empty()).map(|url| {
                        payments::fake::FakeBank {
                            webhook_url: url.clone(),
                            secret: config.payment_webhook_secret.clone(),
                            delay: Duration::from_millis(config.fake_bank_settle_ms),
                        }
                    });
                    // Its ledger outlives the process, like a real provider's.
                    let ledger =
                        key_value(&js, &format!("{}_FAKE_LEDGER", settings.name), Duration::ZERO, replicas).await?;
                    Arc::new(payments::fake::FakeProvider::with_ledger(ledger, bank))
                }
                ProviderKind::Stripe => Arc::new(payments::stripe::StripeProvider::with_timeout(
                    &config.stripe_api_base,
                    config.stripe_api_key.as_deref().unwrap_or_default(),
                    Duration::from_millis(config.stripe_timeout_ms.max(1)),
                )?),
            },
        };
        let hashers = accounts::Hashers::start(config.password_hashers());
        let dummy_hash = hashers
            .hash("not a real password, for timing only")
            .await
            .map_err(|e| ConnectError::Hashing(e.to_string()))?;
        let desk_store = store.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                provider,
                throttle: throttle::Throttle::new(signin_failures),
                webhooks_seen,
                idempotency,
                hashers,
                dummy_hash,
                cache: cache::StateCache::default(),
                loads: Arc::default(),
                answered: std::sync::atomic::AtomicU64::new(0),
                desks: desk::Desks::new(desk_store),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The event store.
    pub fn store(&self) -> &EventStore {
        &self.inner.store
    }

    /// Fresh listing loads the holds of this replica asked for, and the reads of the stream made
    /// for them (loads that arrive together share one).
    pub fn listing_loads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.inner.loads.asked.load(Relaxed), self.inner.loads.reads.load(Relaxed))
    }

    /// How many commands this replica has answered over NATS: how the queue group spreads the
    /// load.
    pub fn answered(&self) -> u64 {
        self.inner.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Load (or take this replica's cached state), decide, append; on a conflict load and decide
    /// again. Only a decision from a fresh load is answered with a refusal or "already done".
    #[tracing::instrument(name = "decide and append", skip_all, fields(boundary = %target.boundary))]
    pub(crate) async fn execute<A, F>(&self, target: &Target, mut command: F) -> Result<Executed<A>, CommandError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Error: Into<Refused>,
        F: FnMut(&A) -> A::Command,
        F: Send,
    {
        let mut cached = self.inner.cache.get::<A>(&target.boundary);
        // A literal subject not in the cache is first read without the subject index; like a
        // cached state, that read is trusted only by an append whose guard proves it current.
        let mut quick = !target.wildcard && cached.is_none();
        for attempt in 0..MAX_ATTEMPTS {
            let from_cache = cached.is_some() || quick;
            let loaded = match cached.take() {
                Some(hit) => hit,
                None if quick => {
                    quick = false;
                    let loaded = self.inner.store.load_unverified::<A>(&target.boundary).await?;
                    let count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
                    cache::Cached { state: loaded.state, last_sequence: loaded.last_sequence, event_count: count }
                }
                None => {
                    let loaded = self.inner.store.load::<A>(&target.boundary).await?;
                    let count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
                    cache::Cached { state: loaded.state, last_sequence: loaded.last_sequence, event_count: count }
                }
            };
            let count = loaded.event_count;
            let events = match loaded.state.decide(command(&loaded.state)) {
                Ok(events) if !events.is_empty() => events,
                // Possibly stale: decide again on a fresh load.
                _ if from_cache => {
                    self.inner.cache.forget(&target.boundary);
                    continue;
                }
                Err(refusal) => return Err(CommandError::refused(refusal)),
                Ok(events) => {
                    return Ok(Executed {
                        state: loaded.state,
                        events,
                        position: loaded.last_sequence,
                        event_count: count,
                    });
                }
            };
            let [event] = events.as_slice() else {
                return Err(CommandError::Internal("a decision produced more than one event".into()));
            };
            let subject = self.subject_for(target, event)?;
            let guard = if target.wildcard {
                Guard::boundary(target.boundary.clone(), loaded.last_sequence)
            } else {
                Guard::subject(loaded.last_sequence)
            };
            let append = Append { subject, event, guard, msg_id: Uuid::new_v4().to_string() };
            match self.inner.store.append(append).await {
                Ok(appended) => {
                    let state = loaded.state.evolve(event);
                    self.inner.cache.put(&target.boundary, &state, appended.sequence, count + 1);
                    return Ok(Executed { state, events, position: appended.sequence, event_count: count + 1 });
                }
                Err(AppendError::Conflict { .. }) if from_cache => {
                    // Someone else wrote here since this replica did: load and decide again.
                    self.inner.cache.forget(&target.boundary);
                }
                Err(AppendError::Conflict { .. }) => {
                    // Someone else got there first: back off a little (more each time) and decide
                    // again on the new state.
                    let jitter = u64::from(Uuid::new_v4().as_fields().1 % 4);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(8)) * 2 + jitter)).await;
                }
                Err(AppendError::Store(error)) => {
                    // The write may or may not have happened: the cached state is not to be trusted.
                    self.inner.cache.forget(&target.boundary);
                    return Err(error.into());
                }
            }
        }
        Err(CommandError::Contended)
    }

    fn subject_for(&self, target: &Target, event: &Event) -> Result<String, CommandError> {
        if !target.wildcard {
            return Ok(target.boundary.clone());
        }
        let ticket = domain::subjects::ticket_of(&target.boundary)
            .ok_or_else(|| CommandError::Internal(format!("not a listing boundary: {}", target.boundary)))?;
        domain::subjects::listing_event(ticket, event)
            .ok_or_else(|| CommandError::Internal(format!("{} is not a listing event", event.type_name())))
    }
}

/// The current time. The only clock of the write side: the domain gets time in commands.
pub(crate) fn now() -> Timestamp {
    time::OffsetDateTime::now_utc()
}

async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, ConnectError> {
    let store = key_value_store(js, bucket, max_age, replicas).await?;
    // A bucket just created in a cluster has no leader for a moment, and a write then finds "no
    // such stream" (seen: the first payment of two replicas started together was left pending):
    // wait until it has one.
    let started = std::time::Instant::now();
    loop {
        if let Ok(stream) = js.get_stream(format!("KV_{bucket}")).await
            && stream.cached_info().cluster.as_ref().is_none_or(|cluster| cluster.leader.is_some())
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            tracing::warn!(bucket, "key-value bucket still without a leader after 30 s; going on");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(store)
}

/// The bucket, created when missing.
async fn key_value_store(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, ConnectError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = jetstream::kv::Config {
        bucket: bucket.to_owned(),
        history: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another replica created it meanwhile.
        Err(_) => js
            .get_key_value(bucket)
            .await
            .map_err(|e| ConnectError::Bucket { bucket: bucket.to_owned(), reason: e.to_string() }),
    }
}

/// Runs the service until Ctrl-C or SIGTERM: answers commands and expires holds.
///
/// # Errors
/// When NATS is unreachable or the streams are unusable at start.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Installed before anything records (see `service_kit::metrics`).
    service_kit::metrics();
    let (options, servers) =
        event_store::connect_options(&config.nats_url, event_store::auth::Role::CommandService.user())?;
    let client = options.retry_on_initial_connect().connect(servers).await?;
    // Ready once it answers commands (subscribed) while connected: a replica still setting up
    // its streams is not sent traffic.
    let answering = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(addr) = config.health_addr {
        let (connected, answering) = (service_kit::nats_connected(client.clone()), answering.clone());
        let ready: service_kit::Check = Arc::new(move || {
            let (connected, answering) = (connected.clone(), answering.clone());
            Box::pin(async move { answering.load(std::sync::atomic::Ordering::Relaxed) && connected().await })
        });
        let probes = service_kit::Probes { live: service_kit::always(), ready };
        service_kit::serve_probes(addr, probes)
            .await
            .map_err(|e| anyhow::anyhow!("binding HEALTH_ADDR {addr}: {e}"))?;
    }
    let service = Service::connect(config, client, None).await?;
    let requests = service.subscribe().await?;
    answering.store(true, std::sync::atomic::Ordering::Relaxed);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(service.clone().serve_until(requests, async move {
        let _ = stopped.await;
    }));
    let expiring = tokio::spawn(service.clone().run_expiry());
    tracing::info!("command-service ready");
    tokio::select! {
        result = &mut serving => result??,
        result = expiring => result??,
        () = service_kit::shutdown_signal() => {
            tracing::info!("shutting down: answering the commands already delivered");
            let _ = stop.send(());
            serving.await??;
        }
    }
    Ok(())
}
