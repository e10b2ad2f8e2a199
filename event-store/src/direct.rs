//! Batched direct get: a subject filter's messages in one request, answered by any replica.
//!
//! The request `{"seq": from, "next_by_subj": filter, "batch": n}` on
//! `$JS.API.DIRECT.GET.<stream>` streams back up to `n` messages, each with its position in
//! headers, then an end-of-batch status (204). A filter with no messages answers 404.

use std::time::Duration;

use async_nats::{Client, HeaderMap, StatusCode};
use bytes::Bytes;
use domain::Timestamp;
use futures::StreamExt;

use crate::StoreError;

/// Messages fetched per request.
const BATCH: usize = 512;

/// A stored message as direct get returns it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// The stream sequence: its position in the event stream.
    pub sequence: u64,
    /// Subject.
    pub subject: String,
    /// When the server stored it.
    pub time: Timestamp,
    /// The `Nats-Msg-Id` it was published with.
    pub msg_id: Option<String>,
    /// The body.
    pub payload: Bytes,
}

/// Fetches every message matching `filter` with sequence ≥ `from`, oldest first.
pub(crate) async fn get_all(
    client: &Client,
    stream: &str,
    filter: &str,
    from: u64,
    timeout: Duration,
) -> Result<Vec<RawMessage>, StoreError> {
    let mut out = Vec::new();
    let mut next = from.max(1);
    loop {
        let got = get_batch(client, stream, filter, next, BATCH, timeout, &mut out).await?;
        if got < BATCH {
            return Ok(out);
        }
        next = out.last().map_or(next, |m| m.sequence + 1);
    }
}

/// Fetches every message matching `filter`, oldest first, through the stream's subject index:
/// `STREAM.INFO` with the filter names each matching subject and its count, then each subject is
/// read on its own (a literal subject is looked up, not searched for) asking for exactly its
/// count, so the server never looks through unrelated messages. Made for loading one aggregate
/// in a long stream; the reads run concurrently and are merged by sequence.
///
/// A read that brings fewer messages than the index counted (on a cluster, a replica whose copy is
/// behind may answer a direct get) would be an inconsistent prefix of the aggregate that can still
/// pass an append's guard: it is read again, a few times, and then reported as an error, never
/// accepted.
pub(crate) async fn get_counted(
    client: &Client,
    stream: &str,
    filter: &str,
    timeout: Duration,
) -> Result<Vec<RawMessage>, StoreError> {
    let mut last = StoreError::Protocol(String::new());
    for attempt in 0..SHORT_READ_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
        }
        match get_counted_once(client, stream, filter, timeout).await {
            Err(error @ StoreError::Protocol(_)) if is_short_read(&error) => last = error,
            other => return other,
        }
    }
    Err(last)
}

/// How often a short read is tried again before it is reported.
const SHORT_READ_ATTEMPTS: u32 = 5;

const SHORT_READ: &str = "short read";

fn is_short_read(error: &StoreError) -> bool {
    matches!(error, StoreError::Protocol(detail) if detail.starts_with(SHORT_READ))
}

/// A subject's read is complete only with every message the index counted.
fn complete(subject: &str, counted: usize, got: usize) -> Result<(), StoreError> {
    if got < counted {
        return Err(StoreError::Protocol(format!("{SHORT_READ} of {subject}: {got} of {counted} messages")));
    }
    Ok(())
}

async fn get_counted_once(
    client: &Client,
    stream: &str,
    filter: &str,
    timeout: Duration,
) -> Result<Vec<RawMessage>, StoreError> {
    let subjects = subjects(client, stream, filter, timeout).await?;
    let reads = subjects.into_iter().map(|(subject, count)| async move {
        let mut out = Vec::with_capacity(count);
        let mut next = 1;
        let mut remaining = count;
        while remaining > 0 {
            let want = remaining.min(BATCH);
            let got = get_batch(client, stream, &subject, next, want, timeout, &mut out).await?;
            if got < want {
                complete(&subject, count, count - remaining + got)?;
            }
            remaining -= got;
            next = out.last().map_or(next, |m| m.sequence + 1);
        }
        Ok::<_, StoreError>(out)
    });
    let mut out = Vec::new();
    for read in futures::future::join_all(reads).await {
        out.extend(read?);
    }
    out.sort_by_key(|m| m.sequence);
    Ok(out)
}

/// The subjects matching `filter` with their message counts, from the stream's subject index
/// (`STREAM.INFO` with a subjects filter; no message is read).
async fn subjects(
    client: &Client,
    stream: &str,
    filter: &str,
    timeout: Duration,
) -> Result<Vec<(String, usize)>, StoreError> {
    let request = serde_json::json!({ "subjects_filter": filter });
    let reply = tokio::time::timeout(
        timeout,
        client.request(format!("$JS.API.STREAM.INFO.{stream}"), Bytes::from(request.to_string())),
    )
    .await
    .map_err(|_| StoreError::Timeout)?
    .map_err(|e| StoreError::Nats(e.to_string()))?;
    let info: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| StoreError::Protocol(format!("stream info: {e}")))?;
    if let Some(error) = info.get("error") {
        return Err(StoreError::JetStream {
            err_code: error["err_code"].as_u64().unwrap_or(0),
            description: error["description"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(info["state"]["subjects"]
        .as_object()
        .map(|subjects| {
            subjects
                .iter()
                .filter_map(|(subject, count)| Some((subject.clone(), usize::try_from(count.as_u64()?).ok()?)))
                .collect()
        })
        .unwrap_or_default())
}

async fn get_batch(
    client: &Client,
    stream: &str,
    filter: &str,
    from: u64,
    batch: usize,
    timeout: Duration,
    out: &mut Vec<RawMessage>,
) -> Result<usize, StoreError> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| StoreError::Nats(e.to_string()))?;
    let request = serde_json::json!({ "seq": from, "next_by_subj": filter, "batch": batch });
    client
        .publish_with_reply(format!("$JS.API.DIRECT.GET.{stream}"), inbox, Bytes::from(request.to_string()))
        .await
        .map_err(|e| StoreError::Nats(e.to_string()))?;
    let mut got = 0;
    loop {
        let message = match tokio::time::timeout(timeout, replies.next()).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(None) => return Err(StoreError::Nats("subscription closed".into())),
            Ok(Some(message)) => message,
        };
        match message.status {
            Some(StatusCode::NOT_FOUND) => return Ok(got),
            Some(StatusCode::NO_RESPONDERS) => return Err(StoreError::Nats("no responders for direct get".into())),
            Some(status) if status.as_u16() == 204 => return Ok(got),
            Some(status) if status.as_u16() != 200 => {
                return Err(StoreError::Protocol(format!(
                    "direct get answered {}: {}",
                    status.as_u16(),
                    message.description.unwrap_or_default()
                )));
            }
            _ => {}
        }
        let headers = message.headers.unwrap_or_default();
        out.push(RawMessage {
            sequence: header(&headers, "Nats-Sequence")?
                .parse()
                .map_err(|_| StoreError::Protocol("bad Nats-Sequence".into()))?,
            subject: header(&headers, "Nats-Subject")?.to_owned(),
            time: time::OffsetDateTime::parse(
                header(&headers, "Nats-Time-Stamp")?,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| StoreError::Protocol(format!("bad Nats-Time-Stamp: {e}")))?,
            msg_id: headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
            payload: message.payload,
        });
        got += 1;
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, StoreError> {
    headers.get(name).map(|v| v.as_str()).ok_or_else(|| StoreError::Protocol(format!("direct get without {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_with_fewer_messages_than_counted_is_an_error_to_retry() {
        assert!(complete("s", 3, 3).is_ok());
        let short = complete("s", 3, 2).err().unwrap_or_else(|| panic!("a short read was accepted"));
        assert!(is_short_read(&short), "{short}");
        assert!(!is_short_read(&StoreError::Protocol("bad Nats-Sequence".into())));
    }
}
