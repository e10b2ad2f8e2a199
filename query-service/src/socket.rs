//! GraphQL over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`), with the limits a
//! hostile client meets:
//!
//! - every operation on a socket is checked against the session it was opened with: once that
//!   session is signed out or expired, operations are refused with `UNAUTHENTICATED`, and the
//!   socket itself is closed with `4401` (its subscriptions end);
//! - a socket that has not sent `connection_init` within [`INIT_TIMEOUT`] is closed with `4408`;
//! - a socket runs at most [`MAX_OPERATIONS`] operations at once (`RATE_LIMITED` beyond);
//! - one client address holds at most `WS_MAX_PER_CLIENT` sockets on a gateway ([`Slots`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::gql::ApiError;
use async_graphql::http::WebSocketProtocols;
use async_graphql::{Data, Executor, Response};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};

use crate::session::Claims;
use crate::{AppState, GatewaySchema};

/// How long a new socket may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many operations (subscriptions, or queries in flight) one socket may run at once.
pub const MAX_OPERATIONS: usize = 100;
/// The close code for a socket whose session ended (`graphql-transport-ws`: Unauthorized).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// The close code for a socket that never initialised (`graphql-transport-ws`).
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// Runs each operation of one socket after checking its session, and counts what is running.
#[derive(Clone)]
pub struct SocketExecutor {
    schema: GatewaySchema,
    state: AppState,
    viewer: Option<Claims>,
    running: Arc<AtomicUsize>,
}

impl SocketExecutor {
    /// An executor for a socket opened by `viewer`.
    pub fn new(state: AppState, viewer: Option<Claims>) -> Self {
        Self { schema: state.schema.clone(), state, viewer, running: Arc::default() }
    }
}

/// A one-response stream with a typed error.
fn refusal(refused: ApiError) -> BoxStream<'static, Response> {
    let error = async_graphql::Error::from(refused).into_server_error(async_graphql::Pos::default());
    futures::stream::once(async move { Response::from_errors(vec![error]) }).boxed()
}

/// Counts one running operation until dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Executor for SocketExecutor {
    async fn execute(&self, request: async_graphql::Request) -> Response {
        let mut responses = self.execute_stream(request, None);
        match responses.next().await {
            Some(response) => response,
            // A query or mutation always answers once; an empty answer would read as "no data".
            None => Response::from_errors(vec![crate::gql::internal_error("the operation ended without an answer")]),
        }
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let this = self.clone();
        let checked = async move {
            let running = Running(this.running.clone());
            if this.running.fetch_add(1, Ordering::AcqRel) >= MAX_OPERATIONS {
                return refusal(ApiError::RateLimited("too many operations on this socket"));
            }
            if let Some(claims) = &this.viewer
                && !this.state.session_live(claims).await
            {
                return refusal(ApiError::Unauthenticated("the session of this socket has ended; sign in again"));
            }
            this.schema
                .execute_stream_with_session_data(request, session_data.unwrap_or_default())
                .map(move |response| {
                    let _running = &running;
                    response
                })
                .boxed()
        };
        futures::stream::once(checked).flatten().boxed()
    }
}

/// Resolves when `claims`' session is signed out (seen in the projector's notifications, or by a
/// re-read after missed ones) or expires; never for an anonymous socket.
async fn session_ended(state: AppState, claims: Option<Claims>) {
    let Some(claims) = claims else { return std::future::pending().await };
    let mut changes = state.changes.subscribe();
    let left = claims.exp.saturating_sub(time::OffsetDateTime::now_utc().unix_timestamp());
    let expiry = tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            () = &mut expiry => return,
            changed = changes.recv() => match changed {
                Ok(changed) if changed.sessions.contains(&claims.jti.0) => return,
                Ok(changed) if !changed.resync => {}
                // Notifications may have been missed: ask the read model.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if !state.session_live(&claims).await {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Serves one upgraded socket until the client leaves, it never initialises, or its session ends.
pub async fn serve(socket: WebSocket, protocol: WebSocketProtocols, data: Data, executor: SocketExecutor, slot: Slot) {
    let state = executor.state.clone();
    let viewer = executor.viewer.clone();
    let (mut sink, stream) = socket.split();
    let input = stream.take_while(|message| futures::future::ready(message.is_ok())).filter_map(|message| {
        futures::future::ready(match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
            _ => None,
        })
    });
    let mut output = async_graphql::http::WebSocket::new(executor, input, protocol).connection_data(data);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    let ended = session_ended(state, viewer);
    tokio::pin!(init_deadline, ended);
    let mut acknowledged = false;
    let close = |code: u16, reason: &str| Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    loop {
        let message = tokio::select! {
            message = output.next() => match message {
                None => break,
                Some(async_graphql::http::WsMessage::Text(text)) => {
                    acknowledged |= text.contains("\"connection_ack\"");
                    Message::Text(text.into())
                }
                Some(async_graphql::http::WsMessage::Close(code, reason)) => close(code, &reason),
            },
            () = &mut init_deadline, if !acknowledged => close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout"),
            () = &mut ended => close(CLOSE_UNAUTHORIZED, "Unauthorized: the session has ended"),
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    drop(slot);
}

/// The subprotocol a handshake asks for (`graphql-transport-ws` or `graphql-ws`), if it is one.
pub fn protocol(headers: &axum::http::HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().parse().ok())
}

/// Open sockets per client address, on this gateway.
#[derive(Debug, Default)]
pub struct Slots {
    open: Mutex<HashMap<String, u64>>,
}

/// One client's open socket, counted until dropped.
pub struct Slot {
    slots: Arc<Slots>,
    client: String,
}

impl Slots {
    /// A slot for one more socket of `client`, unless it holds `max` already.
    pub fn take(self: &Arc<Self>, client: &str, max: u64) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client.to_owned()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot { slots: self.clone(), client: client.to_owned() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}
