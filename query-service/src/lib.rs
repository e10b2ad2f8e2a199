//! The GraphQL gateway (axum + async-graphql): queries read PostgreSQL, mutations become commands
//! sent over NATS and answer once the projector has caught up (read-your-writes), and the payment
//! webhook is forwarded to the command service.
//!
//! - [`schema`] builds the code-first schema ([`gql`]); `schema.graphql` at the repository root is
//!   generated from it and checked by a test.
//! - [`app`] is the HTTP surface: `POST /graphql`, `POST /webhooks/payments`, `/healthz`,
//!   `/readyz`, `/metrics`, and the web app ([`web`]) on every other path.
//! - Sessions are HS256 JWTs in the `session` cookie ([`session`]); a signed-out session is
//!   refused through the projected `revoked_sessions`, asked in batches ([`coalesce`]).

pub mod client;
pub mod coalesce;
pub mod commands;
pub mod config;
pub mod db;
pub mod gql;
pub mod limits;
pub mod loaders;
pub mod metrics;
pub mod session;
pub mod socket;
pub mod web;

use std::sync::Arc;

use async_graphql::Schema;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use command_api::{Command, Outcome, Request, Success};
use gql::ApiError;
use tokio::sync::watch;

use crate::config::Config;
use crate::session::{Claims, Sessions};

/// The schema type.
pub type GatewaySchema = Schema<gql::Query, gql::Mutation, gql::Subscription>;

/// What one projector commit changed (from its notification), shared by every subscriber.
///
/// The changed rows are read once, by the first subscriber that asks, and the others reuse them:
/// one commit watched by 10,000 subscribers costs one query per kind, not 10,000.
#[derive(Debug, Default)]
pub struct Changed {
    /// The position projected.
    pub position: u64,
    /// Tickets that changed.
    pub tickets: Vec<uuid::Uuid>,
    /// Orders that changed.
    pub orders: Vec<uuid::Uuid>,
    /// Sessions signed out (their WebSockets end).
    pub sessions: Vec<uuid::Uuid>,
    /// Notifications may have been missed before this one (the gateway's listener reconnected,
    /// or a subscriber lagged): subscribers re-read what they watch instead of trusting the lists.
    pub resync: bool,
    /// Events (shows) whose row, stock or seats changed.
    pub events: Vec<uuid::Uuid>,
    ticket_rows: tokio::sync::OnceCell<std::collections::HashMap<uuid::Uuid, db::TicketRow>>,
    order_rows: tokio::sync::OnceCell<std::collections::HashMap<uuid::Uuid, db::OrderRow>>,
}

/// One event read whole, at most once.
type EventCell = tokio::sync::OnceCell<Option<Arc<gql::EventSnapshot>>>;

/// The latest whole read of each watched event, shared by all its `eventChanged` subscribers:
/// 10,000 watchers of a hot event cost one read per change they push, not 10,000. One entry per
/// event (the newest read), so memory stays one snapshot per watched event however slowly
/// some subscribers read their sockets.
#[derive(Default)]
pub struct EventSnapshots {
    latest: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (u64, Arc<EventCell>)>>,
}

impl EventSnapshots {
    /// At most this many events are kept; past it the cache starts again empty.
    const CAPACITY: usize = 1_000;

    /// The event as read at or after projected position `at_least` (one read for every caller
    /// asking for that position or an older one).
    ///
    /// # Errors
    /// A database error (the next caller tries again).
    pub async fn get(
        &self,
        pool: &sqlx::PgPool,
        id: uuid::Uuid,
        at_least: u64,
    ) -> sqlx::Result<Option<Arc<gql::EventSnapshot>>> {
        let cell = {
            let mut latest = self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if latest.len() >= Self::CAPACITY && !latest.contains_key(&id) {
                latest.clear();
            }
            match latest.get(&id) {
                Some((position, cell)) if *position >= at_least => cell.clone(),
                _ => {
                    let cell = Arc::new(EventCell::new());
                    latest.insert(id, (at_least, cell.clone()));
                    cell
                }
            }
        };
        let snapshot = cell
            .get_or_try_init(|| async { Ok::<_, sqlx::Error>(gql::EventSnapshot::read(pool, id).await?.map(Arc::new)) })
            .await?;
        Ok(snapshot.clone())
    }
}

impl Changed {
    /// A commit at `position` that changed these tickets and orders.
    #[must_use]
    pub fn new(position: u64, tickets: Vec<uuid::Uuid>, orders: Vec<uuid::Uuid>) -> Self {
        Self { position, tickets, orders, ..Self::default() }
    }

    /// Everything changed after a gap in notifications: `tickets` and `orders` are the rows known
    /// to have changed (possibly not all of them; subscribers to one row re-read it directly).
    #[must_use]
    pub fn resync(position: u64, tickets: Vec<uuid::Uuid>, orders: Vec<uuid::Uuid>) -> Self {
        Self { position, tickets, orders, resync: true, ..Self::default() }
    }

    /// A changed ticket as it is after this commit (or later), read once for all subscribers.
    ///
    /// # Errors
    /// A database error (the next subscriber to ask tries again).
    pub async fn ticket(&self, pool: &sqlx::PgPool, id: uuid::Uuid) -> sqlx::Result<Option<db::TicketRow>> {
        let rows = self.ticket_rows.get_or_try_init(|| db::tickets_by_id(pool, &self.tickets)).await?;
        Ok(rows.get(&id).cloned())
    }

    /// A changed order as it is after this commit (or later), read once for all subscribers.
    ///
    /// # Errors
    /// A database error (the next subscriber to ask tries again).
    pub async fn order(&self, pool: &sqlx::PgPool, id: uuid::Uuid) -> sqlx::Result<Option<db::OrderRow>> {
        let rows = self
            .order_rows
            .get_or_try_init(|| async {
                let rows: Vec<db::OrderRow> = db::by_ids(pool, db::ORDER, &self.orders).await?;
                Ok::<_, sqlx::Error>(rows.into_iter().map(|row| (row.id, row)).collect())
            })
            .await?;
        Ok(rows.get(&id).cloned())
    }
}

/// The deepest query accepted.
pub const MAX_DEPTH: usize = 12;

/// The body answered when a GraphQL response cannot be encoded: the generic internal error,
/// never an empty 200.
const INTERNAL_RESPONSE: &str =
    r#"{"data":null,"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;
/// The most complex query accepted: every field costs 1, a page `first ×` its selection, so a
/// page of 100 tickets with a dozen fields (and their sellers) fits and 50 such pages do not.
pub const MAX_COMPLEXITY: usize = 5000;
/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Each WebSocket connection's initial read buffer, in bytes.
pub const WS_READ_BUFFER: usize = 4 * 1024;

/// What every request shares: a handle, cloned per request (and by axum's `State`) for the cost
/// of one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The gateway's state behind an [`AppState`].
pub struct Shared {
    /// The read models.
    pub pool: sqlx::PgPool,
    /// Commands go here.
    pub nats: async_nats::Client,
    /// Session tokens.
    pub sessions: Sessions,
    /// Settings.
    pub config: Config,
    /// The latest projected stream position.
    pub projected: watch::Receiver<u64>,
    /// The first token of command subjects.
    pub subject_root: String,
    /// The schema.
    pub schema: GatewaySchema,
    /// Every projector commit, for subscriptions.
    pub changes: tokio::sync::broadcast::Sender<Arc<Changed>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<[client::Cidr]>,
    /// Open WebSockets per client address.
    pub sockets: Arc<socket::Slots>,
    /// Sessions signed out through this gateway, refused at once, before the projector reports
    /// them (kept until their tokens expire).
    pub signed_out: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, i64>>>,
    /// Sign-out checks, batched across requests.
    pub sign_outs: coalesce::Coalesced<coalesce::SignOuts>,
    /// `ticket(id)` reads, batched across requests.
    pub tickets: coalesce::Coalesced<coalesce::Tickets>,
    /// Orders read by the mutations that answer with one, batched across requests.
    pub orders: coalesce::Coalesced<coalesce::Orders>,
    /// What serving the pages keeps: the bound on renders at once, the sitemap of the moment.
    pub pages: web::Pages,
    /// Whole reads of watched events, shared by their subscribers.
    pub event_snapshots: EventSnapshots,
    /// Whether the read models stopped following the stream (for `/readyz`).
    pub projection_stall: Arc<std::sync::Mutex<service_kit::Stall>>,
}

/// The signed-in user of a request, if any.
pub struct Viewer(pub Option<Claims>);

/// The client's network address as the throttles count it ([`client::throttle_key`]).
pub struct ClientAddr(pub String);

/// Builds the schema (without request data).
pub fn schema(introspection: bool) -> GatewaySchema {
    let builder = Schema::build(gql::Query::default(), gql::Mutation::default(), gql::Subscription::default())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(limits::AliasLimit);
    if introspection { builder.finish() } else { builder.disable_introspection().finish() }
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema(true).sdl()
}

impl AppState {
    /// The order a write that succeeded answers with: read in a batch with the others, and when
    /// the batch is not answered in time (a pool saturated by a sale), read alone, waiting for a
    /// connection as long as the pool lets it, so an acknowledged write is not reported as a
    /// failure that a client would retry.
    ///
    /// # Errors
    /// When the read model cannot be read at all.
    pub async fn written_order(&self, id: uuid::Uuid) -> sqlx::Result<Option<db::OrderRow>> {
        match self.orders.get(id).await {
            Ok(row) => Ok(row),
            Err(coalesce::Unanswered) => db::order(&self.pool, id).await,
        }
    }

    /// State for a gateway on `pool` and `nats`; starts following the projection.
    pub async fn new(config: Config, pool: sqlx::PgPool, nats: async_nats::Client) -> Self {
        // Installed before anything records (see `service_kit::metrics`).
        service_kit::metrics();
        let initial = db::checkpoint(&pool).await.ok().and_then(|p| u64::try_from(p).ok()).unwrap_or(0);
        let (tx, projected) = watch::channel(initial);
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        tokio::spawn(commands::follow_projection(pool.clone(), tx, changes.clone()));
        let sessions = Sessions::new(&config.jwt_secret, config.session_seconds, config.cookie_secure);
        let subject_root = config.subject_root.clone();
        let schema = schema(config.graphql_introspection);
        let sign_outs = coalesce::Coalesced::spawn(coalesce::SignOuts(pool.clone()));
        let tickets = coalesce::Coalesced::spawn(coalesce::Tickets(pool.clone()));
        let orders = coalesce::Coalesced::spawn(coalesce::Orders(pool.clone()));
        // `Config::validate` has refused bad entries before a gateway starts.
        let trusted_proxies = config.trusted().unwrap_or_default().into();
        let stall_after = std::time::Duration::from_secs(config.projection_stall_seconds);
        Self(Arc::new(Shared {
            pool,
            nats,
            sessions,
            config,
            projected,
            subject_root,
            schema,
            changes,
            metrics: Arc::default(),
            trusted_proxies,
            sockets: Arc::default(),
            signed_out: Arc::default(),
            sign_outs,
            event_snapshots: EventSnapshots::default(),
            projection_stall: Arc::new(std::sync::Mutex::new(service_kit::Stall::new(stall_after))),
            tickets,
            orders,
            pages: web::Pages::default(),
        }))
    }

    /// `request` with what every resolver reads: the viewer, this state, and the request's own
    /// dataloaders (an HTTP request and a server-rendered page's queries alike).
    pub(crate) fn for_viewer(&self, request: async_graphql::Request, viewer: Option<Claims>) -> async_graphql::Request {
        request.data(Viewer(viewer)).data(self.clone()).data(loaders::loaders(self.pool.clone(), self.metrics.clone()))
    }

    /// The viewer a `Cookie` header names: a valid token whose session is not revoked, with its
    /// roles decided by the configuration in force now (not by what the token was issued with).
    async fn viewer(&self, headers: &HeaderMap) -> Option<Claims> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        let mut claims = self.sessions.verify(session::from_cookie_header(cookies)?)?;
        claims.roles = self.roles(&claims.email);
        self.session_live(&claims).await.then_some(claims)
    }

    /// `USER`, and `ADMIN` while the address is in `ADMIN_EMAILS`.
    pub fn roles(&self, email: &str) -> Vec<command_api::Role> {
        command_api::roles(self.config.is_admin(email))
    }

    /// Whether a verified session is still good: not expired, not signed out. A read model that
    /// cannot answer counts as signed out (fail closed).
    pub async fn session_live(&self, claims: &Claims) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signed_out_here = {
            let signed_out = self.signed_out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            signed_out.contains_key(&claims.jti.0)
        };
        claims.exp > now && !signed_out_here && matches!(self.sign_outs.get(claims.jti.0).await, Ok(None))
    }

    /// Records a sign-out made through this gateway: its session is refused here at once, and
    /// this gateway's sockets of that session are closed, whether or not the projector has
    /// caught up (other gateways learn it from the projection).
    pub fn signed_out_here(&self, claims: &Claims) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        {
            let mut signed_out = self.signed_out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            signed_out.retain(|_, exp| *exp > now);
            signed_out.insert(claims.jti.0, claims.exp);
        }
        let mut changed = Changed::new(*self.projected.borrow(), vec![], vec![]);
        changed.sessions.push(claims.jti.0);
        let _ = self.changes.send(Arc::new(changed));
    }

    /// The client's address as the throttles count it, from the peer and trusted proxies' headers.
    fn client_key(&self, peer: std::net::IpAddr, headers: &HeaderMap) -> String {
        client::throttle_key(client::address(peer, headers, &self.trusted_proxies))
    }
}

/// The HTTP surface.
pub fn app(state: AppState) -> Router {
    let origins: Vec<axum::http::HeaderValue> =
        state.config.allowed_origins.iter().filter_map(|o| o.trim().parse().ok()).collect();
    // Browsers on the allowed origins may call with the cookie; no other origin gets CORS.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_credentials(true)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/graphql", post(graphql).get(graphql_get))
        .route("/webhooks/payments", post(webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(if state.config.metrics_addr.is_none() { metrics_routes() } else { Router::new() })
        .merge(web::routes(state.config.web_dir.clone()))
        .layer(axum::middleware::map_response(typed_too_large))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(cors)
        .with_state(state)
}

/// `/metrics`, on `HTTP_ADDR` or on a listener of its own (`METRICS_ADDR`).
fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics::render))
}

/// The body limit's bare 413 becomes a typed error like every other refusal.
async fn typed_too_large(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE
        || response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return response;
    }
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BadInput { message: format!("request body too large (at most {MAX_BODY} bytes)"), field: None },
    )
}

/// A request refused as a whole (no argument at fault).
fn bad_request(message: &str) -> ApiError {
    ApiError::BadInput { message: message.to_owned(), field: None }
}

/// A refusal made before GraphQL runs, in the same shape as every other error.
fn json_error(status: StatusCode, error: ApiError) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], error.to_json().to_string()).into_response()
}

async fn graphql(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.metrics.graphql_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, bad_request("requests must be application/json"));
    }
    let has_cookie = headers.get(header::COOKIE).is_some();
    if has_cookie && !origin_allowed(&state.config, &headers) {
        return json_error(StatusCode::FORBIDDEN, ApiError::Forbidden("origin not allowed"));
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, bad_request("malformed GraphQL request")),
    };
    let viewer = state.viewer(&headers).await;
    let mut request = state.for_viewer(request, viewer);
    // The client's address throttles sign-ins and sign-ups (known when served with connect info).
    if let Some(axum::Extension(axum::extract::ConnectInfo(addr))) = peer {
        request = request.data(ClientAddr(state.client_key(addr.ip(), &headers)));
    }
    let started = std::time::Instant::now();
    // One operation, one trace: its id goes with every command it sends (`correlation_id`, and
    // `traceparent` in the NATS headers).
    let span = tracing::info_span!(
        "graphql",
        otel.kind = "server",
        operation = operation_label(request.operation_name.as_deref())
    );
    let response = {
        use tracing::Instrument;
        state.schema.execute(request).instrument(span).await
    };
    let outcome = if response.errors.is_empty() { "ok" } else { "errors" };
    ::metrics::histogram!("ticketing_graphql_seconds", "outcome" => outcome).record(started.elapsed().as_secs_f64());
    let body = match serde_json::to_string(&response) {
        Ok(body) => body,
        Err(error) => {
            // Nothing of the response is sent, its cookies included.
            tracing::error!(%error, "a GraphQL response could not be encoded");
            let headers = [(header::CONTENT_TYPE, "application/json")];
            return (StatusCode::INTERNAL_SERVER_ERROR, headers, INTERNAL_RESPONSE).into_response();
        }
    };
    let mut out = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    for (name, value) in response.http_headers.iter() {
        out.headers_mut().append(name, value.clone());
    }
    out
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, or the GraphiQL-style explorer page
/// when introspection is on.
async fn graphql_get(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _body) = request.into_parts();
    if parts.headers.contains_key(header::UPGRADE) {
        let Some(protocol) = socket::protocol(&parts.headers) else {
            return json_error(StatusCode::BAD_REQUEST, bad_request("unknown WebSocket subprotocol"));
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        return graphql_ws(state, protocol, upgrade, &parts.headers, peer).await;
    }
    if !state.config.graphql_introspection {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], EXPLORER).into_response()
}

/// A small, self-contained query explorer (nothing is loaded from elsewhere).
const EXPLORER: &str = include_str!("explorer.html");

/// GraphQL over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`): subscriptions,
/// and queries and mutations sent as `subscribe` messages, under the same session, client address
/// and limits as over HTTP ([`socket`]). The handshake is authenticated by the cookie, and refused
/// from a foreign origin that carries it, or when the client holds too many sockets already.
async fn graphql_ws(
    state: AppState,
    protocol: async_graphql::http::WebSocketProtocols,
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> Response {
    if headers.get(header::COOKIE).is_some() && !origin_allowed(&state.config, headers) {
        return json_error(StatusCode::FORBIDDEN, ApiError::Forbidden("origin not allowed"));
    }
    let client = peer.map(|peer| state.client_key(peer, headers));
    let Some(slot) = state.sockets.take(client.as_deref().unwrap_or("unknown"), state.config.ws_max_per_client) else {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ApiError::RateLimited("too many open WebSockets from this address"),
        );
    };
    let viewer = state.viewer(headers).await;
    let mut data = async_graphql::Data::default();
    data.insert(Viewer(viewer.clone()));
    data.insert(state.clone());
    data.insert(loaders::loaders(state.pool.clone(), state.metrics.clone()));
    if let Some(client) = client {
        data.insert(ClientAddr(client));
    }
    let executor = socket::SocketExecutor::new(state, viewer);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's default 128 KiB read buffer is allocated and zeroed per connection;
        // subscription traffic is small messages, and the buffer grows for a larger one.
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_BODY)
        .max_frame_size(MAX_BODY)
        .on_upgrade(move |stream| socket::serve(stream, protocol, data, executor, slot))
}

/// A request with the cookie must come from an allowed origin or from the gateway's own (the
/// web app it serves: the `Origin` names the `Host` it was sent to); without an `Origin` header
/// (same-origin navigation, non-browser clients) it is accepted.
fn origin_allowed(config: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let same_origin = headers.get(header::HOST).and_then(|v| v.to_str().ok()).is_some_and(|host| {
        origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).is_some_and(|o| o == host)
    });
    same_origin || config.allowed_origins.iter().any(|allowed| allowed.trim() == origin)
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    state.metrics.webhook_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Ok(body) = String::from_utf8(body.to_vec()) else { return StatusCode::BAD_REQUEST.into_response() };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request = Request::new(Command::PaymentWebhook { body, signature });
    match state.send(&request).await {
        Ok(Success { result: Outcome::Webhook { http_status }, .. }) => {
            StatusCode::from_u16(http_status).unwrap_or(StatusCode::OK).into_response()
        }
        // Anything else: 500, so the provider retries later.
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /readyz`: 200 only when NATS and PostgreSQL answer and the projections are ready (the
/// live read models exist and follow the stream: caught up, or moving within
/// `PROJECTION_STALL_SECONDS`; stale answers, and mutations waiting for a projection that does
/// not come, are worse than another replica's).
async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// What `/readyz` answers: ready, or what is not.
///
/// # Errors
/// What is not ready, as `database: …, nats: …, projections: …`.
pub async fn readiness(state: &AppState) -> Result<(), String> {
    let checkpoint = db::checkpoint(&state.pool).await.ok();
    let database = checkpoint.is_some();
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let projections = match checkpoint.and_then(|p| u64::try_from(p).ok()) {
        Some(position) if nats => {
            // One round trip (the stream's info comes with it). A stream that cannot be asked
            // right now (a leader election in a rolling restart) is no reason to turn every
            // gateway away: the verdict then rests on what was seen before.
            let js = async_nats::jetstream::new(state.nats.clone());
            // Bounded well within a probe's one-second default timeout.
            let asked =
                tokio::time::timeout(std::time::Duration::from_millis(500), js.get_stream(&state.config.stream_name));
            let head = asked.await.ok().and_then(Result::ok).map(|s| s.cached_info().state.last_sequence);
            let mut stall = state.projection_stall.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match head {
                Some(head) => !stall.stalled(head, position, std::time::Instant::now()),
                None => !stall.still_stalled(position, std::time::Instant::now()),
            }
        }
        _ => false,
    };
    if database && nats && projections {
        Ok(())
    } else {
        Err(format!("database: {database}, nats: {nats}, projections: {projections}"))
    }
}

/// Runs the gateway until Ctrl-C.
///
/// # Errors
/// When a server cannot be reached or the address cannot be bound.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with(db::connect_options(&config.database_url)?)
        .await?;
    let (options, servers) = event_store::connect_options(&config.nats_url, event_store::auth::Role::Gateway.user())?;
    let nats = options.retry_on_initial_connect().connect(servers).await?;
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let state = AppState::new(config, pool, nats).await;
    if let Some(metrics_listener) = metrics_listener {
        let metrics = metrics_routes().with_state(state.clone());
        tokio::spawn(async move { axum::serve(metrics_listener, metrics).await });
    }
    tracing::info!(addr = %listener.local_addr()?, "query-service ready");
    // With the peer address: sign-in throttling counts per client address.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(service_kit::shutdown_signal()).await?;
    Ok(())
}

/// A client's operation name as a span attribute: at most 64 characters (it is the client's
/// to choose, and it lands on every span and log line of the request).
fn operation_label(name: Option<&str>) -> &str {
    let name = name.unwrap_or_default();
    match name.char_indices().nth(64) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fallback_response_is_the_generic_internal_error() {
        let body: serde_json::Value = serde_json::from_str(super::INTERNAL_RESPONSE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR");
        assert_eq!(body["errors"][0]["message"], "internal error");
        assert!(body["data"].is_null());
    }
}
