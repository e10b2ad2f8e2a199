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
    /// Stream sequence.
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
        let got = get_batch(client, stream, filter, next, timeout, &mut out).await?;
        if got < BATCH {
            return Ok(out);
        }
        next = out.last().map_or(next, |m| m.sequence + 1);
    }
}

async fn get_batch(
    client: &Client,
    stream: &str,
    filter: &str,
    from: u64,
    timeout: Duration,
    out: &mut Vec<RawMessage>,
) -> Result<usize, StoreError> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| StoreError::Nats(e.to_string()))?;
    let request = serde_json::json!({ "seq": from, "next_by_subj": filter, "batch": BATCH });
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
