//! The real system for gateway tests: NATS, command-service, projector, PostgreSQL, and the
//! gateway's router (served on a loopback port when a test needs a socket).

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Stack {
    /// The gateway.
    pub app: axum::Router,
    /// The event store the command service writes to (for tests that store events by hand).
    pub store: event_store::EventStore,
    /// The gateway's shared state (for tests that drive the schema directly).
    pub state: query_service::AppState,
    system: ticketing::system::System,
    _nats: testkit::TestNats,
    _db: testkit::TestDb,
}

impl Stack {
    /// Stops the projector (as if it were far behind): nothing more reaches the read models.
    pub fn stop_projector(&self) {
        self.system.tasks.projector.abort();
    }
}

pub const SECRET: &str = "test-secret-test-secret-test-secret-42";

pub async fn stack() -> Stack {
    stack_with(900, |_| {}).await
}

pub async fn stack_with(hold_seconds: u64, tweak: impl FnOnce(&mut query_service::config::Config)) -> Stack {
    stack_full(hold_seconds, |_| {}, tweak).await
}

/// The system with both the command service's and the gateway's settings adjusted.
pub async fn stack_full(
    hold_seconds: u64,
    tweak_commands: impl FnOnce(&mut command_service::config::Config),
    tweak: impl FnOnce(&mut query_service::config::Config),
) -> Stack {
    let nats = testkit::nats().await.unwrap_or_else(|e| panic!("{e:#}"));
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut commands = command_service::config::Config::with_nats_url(&nats.url);
    commands.stream_name = nats.stream.clone();
    commands.subject_root = nats.root.clone();
    commands.order_hold_seconds = hold_seconds;
    tweak_commands(&mut commands);
    let client = testkit::connect(&nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut config = query_service::config::Config {
        jwt_secret: SECRET.into(),
        database_url: db.url.clone(),
        nats_url: nats.url.clone(),
        subject_root: nats.root.clone(),
        stream_name: nats.stream.clone(),
        cookie_secure: false,
        allowed_origins: vec!["https://tickets.example".into()],
        admin_emails: vec!["boss@example.com".into()],
        ..<query_service::config::Config as clap::Parser>::parse_from(["query-service"])
    };
    tweak(&mut config);
    let settings = ticketing::system::Settings { commands, gateway: config, projector_batch_max: 500 };
    let connections = ticketing::system::Connections::shared(&client, &db.pool);
    let system = ticketing::system::System::start(settings, connections).await.unwrap_or_else(|e| panic!("{e}"));
    Stack {
        app: system.app(),
        store: system.service.store().clone(),
        state: system.gateway.clone(),
        system,
        _nats: nats,
        _db: db,
    }
}

/// Serves the gateway on a loopback port (with the peer address, as in production).
pub async fn serve(stack: &Stack) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    serve_on(listener, stack)
}

/// Serves the gateway on `listener` (bound before the system, when it must know its address).
pub fn serve_on(listener: tokio::net::TcpListener, stack: &Stack) -> std::net::SocketAddr {
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let service = stack.app.clone().into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    addr
}

/// A browser-like client: keeps the session cookie.
#[derive(Default, Clone)]
pub struct Client {
    /// The session cookie the last answer set.
    pub cookie: Option<String>,
}

impl Client {
    /// Posts a query with variables; asserts HTTP 200 and answers the body.
    pub async fn gql(&mut self, stack: &Stack, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(stack, json!({"query": query, "variables": variables}).to_string(), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Posts a raw body; answers the status and the body as JSON.
    pub async fn post(&mut self, stack: &Stack, body: String, origin: Option<&str>) -> (StatusCode, Value) {
        let mut request = HttpRequest::post("/graphql").header(header::CONTENT_TYPE, "application/json");
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, format!("session={cookie}"));
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let response = stack
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap_or_default())
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap_or_default();
            let token = value.split(';').next().and_then(|kv| kv.strip_prefix("session=")).unwrap_or_default();
            self.cookie = (!token.is_empty()).then(|| token.to_owned());
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// The first error's `extensions.code`.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}
