//! Creating and checking the event stream.

use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::StoreError;

/// JetStream's error code for "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;

/// The oldest NATS server with everything the store relies on: wildcard subject guards, message
/// schedules and batched direct get.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 12);

/// The stream's settings that come from configuration.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// The stream's name (`TICKETING`; tests use their own).
    pub name: String,
    /// Replicas: 1 on a laptop, 3 in a cluster (safety against a lost node's unsynced writes).
    pub replicas: usize,
    /// How long `Nats-Msg-Id` deduplicates retries.
    pub duplicate_window: Duration,
    /// How long to wait for any single answer from JetStream.
    pub request_timeout: Duration,
    /// The first token of every subject: `ticketing` in production. Another root keeps several
    /// deployments (or parallel tests) apart on one NATS server.
    pub subject_root: String,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: domain::subjects::STREAM.to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            subject_root: ROOT.to_owned(),
        }
    }
}

/// The subject root the domain names subjects with.
const ROOT: &str = domain::subjects::ROOT;

impl StreamSettings {
    /// Settings for an isolated namespace: stream `<name>` with subjects under `<root>.`.
    pub fn isolated(name: impl Into<String>, root: impl Into<String>) -> Self {
        Self { name: name.into(), subject_root: root.into(), ..Self::default() }
    }

    /// A domain subject (`ticketing.…`) as stored under this deployment's root.
    pub fn wire_subject(&self, subject: &str) -> String {
        domain::subjects::on_wire(&self.subject_root, subject)
    }

    /// A stored subject in the domain's naming (`ticketing.…`).
    pub fn domain_subject(&self, subject: &str) -> String {
        domain::subjects::from_wire(&self.subject_root, subject)
    }

    /// The timer stream's name.
    pub fn timers_name(&self) -> String {
        format!("{}{}", self.name, domain::subjects::TIMERS_SUFFIX)
    }

    /// The event stream's configuration, in JetStream's JSON form. Every key here is checked on
    /// an existing stream.
    pub fn config(&self) -> Value {
        json!({
            "name": self.name,
            "subjects": domain::subjects::EVENT_SUBJECTS.map(|s| self.wire_subject(s)),
            "retention": "limits",
            "storage": "file",
            "num_replicas": self.replicas,
            "discard": "old",
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msgs_per_subject": -1,
            "duplicate_window": u64::try_from(self.duplicate_window.as_nanos()).unwrap_or(u64::MAX),
            "deny_delete": true,
            "deny_purge": true,
            "allow_rollup_hdrs": false,
            "allow_direct": true,
        })
    }

    /// The timer stream's configuration. Message schedules make JetStream allow purges and
    /// rollups on the stream (it turns `deny_purge` off itself), so timers live apart from events.
    /// Its messages are triggers, not facts: losing one delays an expiry, it never loses data.
    pub fn timers_config(&self) -> Value {
        json!({
            "name": self.timers_name(),
            "subjects": domain::subjects::TIMER_SUBJECTS.map(|s| self.wire_subject(s)),
            "retention": "limits",
            "storage": "file",
            "num_replicas": self.replicas,
            "discard": "old",
            "max_msgs": -1,
            "max_bytes": -1,
            "duplicate_window": u64::try_from(self.duplicate_window.as_nanos()).unwrap_or(u64::MAX),
            "allow_direct": true,
            "allow_msg_schedules": true,
        })
    }
}

/// Creates the event and timer streams, or checks existing ones against
/// [`StreamSettings::config`] and [`StreamSettings::timers_config`].
///
/// Every setting the store depends on is compared: subjects, file storage, no limits (an event
/// must never be aged out or discarded), replicas, deny delete and purge, no rollups, direct get,
/// message schedules and the duplicate window. The first difference stops start-up with a message
/// that names it.
///
/// A cluster that is still forming (no meta leader yet, replicas being placed) answers late or
/// "temporarily unavailable": such failures are retried for up to a minute, so replicas that
/// start together with a fresh cluster wait for it instead of exiting.
///
/// # Errors
/// [`StoreError::ServerTooOld`], [`StoreError::JetStreamDisabled`], [`StoreError::StreamMismatch`]
/// or a failed request.
pub async fn ensure(client: &Client, settings: &StreamSettings) -> Result<(), StoreError> {
    /// JetStream's "system temporarily unavailable" while a cluster forms.
    const TEMPORARILY_UNAVAILABLE: u64 = 10008;
    let started = std::time::Instant::now();
    loop {
        match ensure_once(client, settings).await {
            Err(StoreError::Timeout | StoreError::Nats(_))
            | Err(StoreError::JetStream { err_code: TEMPORARILY_UNAVAILABLE, .. })
                if started.elapsed() < std::time::Duration::from_secs(60) =>
            {
                tracing::warn!("JetStream not ready yet; retrying stream setup");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            result => return result,
        }
    }
}

/// Waits until the event stream exists, for a client that may only read it (a projector: the
/// command service creates and widens the streams). Gives up after two minutes.
///
/// # Errors
/// The stream still missing after two minutes, or JetStream refusing to describe it.
pub async fn wait_for(client: &Client, settings: &StreamSettings) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let give_up = std::time::Duration::from_secs(120);
    let mut said = false;
    loop {
        let info = api(client, &format!("$JS.API.STREAM.INFO.{}", settings.name), Bytes::new(), settings).await;
        match info {
            Ok(info) => match api_error(&info) {
                None => return Ok(()),
                Some((STREAM_NOT_FOUND, _)) if started.elapsed() < give_up => {
                    if !said {
                        tracing::info!(stream = %settings.name, "waiting for the command service to create the stream");
                        said = true;
                    }
                }
                Some((err_code, description)) => return Err(StoreError::JetStream { err_code, description }),
            },
            Err(StoreError::Timeout | StoreError::Nats(_)) if started.elapsed() < give_up => {}
            Err(error) => return Err(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn ensure_once(client: &Client, settings: &StreamSettings) -> Result<(), StoreError> {
    // A client made with `retry_on_initial_connect` knows the server only once connected.
    if client.server_info().version.is_empty() {
        tokio::time::timeout(settings.request_timeout, client.flush())
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(|e| StoreError::Nats(e.to_string()))?;
    }
    check_server_version(&client.server_info().version)?;
    ensure_one(client, settings, &settings.config()).await?;
    ensure_one(client, settings, &settings.timers_config()).await
}

async fn ensure_one(client: &Client, settings: &StreamSettings, wanted: &Value) -> Result<(), StoreError> {
    let name = wanted["name"].as_str().unwrap_or_default();
    let info_subject = format!("$JS.API.STREAM.INFO.{name}");
    let info = api(client, &info_subject, Bytes::new(), settings).await?;
    let existing = match api_error(&info) {
        Some((STREAM_NOT_FOUND, _)) => {
            let create_subject = format!("$JS.API.STREAM.CREATE.{name}");
            let created = api(client, &create_subject, Bytes::from(wanted.to_string()), settings).await?;
            match api_error(&created) {
                None => created,
                // Another process created it first: check what it created.
                Some(_) => api(client, &info_subject, Bytes::new(), settings).await?,
            }
        }
        _ => info,
    };
    if let Some((err_code, description)) = api_error(&existing) {
        return Err(StoreError::JetStream { err_code, description });
    }
    if let Some(widened) = widened(wanted, &existing["config"]) {
        // A newer version captures more subjects (say, a new kind of timer): add them, keeping
        // everything else as it is, and only when everything else already fits. Nothing is ever
        // taken away here.
        let mut same_subjects = wanted.clone();
        same_subjects["subjects"] = existing["config"]["subjects"].clone();
        compare(name, &same_subjects, &existing["config"])?;
        tracing::info!(stream = name, "adding subjects to the stream");
        let update_subject = format!("$JS.API.STREAM.UPDATE.{name}");
        let updated = api(client, &update_subject, Bytes::from(widened.to_string()), settings).await?;
        if let Some((err_code, description)) = api_error(&updated) {
            return Err(StoreError::JetStream { err_code, description });
        }
        return compare(name, wanted, &updated["config"]);
    }
    compare(name, wanted, &existing["config"])
}

/// The existing configuration with the wanted subjects, when the existing stream captures a strict
/// subset of them (and so only lacks subjects); `None` otherwise.
fn widened(wanted: &Value, found: &Value) -> Option<Value> {
    let as_set = |config: &Value| -> std::collections::BTreeSet<String> {
        config["subjects"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let (wanted_subjects, found_subjects) = (as_set(wanted), as_set(found));
    if found_subjects.is_empty() || !found_subjects.is_subset(&wanted_subjects) || found_subjects == wanted_subjects {
        return None;
    }
    let mut config = found.clone();
    config["subjects"] = wanted["subjects"].clone();
    Some(config)
}

fn compare(stream: &str, wanted: &Value, found: &Value) -> Result<(), StoreError> {
    let mismatch = |setting: &'static str, found: &Value, expected: &Value| StoreError::StreamMismatch {
        stream: stream.to_owned(),
        setting,
        found: found.to_string(),
        expected: expected.to_string(),
    };
    let mut wanted_subjects: Vec<&str> =
        wanted["subjects"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut found_subjects: Vec<&str> =
        found["subjects"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    wanted_subjects.sort_unstable();
    found_subjects.sort_unstable();
    if wanted_subjects != found_subjects {
        return Err(mismatch("subjects", &found["subjects"], &wanted["subjects"]));
    }
    let checked =
        wanted.as_object().into_iter().flatten().filter(|(key, _)| !matches!(key.as_str(), "name" | "subjects"));
    for (setting, wanted_value) in checked {
        // JetStream leaves out settings at their defaults (false, 0).
        let found_value = match &found[setting] {
            Value::Null => default_of(wanted_value),
            v => v.clone(),
        };
        if &found_value != wanted_value {
            return Err(mismatch(setting_name(setting), &found_value, wanted_value));
        }
    }
    Ok(())
}

/// The checked settings, as `'static` names for [`StoreError::StreamMismatch`].
fn setting_name(key: &str) -> &'static str {
    const KNOWN: [&str; 15] = [
        "retention",
        "storage",
        "num_replicas",
        "discard",
        "max_msgs",
        "max_bytes",
        "max_age",
        "max_msgs_per_subject",
        "duplicate_window",
        "deny_delete",
        "deny_purge",
        "allow_rollup_hdrs",
        "allow_direct",
        "allow_msg_schedules",
        "subjects",
    ];
    KNOWN.into_iter().find(|known| *known == key).unwrap_or("a stream setting")
}

fn default_of(value: &Value) -> Value {
    match value {
        Value::Bool(_) => Value::Bool(false),
        Value::Number(_) => json!(0),
        _ => Value::Null,
    }
}

/// Refuses servers older than [`MIN_SERVER_VERSION`].
///
/// # Errors
/// [`StoreError::ServerTooOld`] for an older or unparseable version.
pub fn check_server_version(version: &str) -> Result<(), StoreError> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']).map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= MIN_SERVER_VERSION => Ok(()),
        _ => Err(StoreError::ServerTooOld { found: version.to_owned() }),
    }
}

async fn api(client: &Client, subject: &str, body: Bytes, settings: &StreamSettings) -> Result<Value, StoreError> {
    let reply = match tokio::time::timeout(settings.request_timeout, client.request(subject.to_owned(), body)).await {
        Err(_) => return Err(StoreError::Timeout),
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(StoreError::JetStreamDisabled);
        }
        Ok(Err(e)) => return Err(StoreError::Nats(e.to_string())),
        Ok(Ok(reply)) => reply,
    };
    serde_json::from_slice(&reply.payload).map_err(|e| StoreError::Protocol(format!("{subject}: {e}")))
}

fn api_error(response: &Value) -> Option<(u64, String)> {
    let error = response.get("error")?;
    Some((error["err_code"].as_u64().unwrap_or(0), error["description"].as_str().unwrap_or_default().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_2_12_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("2.11.4").is_err());
        assert!(check_server_version("garbage").is_err());
        assert!(check_server_version("2.12.0").is_ok());
        assert!(check_server_version("v2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
    }

    #[test]
    fn another_root_renames_every_subject_and_back() {
        let settings = StreamSettings::isolated("T1", "t1");
        assert_eq!(settings.wire_subject("ticketing.ticket.x.>"), "t1.ticket.x.>");
        assert_eq!(settings.domain_subject("t1.ticket.x.order.y"), "ticketing.ticket.x.order.y");
        let production = StreamSettings::default();
        assert_eq!(production.wire_subject("ticketing.account.a"), "ticketing.account.a");
    }

    #[test]
    fn a_stream_lacking_only_some_subjects_is_widened_and_nothing_else() {
        let settings = StreamSettings::default();
        let wanted = settings.timers_config();
        let mut older = wanted.clone();
        older["subjects"] = json!(["ticketing.schedule.>", "ticketing.expiry.>"]);
        let update = widened(&wanted, &older).unwrap_or_else(|| panic!("not widened"));
        assert_eq!(update["subjects"], wanted["subjects"]);
        assert_eq!(update["storage"], older["storage"]);
        assert!(widened(&wanted, &wanted).is_none(), "nothing to add");
        let mut other = wanted.clone();
        other["subjects"] = json!(["elsewhere.>"]);
        assert!(widened(&wanted, &other).is_none(), "a foreign subject is a mismatch, not widened");
    }

    #[test]
    fn a_stream_that_could_age_out_events_is_a_mismatch() {
        let settings = StreamSettings::default();
        let wanted = settings.config();
        let mut found = wanted.clone();
        found["max_age"] = json!(3_600_000_000_000u64);
        let error = compare("TICKETING", &wanted, &found).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("max_age"), "{error}");
        assert!(compare("TICKETING", &wanted, &wanted).is_ok());
    }
}
