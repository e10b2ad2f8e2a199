//! Subscriptions over WebSocket with the `graphql-transport-ws` protocol, on the page's origin.
//!
//! One socket per subscription: it opens, says `connection_init`, waits for the ack, subscribes
//! and hands each `next` to a callback. When the socket drops (a gateway restart, a network
//! blip) it reconnects with backoff and reports [`Event::Connected`] again, so the page refetches
//! what it may have missed. Dropping the [`Subscription`] closes the socket.

use futures::future::{AbortHandle, abortable};
use futures::{SinkExt, StreamExt};
use gloo::net::websocket::Message;
use gloo::net::websocket::futures::WebSocket;
use graphql_client::{GraphQLQuery, Response};
use serde_json::{Value, json};
use yew::Callback;

use crate::api::{self, ApiError};

/// What a subscription reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T> {
    /// The subscription is live (again): anything before this may have been missed.
    Connected,
    /// A change.
    Data(T),
    /// The API refused the subscription; it is not retried.
    Refused(ApiError),
}

/// A running subscription; dropping it closes the socket.
#[derive(Debug)]
pub struct Subscription {
    abort: AbortHandle,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Starts `Q` with `variables`, reporting to `on_event` until dropped.
pub fn subscribe<Q>(variables: Q::Variables, on_event: Callback<Event<Q::ResponseData>>) -> Subscription
where
    Q: GraphQLQuery + 'static,
{
    let payload = serde_json::to_value(Q::build_query(variables)).unwrap_or(Value::Null);
    let (task, abort) = abortable(run::<Q>(payload, on_event));
    wasm_bindgen_futures::spawn_local(async move {
        let _aborted = task.await;
    });
    Subscription { abort }
}

/// How one socket ended.
enum End {
    /// Closed or failed: try again.
    Dropped { was_live: bool },
    /// Refused or completed by the server: stop.
    Finished,
}

async fn run<Q: GraphQLQuery>(payload: Value, on_event: Callback<Event<Q::ResponseData>>) {
    const FIRST_DELAY_MS: u32 = 500;
    const LONGEST_DELAY_MS: u32 = 10_000;
    let mut delay = FIRST_DELAY_MS;
    loop {
        match socket::<Q>(&payload, &on_event).await {
            End::Finished => return,
            End::Dropped { was_live: true } => delay = FIRST_DELAY_MS,
            End::Dropped { was_live: false } => delay = (delay * 2).min(LONGEST_DELAY_MS),
        }
        gloo::timers::future::TimeoutFuture::new(delay).await;
    }
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/graphql", location.host().ok()?))
}

async fn socket<Q: GraphQLQuery>(payload: &Value, on_event: &Callback<Event<Q::ResponseData>>) -> End {
    let dropped = End::Dropped { was_live: false };
    let Some(url) = socket_url() else { return End::Finished };
    let Ok(socket) = WebSocket::open_with_protocol(&url, "graphql-transport-ws") else { return dropped };
    let (mut tx, mut rx) = socket.split();
    let init = json!({"type": "connection_init", "payload": {}}).to_string();
    if tx.send(Message::Text(init)).await.is_err() {
        return dropped;
    }
    let mut live = false;
    while let Some(Ok(Message::Text(text))) = rx.next().await {
        let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
        match message["type"].as_str() {
            Some("connection_ack") => {
                let subscribe = json!({"id": "1", "type": "subscribe", "payload": payload}).to_string();
                if tx.send(Message::Text(subscribe)).await.is_err() {
                    return dropped;
                }
                live = true;
                on_event.emit(Event::Connected);
            }
            Some("ping") => {
                let pong = json!({"type": "pong"}).to_string();
                if tx.send(Message::Text(pong)).await.is_err() {
                    break;
                }
            }
            Some("next") => match serde_json::from_value::<Response<Q::ResponseData>>(message["payload"].clone()) {
                Ok(response) => match api::decode(response) {
                    Ok(data) => on_event.emit(Event::Data(data)),
                    Err(error) => on_event.emit(Event::Refused(error)),
                },
                Err(_) => continue,
            },
            Some("error") => {
                let errors: Vec<graphql_client::Error> =
                    serde_json::from_value(message["payload"].clone()).unwrap_or_default();
                let error = errors
                    .first()
                    .map(ApiError::from_graphql)
                    .unwrap_or_else(|| ApiError::network("the subscription was refused"));
                on_event.emit(Event::Refused(error));
                return End::Finished;
            }
            Some("complete") => return End::Finished,
            _ => {}
        }
    }
    End::Dropped { was_live: live }
}
