//! The event store: JetStream as the single source of truth for every aggregate.
//!
//! - [`stream::ensure`] creates the `TICKETING` stream, or checks that an existing one has exactly
//!   the settings this code relies on, and refuses to start otherwise.
//! - [`EventStore::load`] counts an aggregate's messages in the stream's subject index, reads
//!   exactly that many with a batched direct get (so the server never looks past the last one)
//!   and returns its state together with its *last sequence*: the stream sequence of the last
//!   message in its consistency boundary (not a count of its events: the stream interleaves
//!   every boundary).
//! - [`EventStore::append`] stores one event, guarded by that last sequence (JetStream's per-subject
//!   optimistic concurrency, optionally over a wildcard boundary) and deduplicated by
//!   `Nats-Msg-Id`. A decision produces at most one event by design, so an append is one message
//!   and never needs a multi-message transaction.
//! - [`EventStore::schedule`] writes a JetStream message schedule (hold expiry).
//!
//! Subjects are named in [`domain::subjects`].

mod direct;
pub mod stream;

use std::time::Duration;

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use domain::{Aggregate, Event, EventDecodeError, EventEnvelope, Timestamp};
use serde::Deserialize;

pub mod auth;

pub use direct::RawMessage;
pub use stream::StreamSettings;

/// A `NATS_URL` that names a server that does not parse (shown without its password).
#[derive(Debug, thiserror::Error)]
#[error("NATS_URL has an invalid server {server:?}: {reason}")]
pub struct BadNatsUrl {
    /// The server's URL, its password replaced by `***`.
    pub server: String,
    /// Why it does not parse.
    pub reason: String,
}

/// The servers of a `NATS_URL`: one URL, or several separated by commas (the nodes of a
/// cluster; clients fail over between them and learn the rest from the servers).
///
/// # Errors
/// A URL that does not parse, named.
pub fn server_addrs(nats_url: &str) -> Result<Vec<async_nats::ServerAddr>, BadNatsUrl> {
    nats_url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| url.parse().map_err(|e| BadNatsUrl { server: redacted(url), reason: format!("{e}") }))
        .collect()
}

/// A server URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Decodes `%XX` escapes (a password in a URL's userinfo).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connection options for a `NATS_URL` as the service `name` (one of [`auth::Role`]'s users): its
/// servers; the user and password its URLs carry (`nats://user:password@host:4222`,
/// percent-encoded), which is how each service gets its own NATS credentials; and replies on the
/// service's own inbox prefix, which its permissions allow.
///
/// # Errors
/// A URL that does not parse, named.
pub fn connect_options(
    nats_url: &str,
    name: &str,
) -> Result<(async_nats::ConnectOptions, Vec<async_nats::ServerAddr>), BadNatsUrl> {
    let servers = server_addrs(nats_url)?;
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(format!("_INBOX_{name}"))
        // A refusal by the server (a permissions violation) is otherwise silent.
        .event_callback({
            let service = name.to_owned();
            move |event| {
                let service = service.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        tracing::warn!(%service, %error, "NATS server error");
                    }
                }
            }
        });
    if let Some(addr) = servers.iter().find(|addr| addr.has_user_pass()) {
        let user = percent_decode(addr.username().unwrap_or_default());
        let password = percent_decode(addr.password().unwrap_or_default());
        options = options.user_and_password(user, password);
    }
    Ok((options, servers))
}

/// Secrets published in this repository (the dev overlay, examples): start-up refuses them
/// unless `ALLOW_DEV_SECRETS=true`, so a copied example never guards real money.
pub const DEV_SECRETS: &[&str] = &["dev-only-jwt-secret-change-me-0123456789", "whsec_dev_only", "dev-only-password"];

/// Whether a secret is one of [`DEV_SECRETS`] (or marked as one: it contains `dev-only`).
pub fn is_dev_secret(secret: &str) -> bool {
    DEV_SECRETS.contains(&secret) || secret.contains("dev-only")
}

/// Start-up's check of secret-bearing settings (name, value): unless `allowed`
/// (`ALLOW_DEV_SECRETS=true`), the first that holds a development secret stops start-up.
///
/// # Errors
/// One line naming that setting.
pub fn refuse_dev_secrets(allowed: bool, settings: &[(&str, &str)]) -> Result<(), String> {
    match settings.iter().find(|(_, value)| !allowed && is_dev_secret(value)) {
        Some((name, _)) => Err(format!(
            "{name} holds a well-known development secret: set a real one (or ALLOW_DEV_SECRETS=true for a throw-away cluster)"
        )),
        None => Ok(()),
    }
}

/// Header carrying the event type name, so consumers can route without decoding the body.
pub const EVENT_TYPE_HEADER: &str = "Ticketing-Event";

/// JetStream's error code for a failed expected-last-sequence check on a single server.
const WRONG_LAST_SEQUENCE: u64 = 10071;
/// The same failure as reported by a clustered stream's leader.
const WRONG_LAST_SEQUENCE_CLUSTERED: u64 = 10164;

/// How many times an append is sent again after a lost acknowledgement.
const APPEND_ATTEMPTS: u32 = 4;

/// A handle on the event stream.
#[derive(Clone, Debug)]
pub struct EventStore {
    client: Client,
    settings: StreamSettings,
}

/// One stored event with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The stream sequence: the event's global position.
    pub sequence: u64,
    /// The subject it is stored on.
    pub subject: String,
    /// When the server stored it.
    pub recorded_at: Timestamp,
    /// The event.
    pub event: Event,
}

/// An aggregate rebuilt from its history.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state after every event.
    pub state: A,
    /// The stream sequence of the last message in the boundary, or 0 when it is empty. Appends
    /// that decided on this state pass it as their guard. (Not a count of events: the stream
    /// interleaves every boundary.)
    pub last_sequence: u64,
    /// The history, oldest first.
    pub history: Vec<StoredEvent>,
}

/// What an append must find before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The subject or wildcard whose last sequence is checked; `None` checks the append's own
    /// subject.
    pub boundary: Option<String>,
    /// The stream sequence of the last message there, as loaded (0: must be empty).
    pub last_sequence: u64,
}

impl Guard {
    /// Guards an append by its own subject.
    pub fn subject(last_sequence: u64) -> Self {
        Self { boundary: None, last_sequence }
    }

    /// Guards an append by a whole boundary (a wildcard such as `ticketing.ticket.<id>.>`).
    pub fn boundary(boundary: impl Into<String>, last_sequence: u64) -> Self {
        Self { boundary: Some(boundary.into()), last_sequence }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// The subject to store it on.
    pub subject: String,
    /// The event.
    pub event: &'a Event,
    /// The optimistic-concurrency guard.
    pub guard: Guard,
    /// The deduplication id: the same decision sent twice carries the same id.
    pub msg_id: String,
}

/// A stored append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's stream sequence.
    pub sequence: u64,
    /// The event had been stored by an earlier attempt whose acknowledgement was lost.
    pub replayed: bool,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer in time, even after retries. The append may or may not be stored; sending the
    /// same `msg_id` again is safe.
    #[error("the event store did not answer in time")]
    Timeout,
    /// The connection to NATS failed.
    #[error("NATS request failed: {0}")]
    Nats(String),
    /// JetStream refused the request.
    #[error("JetStream error {err_code}: {description}")]
    JetStream {
        /// JetStream's error code.
        err_code: u64,
        /// Its description.
        description: String,
    },
    /// An event could not be encoded: nothing was sent.
    #[error("event could not be encoded: {0}")]
    Encode(String),
    /// A stored event could not be read.
    #[error("event at sequence {sequence} is unreadable: {source}")]
    Decode {
        /// Where.
        sequence: u64,
        /// Why.
        source: EventDecodeError,
    },
    /// The server's answer did not have the expected shape.
    #[error("unexpected answer from JetStream: {0}")]
    Protocol(String),
    /// The NATS server cannot run this platform.
    #[error("NATS server {found} is too old: version 2.12 or newer is required (message schedules, wildcard guards)")]
    ServerTooOld {
        /// The version the server reported.
        found: String,
    },
    /// The NATS server has JetStream disabled.
    #[error("JetStream is not enabled on the NATS server (start nats-server with -js)")]
    JetStreamDisabled,
    /// The stream exists with settings this platform cannot work with.
    #[error(
        "stream {stream} exists with {setting} = {found}, but {expected} is required; \
         change the stream (e.g. `nats stream edit {stream}`) or the configuration"
    )]
    StreamMismatch {
        /// The stream.
        stream: String,
        /// The mismatching setting.
        setting: &'static str,
        /// Its value on the server.
        found: String,
        /// The value required.
        expected: String,
    },
}

/// Why an append was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Someone else appended to the boundary since it was loaded: reload, decide again.
    /// Clients see `CONFLICT` only if the new decision refuses too.
    #[error("the aggregate changed since it was loaded (expected last sequence {expected})")]
    Conflict {
        /// The boundary's last sequence the append expected.
        expected: u64,
    },
    /// The store failed (clients see `INTERNAL_SERVER_ERROR`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// JetStream's "no message found" error code (a `STREAM.MSG.GET` that matches nothing).
const NO_MESSAGE_FOUND: u64 = 10037;

#[derive(Deserialize)]
struct PubAck {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

impl EventStore {
    /// Ensures the stream (see [`stream::ensure`]) and returns a handle on it.
    ///
    /// # Errors
    /// [`StoreError`] when the server is too old, JetStream is off, or the stream mismatches.
    pub async fn connect(client: Client, settings: &StreamSettings) -> Result<Self, StoreError> {
        stream::ensure(&client, settings).await?;
        Ok(Self { client, settings: settings.clone() })
    }

    /// The NATS client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.settings.name
    }

    /// The settings the store was opened with.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// Loads an aggregate from every event whose subject matches `boundary`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or an event is unreadable.
    pub async fn load<A: Aggregate>(&self, boundary: &str) -> Result<Loaded<A>, StoreError> {
        let history = self.read_counted(boundary).await?;
        let last_sequence = history.last().map_or(0, |e| e.sequence);
        let state = A::replay(history.iter().map(|e| &e.event));
        Ok(Loaded { state, last_sequence, history })
    }

    /// Loads an aggregate that lives on one literal subject with one batched read and without the
    /// subject index: half the requests of [`EventStore::load`]. On a cluster a replica that is
    /// behind may answer it, so the state may lack the newest events: it is as good as a cached
    /// state, fit for a write whose guard (the subject's last sequence) then proves it current,
    /// never for a refusal.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or an event is unreadable.
    pub async fn load_unverified<A: Aggregate>(&self, subject: &str) -> Result<Loaded<A>, StoreError> {
        let history = self.read(subject, 1).await?;
        let last_sequence = history.last().map_or(0, |e| e.sequence);
        let state = A::replay(history.iter().map(|e| &e.event));
        Ok(Loaded { state, last_sequence, history })
    }

    /// Reads every event matching `filter` from sequence `from` on, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or an event is unreadable.
    pub async fn read(&self, filter: &str, from: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let filter = self.settings.wire_subject(filter);
        let raw =
            direct::get_all(&self.client, &self.settings.name, &filter, from, self.settings.request_timeout).await?;
        self.decode_all(raw)
    }

    /// Reads every event matching `filter` (wildcards allowed) through the subject index, like
    /// [`EventStore::load`]: a read that comes back short of what the index counts (a replica that
    /// is behind) is read again, then reported, never taken as complete. For small filters.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails, a read stays short, or an event is unreadable.
    pub async fn read_counted(&self, filter: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let filter = self.settings.wire_subject(filter);
        let raw =
            direct::get_counted(&self.client, &self.settings.name, &filter, self.settings.request_timeout).await?;
        self.decode_all(raw)
    }

    /// The stream sequence of the last message matching `filter` (wildcards allowed), 0 when
    /// none does. Asked of the stream's leader (`STREAM.MSG.GET`, not a direct get, which a
    /// replica that is behind may answer): every acknowledged append is at or below it.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn last_sequence(&self, filter: &str) -> Result<u64, StoreError> {
        let request = serde_json::json!({ "last_by_subj": self.settings.wire_subject(filter) });
        let subject = format!("$JS.API.STREAM.MSG.GET.{}", self.settings.name);
        let reply = tokio::time::timeout(
            self.settings.request_timeout,
            self.client.request(subject, Bytes::from(request.to_string())),
        )
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(|e| StoreError::Nats(e.to_string()))?;
        let answer: serde_json::Value =
            serde_json::from_slice(&reply.payload).map_err(|e| StoreError::Protocol(format!("msg get: {e}")))?;
        if let Some(error) = answer.get("error") {
            // No message matches: nothing written there yet.
            if error["err_code"].as_u64() == Some(NO_MESSAGE_FOUND) {
                return Ok(0);
            }
            return Err(StoreError::JetStream {
                err_code: error["err_code"].as_u64().unwrap_or(0),
                description: error["description"].as_str().unwrap_or_default().to_owned(),
            });
        }
        answer["message"]["seq"].as_u64().ok_or_else(|| StoreError::Protocol("msg get without a sequence".into()))
    }

    /// Every event matching `filter` from `from` on, read until the last one the leader knows of
    /// ([`EventStore::last_sequence`], asked first): a read that comes back short (a replica
    /// that is behind answered the direct get) is read again, then reported, never taken as
    /// complete. Made for catching a wide boundary up (a show with thousands of order subjects),
    /// where [`EventStore::read_counted`] would ask for every subject on its own.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails, a read stays short, or an event is unreadable.
    pub async fn read_complete(&self, filter: &str, from: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let last = self.last_sequence(filter).await?;
        if last < from {
            return Ok(vec![]);
        }
        let mut got = 0;
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
            }
            let events = self.read(filter, from).await?;
            got = events.last().map_or(0, |e| e.sequence);
            if got >= last {
                return Ok(events);
            }
        }
        Err(StoreError::Protocol(format!("short read of {filter}: up to {got}, the leader has {last}")))
    }

    fn decode_all(&self, raw: Vec<RawMessage>) -> Result<Vec<StoredEvent>, StoreError> {
        raw.into_iter()
            .map(|m| {
                let event = EventEnvelope::decode(&m.payload)
                    .map_err(|source| StoreError::Decode { sequence: m.sequence, source })?;
                let subject = self.settings.domain_subject(&m.subject);
                Ok(StoredEvent { sequence: m.sequence, subject, recorded_at: m.time, event })
            })
            .collect()
    }

    /// Reads every message on a timer subject (schedules and their firings) without decoding it.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn read_timers(&self, filter: &str) -> Result<Vec<RawMessage>, StoreError> {
        let filter = self.settings.wire_subject(filter);
        direct::get_all(&self.client, &self.settings.timers_name(), &filter, 1, self.settings.request_timeout).await
    }

    /// Appends one event if its guard still holds.
    ///
    /// A lost acknowledgement is retried with the same `msg_id`; if the first attempt was stored
    /// the result says so (`replayed`) instead of reporting a false conflict.
    ///
    /// # Errors
    /// [`AppendError::Conflict`] when the boundary moved on; [`AppendError::Store`] otherwise.
    #[tracing::instrument(name = "append", skip_all, fields(subject = %append.subject))]
    pub async fn append(&self, append: Append<'_>) -> Result<Appended, AppendError> {
        let started = std::time::Instant::now();
        let result = self.append_guarded(append).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(AppendError::Conflict { .. }) => "conflict",
            Err(AppendError::Store(_)) => "error",
        };
        metrics::histogram!("ticketing_append_seconds", "outcome" => outcome).record(started.elapsed().as_secs_f64());
        if outcome == "conflict" {
            metrics::counter!("ticketing_append_conflicts_total").increment(1);
        }
        result
    }

    /// [`Self::append`] without its metrics.
    async fn append_guarded(&self, append: Append<'_>) -> Result<Appended, AppendError> {
        let payload = Bytes::from(EventEnvelope::encode(append.event).map_err(|e| StoreError::Encode(e.to_string()))?);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", append.msg_id.as_str());
        headers.insert("Nats-Expected-Last-Subject-Sequence", append.guard.last_sequence.to_string().as_str());
        if let Some(boundary) = &append.guard.boundary {
            headers
                .insert("Nats-Expected-Last-Subject-Sequence-Subject", self.settings.wire_subject(boundary).as_str());
        }
        headers.insert(EVENT_TYPE_HEADER, append.event.type_name());
        // The trace of the operation that wrote it, for the projector's commit (W3C traceparent).
        service_kit::telemetry::inject(&mut headers);

        let mut last_error = StoreError::Timeout;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            match self.publish(&self.settings.wire_subject(&append.subject), headers.clone(), payload.clone()).await {
                Ok(ack) => match ack.error {
                    None => return Ok(Appended { sequence: ack.seq, replayed: ack.duplicate }),
                    Some(error) if matches!(error.err_code, WRONG_LAST_SEQUENCE | WRONG_LAST_SEQUENCE_CLUSTERED) => {
                        return match self.find_own_write(&append).await? {
                            Some(sequence) => Ok(Appended { sequence, replayed: true }),
                            None => Err(AppendError::Conflict { expected: append.guard.last_sequence }),
                        };
                    }
                    Some(error) => {
                        return Err(
                            StoreError::JetStream { err_code: error.err_code, description: error.description }.into()
                        );
                    }
                },
                Err(error @ (StoreError::Timeout | StoreError::Nats(_))) => {
                    tracing::warn!(subject = %append.subject, attempt, %error, "append not acknowledged; retrying");
                    last_error = error;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error.into())
    }

    /// Writes a JetStream message schedule in the timer stream: at `fire_at` the server publishes
    /// `payload` on `target`. Writing the same schedule subject again replaces the schedule. A
    /// time that has already come (a timer armed late) fires at once: the payload goes straight to
    /// `target`, deduplicated by `msg_id` like the schedule.
    ///
    /// # Errors
    /// [`StoreError`] when the schedule is not stored.
    pub async fn schedule(
        &self,
        subject: &str,
        target: &str,
        fire_at: Timestamp,
        payload: Bytes,
        msg_id: &str,
    ) -> Result<u64, StoreError> {
        let when = fire_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::Protocol(format!("unformattable schedule time: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if fire_at <= time::OffsetDateTime::now_utc() {
            return self.publish_timer(target, headers, payload).await;
        }
        headers.insert("Nats-Schedule", format!("@at {when}").as_str());
        headers.insert("Nats-Schedule-Target", self.settings.wire_subject(target).as_str());
        self.publish_timer(subject, headers, payload).await
    }

    async fn publish_timer(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Result<u64, StoreError> {
        let mut last_error = StoreError::Timeout;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            match self.publish(&self.settings.wire_subject(subject), headers.clone(), payload.clone()).await {
                Ok(PubAck { error: None, seq, .. }) => return Ok(seq),
                Ok(PubAck { error: Some(e), .. }) => {
                    return Err(StoreError::JetStream { err_code: e.err_code, description: e.description });
                }
                Err(error @ (StoreError::Timeout | StoreError::Nats(_))) => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    async fn publish(&self, subject: &str, headers: HeaderMap, payload: Bytes) -> Result<PubAck, StoreError> {
        let request = self.client.request_with_headers(subject.to_owned(), headers, payload);
        let reply = match tokio::time::timeout(self.settings.request_timeout, request).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => return Err(StoreError::Timeout),
            // No responders: the stream has no leader right now (election, restart). Retry.
            Ok(Err(e)) => return Err(StoreError::Nats(e.to_string())),
            Ok(Ok(reply)) => reply,
        };
        serde_json::from_slice(&reply.payload).map_err(|e| StoreError::Protocol(format!("publish ack: {e}")))
    }

    /// After a conflict, looks for this very append among the messages stored since the guard's
    /// last sequence: a retry whose first attempt was stored is a success, not a conflict.
    async fn find_own_write(&self, append: &Append<'_>) -> Result<Option<u64>, StoreError> {
        let filter = self.settings.wire_subject(append.guard.boundary.as_deref().unwrap_or(&append.subject));
        let since = direct::get_all(
            &self.client,
            &self.settings.name,
            &filter,
            append.guard.last_sequence + 1,
            self.settings.request_timeout,
        )
        .await?;
        Ok(since.iter().find(|m| m.msg_id.as_deref() == Some(append.msg_id.as_str())).map(|m| m.sequence))
    }
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_are_decoded_and_never_shown() {
        assert_eq!(super::percent_decode("p%40ss%2Fw%3Drd"), "p@ss/w=rd");
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::redacted("nats://u:secret@host:4222"), "nats://***@host:4222");
        let error = super::server_addrs("nats://u:secret@ho st:4222")
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!error.is_empty() && !error.contains("secret"), "{error}");
    }
}
