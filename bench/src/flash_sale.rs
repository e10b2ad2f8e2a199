//! The flash-sale benchmark: the whole system over HTTP, with its baselines measured in the same
//! run on the same machine (the load generator included).
//!
//! - Baselines: raw JetStream appends (1 and 256 in flight), raw PostgreSQL batched inserts, an
//!   in-process axum handler answering a constant (the HTTP ceiling: every HTTP row is also given
//!   as a ratio to it, so no ratio rests on our own gateway's floor), and a no-op GraphQL query
//!   (`{ __typename }`, the trivial request with a session cookie) and mutation
//!   (`mutation { __typename }`) through the gateway, cookie and all.
//! - Scenarios: holds (`createOrder` on distinct tickets, 64 clients), the hot ticket (N
//!   simultaneous buyers for one ticket: exactly one winner, asserted), reads (`ticket(id)`,
//!   `tickets(first: 20)`), projection lag at a steady 1,000 events/s, one change delivered to
//!   up to 10,000 WebSocket subscribers of a ticket and of an event (`eventChanged` with every
//!   seat; each served by a fresh gateway in a process of its own, whose memory is measured),
//!   the hot event sold out (general admission and seats) beside diagnostic rows of its command
//!   without HTTP, and the web bundle's gzipped size.
//!
//! It starts its own system (NATS, PostgreSQL database, command service, projector, gateway on a
//! loopback port), or measures the HTTP scenarios against `--url`.
//!
//! Run: `cargo run --release -p bench --bin flash-sale [-- --quick] [-- --url http://host:port]`;
//! `--no-write` leaves `bench/results` alone (the test command's smoke run); `--sales` runs only the
//! baselines, the holds and the sales (for profiling them) and writes nothing; `--subscriptions`
//! runs only the subscriber rows (their memory) and writes nothing.
//! Writes the table to the terminal and `bench/results/flash-sale[-quick].{json,md}`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How much to do.
#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    /// How long each timed scenario runs.
    seconds: f64,
    /// Holds placed in the holds scenario.
    holds: usize,
    /// Buyers in the hot-ticket race.
    hot_buyers: usize,
    /// Messages / rows for the raw baselines.
    raw: usize,
    /// WebSocket subscribers of one ticket.
    subscribers: usize,
    /// General-admission tickets of the hot event, and the buyers (1-4 each) racing for them.
    event_tickets: usize,
    event_buyers: usize,
    /// Rows (of 200 seats, or 50 when quick) of the seated event, and the buyers of two adjacent
    /// seats each.
    seat_rows: usize,
    seat_buyers: usize,
    /// Requests of an event sale in flight at once (the rest wait their turn, as behind a queue).
    event_in_flight: usize,
}

const QUICK: Mode = Mode {
    name: "quick",
    seconds: 2.0,
    holds: 1000,
    hot_buyers: 200,
    raw: 5_000,
    subscribers: 500,
    event_tickets: 1_000,
    event_buyers: 2_000,
    seat_rows: 10,
    seat_buyers: 1_000,
    event_in_flight: 500,
};
const FULL: Mode = Mode {
    name: "full",
    seconds: 10.0,
    holds: 5_000,
    hot_buyers: 1000,
    raw: 50_000,
    subscribers: 10_000,
    event_tickets: 10_000,
    event_buyers: 20_000,
    seat_rows: 25,
    seat_buyers: 10_000,
    event_in_flight: 2_000,
};
/// The session-signing secret of the system this benchmark starts (both of its gateways).
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0";
/// Concurrent clients in the timed HTTP scenarios.
const CLIENTS: usize = 64;
/// Rows of 200 seats of the event the `eventChanged` subscribers watch: 5,000 seats, as the hot
/// seats sale's.
const WATCHED_ROWS: usize = 25;

/// One measured line.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    ops: usize,
    errors: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Row {
    fn from(name: &str, mut latencies: Vec<Duration>, errors: usize, wall: Duration) -> Self {
        latencies.sort_unstable();
        let pick = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let at = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[at].as_secs_f64() * 1000.0
        };
        Self {
            name: name.to_owned(),
            ops: latencies.len(),
            errors,
            per_second: latencies.len() as f64 / wall.as_secs_f64(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
        }
    }
}

/// A client with its own session cookie.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    cookie: Option<String>,
    /// The signed-up account.
    id: uuid::Uuid,
}

impl Client {
    async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut request = self.http.post(&self.url).json(&json!({"query": query, "variables": variables}));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("session={cookie}"));
        }
        let body: Value = request.send().await?.json().await?;
        if let Some(error) = body["errors"].get(0) {
            bail!("{}", error["extensions"]["code"].as_str().unwrap_or("ERROR"));
        }
        Ok(body["data"].clone())
    }

    async fn sign_up(http: &reqwest::Client, url: &str, email: &str) -> anyhow::Result<Self> {
        let response = http
            .post(url)
            .json(&json!({"query": "mutation($e: String!) { signUp(email: $e, password: \"bench-password\") { id } }", "variables": {"e": email}}))
            .send()
            .await?;
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("session=").map(str::to_owned))
            .next()
            .with_context(|| format!("signing up {email}: no cookie"))?;
        let body: Value = response.json().await?;
        let id = body["data"]["signUp"]["id"].as_str().context("signing up: no id")?.parse()?;
        Ok(Self { http: http.clone(), url: url.to_owned(), cookie: Some(cookie), id })
    }
}

/// Runs `work` from `clients` concurrent workers until `seconds` have passed.
async fn timed<F, Fut>(name: &str, clients: usize, seconds: f64, work: F) -> Row
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..clients {
        let (work, errors) = (work.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let at = Instant::now();
                match work(worker, n).await {
                    Ok(()) => latencies.push(at.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap_or_default());
    }
    Row::from(name, latencies, errors.load(Ordering::Relaxed), started.elapsed())
}

/// Runs `count` operations with `in_flight` at a time.
async fn counted<F, Fut>(name: &str, count: usize, in_flight: usize, work: F) -> Row
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    while next < count || !running.is_empty() {
        while next < count && running.len() < in_flight {
            let work = work(next);
            running.push(async move {
                let at = Instant::now();
                (work.await, at.elapsed())
            });
            next += 1;
        }
        if let Some((result, latency)) = running.next().await {
            match result {
                Ok(()) => latencies.push(latency),
                Err(_) => errors += 1,
            }
        }
    }
    Row::from(name, latencies, errors, started.elapsed())
}

/// The system under test, started in this process.
struct System {
    url: String,
    nats_url: String,
    database_url: String,
    nats: async_nats::Client,
    pool: sqlx::PgPool,
    /// The in-process gateway's state: commands sent from here skip HTTP and GraphQL.
    gateway: query_service::AppState,
    /// The command service, projector and gateway: stopped when the benchmark drops it.
    _running: ticketing::system::System,
    _server: testkit::NatsServer,
    _db: testkit::TestDb,
}

async fn start_system() -> anyhow::Result<System> {
    let server = testkit::NatsServer::start().await?;
    let db = testkit::postgres().await?;
    let client = testkit::connect(&server.url()).await?;
    let mut commands = command_service::config::Config::with_nats_url(&server.url());
    commands.max_active_holds = 1000;
    commands.order_hold_seconds = 3600;
    // Every simulated buyer comes from one loopback address, and one seller lists 1,001 tickets
    // 200 at a time: the per-client limits are not what this measures (0: off).
    commands.signup_per_minute_per_client = 0;
    commands.create_ticket_per_minute = 0;
    let config = query_service::config::Config {
        jwt_secret: JWT_SECRET.into(),
        database_url: db.url.clone(),
        nats_url: server.url(),
        cookie_secure: false,
        ws_max_per_client: 1_000_000,
        ..<query_service::config::Config as clap::Parser>::parse_from(["query-service"])
    };
    let settings = ticketing::system::Settings { commands, gateway: config, projector_batch_max: 1000 };
    let running =
        ticketing::system::System::start(settings, ticketing::system::Connections::shared(&client, &db.pool)).await?;
    let gateway = running.gateway.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    running.serve(listener);
    Ok(System {
        url: format!("http://{addr}/graphql"),
        nats_url: server.url(),
        database_url: db.url.clone(),
        nats: client,
        pool: db.pool.clone(),
        gateway,
        _running: running,
        _server: server,
        _db: db,
    })
}

/// Splits a hold's cost: `count` `CreateOrder` commands sent over NATS from the in-process
/// gateway's state without waiting for the projection, then `count` more with the read-your-writes
/// wait, both on fresh tickets, 64 in flight, spread over the buyers (the benchmark's hold limit
/// is 1,000 per buyer).
async fn hold_split(system: &System, seller: &Client, buyers: &[Client], count: usize) -> anyhow::Result<Vec<Row>> {
    use command_service::api::Request;
    let tickets: Vec<domain::TicketId> = futures::stream::iter(0..count * 2)
        .map(|n| {
            let seller = seller.clone();
            async move {
                let data = seller
                    .gql(
                        "mutation($t: String!) { createTicket(title: $t, priceCents: 2500) { id } }",
                        json!({"t": format!("Split seat {n}")}),
                    )
                    .await?;
                let id = data["createTicket"]["id"].as_str().context("no ticket id")?.parse()?;
                Ok::<_, anyhow::Error>(domain::TicketId(id))
            }
        })
        .buffer_unordered(CLIENTS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let request = |n: usize| {
        let buyer = domain::Actor::user(domain::AccountId(buyers[n % buyers.len()].id));
        Request::new(command_service::api::Command::CreateOrder { ticket_id: tickets[n] }).by(buyer)
    };
    let state = &system.gateway;
    let sent = counted("diagnostic: hold command over NATS, no projection wait (no HTTP)", count, CLIENTS, |n| {
        let request = request(n);
        async move { state.send(&request).await.map(|_| ()).map_err(|f| anyhow::anyhow!("{}", f.message)) }
    })
    .await;
    let waited = counted("diagnostic: hold command + read-your-writes wait (no HTTP)", count, CLIENTS, |n| {
        let request = request(count + n);
        async move { state.command(request).await.map(|_| ()).map_err(|f| anyhow::anyhow!("{}", f.message)) }
    })
    .await;
    Ok(vec![sent, waited])
}

/// A gateway in a process of its own (this binary, run with `--gateway`) on the same NATS and
/// database, so that its memory is its own and the subscribers' client ends are not counted.
struct Gateway {
    child: tokio::process::Child,
    url: String,
}

impl Gateway {
    async fn spawn(system: &System) -> anyhow::Result<Self> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("--gateway")
            .env("HTTP_ADDR", addr.to_string())
            .env("NATS_URL", &system.nats_url)
            .env("DATABASE_URL", &system.database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("COOKIE_SECURE", "false")
            .env("WS_MAX_PER_CLIENT", "1000000")
            .kill_on_drop(true)
            .spawn()
            .context("starting the gateway process")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("http://{addr}/healthz")).await.is_err() {
            if Instant::now() > deadline {
                bail!("the gateway process did not start listening on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, url: format!("http://{addr}/graphql") })
    }

    /// The gateway process's resident memory in MiB.
    fn resident_mib(&self) -> f64 {
        self.child.id().map_or(0.0, |pid| resident_mib_of(&format!("/proc/{pid}/status")))
    }
}

/// The name of the HTTP-ceiling row (see [`serve_noop`]).
const CEILING: &str = "axum no-op over HTTP (HTTP ceiling)";

/// An in-process axum server whose `POST /graphql` answers a constant GraphQL body: what HTTP
/// alone costs on this machine with this load generator. Returns its URL.
async fn serve_noop() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(|| async {
            ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"data":{"__typename":"Query"}}"#)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// `--gateway`: serve the gateway from the environment's configuration until killed.
async fn serve_gateway() -> anyhow::Result<()> {
    let config = <query_service::config::Config as clap::Parser>::parse_from(["query-service"]);
    query_service::run(config).await
}

/// Raw JetStream appends on a stream of their own (file storage, one replica, acked).
async fn raw_appends(nats: &async_nats::Client, count: usize, in_flight: usize) -> anyhow::Result<Row> {
    let js = async_nats::jetstream::new(nats.clone());
    let name = format!("BENCH_RAW_{in_flight}");
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("bench.raw.{in_flight}")],
        ..Default::default()
    })
    .await?;
    let subject = format!("bench.raw.{in_flight}");
    let payload = bytes::Bytes::from(vec![b'x'; 200]);
    Ok(counted(&format!("raw JetStream append ({in_flight} in flight)"), count, in_flight, |_| {
        let (js, subject, payload) = (js.clone(), subject.clone(), payload.clone());
        async move {
            js.publish(subject, payload).await?.await?;
            Ok(())
        }
    })
    .await)
}

/// Raw PostgreSQL batched inserts: 1000 rows per INSERT and transaction.
async fn raw_inserts(pool: &sqlx::PgPool, rows: usize) -> anyhow::Result<Row> {
    sqlx::query(
        "create table if not exists bench_raw (id uuid primary key, title text not null, price bigint not null)",
    )
    .execute(pool)
    .await?;
    let batches = rows.div_ceil(1000);
    let started = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..batches {
        let at = Instant::now();
        let ids: Vec<uuid::Uuid> = (0..1000).map(|_| uuid::Uuid::new_v4()).collect();
        let titles: Vec<String> = (0..1000).map(|i| format!("Seat {i}")).collect();
        let prices: Vec<i64> = (0..1000).map(|i| 1000 + i).collect();
        sqlx::query("insert into bench_raw select * from unnest($1::uuid[], $2::text[], $3::bigint[])")
            .bind(&ids)
            .bind(&titles)
            .bind(&prices)
            .execute(pool)
            .await?;
        latencies.extend(std::iter::repeat_n(at.elapsed() / 1000, 1000));
    }
    Ok(Row::from("raw PostgreSQL batched insert (rows)", latencies, 0, started.elapsed()))
}

/// Projection lag at a steady rate: listings appended straight to the stream at `rate` per second;
/// each lag runs from sending the append to receiving the projector's commit notification
/// (`pg_notify`) that covers its position.
async fn projection_lag(system: &System, seconds: f64, rate: u32) -> anyhow::Result<Row> {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    let store = event_store::EventStore::connect(system.nats.clone(), &event_store::StreamSettings::default()).await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&system.pool).await?;
    listener.listen("ticketing_changes").await?;
    let started = Instant::now();
    // Sequences acknowledged but not yet seen projected, with when they were sent.
    let waiting = Arc::new(Mutex::new(BTreeMap::<u64, Instant>::new()));
    let lags = Arc::new(Mutex::new(Vec::<Duration>::new()));
    // The latest projected position and when its notification arrived.
    let projected = Arc::new(AtomicU64::new(0));
    let projected_at = Arc::new(Mutex::new(Instant::now()));
    let follower = {
        let (waiting, lags, projected, projected_at) =
            (waiting.clone(), lags.clone(), projected.clone(), projected_at.clone());
        tokio::spawn(async move {
            while let Ok(notification) = listener.recv().await {
                let now = Instant::now();
                let position = serde_json::from_str::<Value>(notification.payload())
                    .ok()
                    .and_then(|v| v["position"].as_u64())
                    .unwrap_or(0);
                let (Ok(mut waiting), Ok(mut lags), Ok(mut at)) = (waiting.lock(), lags.lock(), projected_at.lock())
                else {
                    return;
                };
                *at = now;
                projected.fetch_max(position, Ordering::SeqCst);
                let done: Vec<u64> = waiting.range(..=position).map(|(seq, _)| *seq).collect();
                for seq in done {
                    if let Some(sent) = waiting.remove(&seq) {
                        lags.push(now - sent);
                    }
                }
            }
        })
    };
    let total = (seconds * f64::from(rate)) as usize;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut appends = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticks.tick().await;
        let (store, waiting, lags, projected, projected_at) =
            (store.clone(), waiting.clone(), lags.clone(), projected.clone(), projected_at.clone());
        appends.spawn(async move {
            let ticket = domain::TicketId(uuid::Uuid::new_v4());
            let event = domain::Event::TicketListed {
                ticket_id: ticket,
                seller: domain::AccountId(uuid::Uuid::nil()),
                title: domain::Title::parse("Steady seat")?,
                price_cents: domain::Price::from_cents(2500)?,
                currency: domain::Currency::Usd,
                at: time::OffsetDateTime::now_utc(),
            };
            let sent = Instant::now();
            let appended = store
                .append(event_store::Append {
                    subject: domain::subjects::listing_event(ticket, &event).unwrap_or_default(),
                    event: &event,
                    guard: event_store::Guard::boundary(domain::subjects::listing(ticket), 0),
                    msg_id: ticket.to_string(),
                })
                .await?;
            let (Ok(mut waiting), Ok(mut lags), Ok(at)) = (waiting.lock(), lags.lock(), projected_at.lock()) else {
                return Ok(());
            };
            if projected.load(Ordering::SeqCst) >= appended.sequence {
                // Projected before the acknowledgement came back.
                lags.push(at.saturating_duration_since(sent));
            } else {
                waiting.insert(appended.sequence, sent);
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(done) = appends.join_next().await {
        done??;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting.lock().map(|w| !w.is_empty()).unwrap_or(false) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    follower.abort();
    let unprojected = waiting.lock().map(|w| w.len()).unwrap_or(0);
    let lags = lags.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(Row::from(
        &format!("projection lag at {rate} events/s (append sent → commit notified)"),
        lags,
        unprojected,
        started.elapsed(),
    ))
}

/// What the subscribers watch: a ticket (`ticketChanged`, changed by its seller's `updateTicket`),
/// or an event (`eventChanged` with its availability, changed by a buyer's `createEventOrder`).
#[derive(Clone, Copy)]
enum Watched {
    Ticket,
    Event,
}

/// The subscriptions the gateway at `metrics` counts open (its `ticketing_subscriptions`).
async fn open_subscriptions(metrics: &str) -> anyhow::Result<usize> {
    let text = reqwest::get(metrics).await?.error_for_status()?.text().await?;
    text.lines()
        .find_map(|line| line.strip_prefix("ticketing_subscriptions "))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .with_context(|| format!("{metrics} has no ticketing_subscriptions gauge"))
}

/// Waits until the gateway at `metrics` counts at least `count` open subscriptions.
async fn registered(metrics: &str, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = open_subscriptions(metrics).await?;
        if open >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {open} of {count} subscriptions registered after two minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` WebSocket subscribers of one ticket or event, connected to `socket_url`; one change is
/// made through `seller` (an event's order by `buyer`) and every subscriber's delivery time is
/// measured. `memory` reads the serving gateway's resident MiB, sampled before the subscribers
/// connect and once they all have; the second value returned is (before, connected), or `None`
/// when the gateway is not ours to measure.
async fn subscribers(
    socket_url: &str,
    (seller, buyer): (&Client, &Client),
    watched: Watched,
    count: usize,
    memory: Option<&dyn Fn() -> f64>,
) -> anyhow::Result<(Row, Option<(f64, f64)>)> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    let (query, change, what) = match watched {
        Watched::Ticket => {
            let listed = seller
                .gql("mutation { createTicket(title: \"Watched seat\", priceCents: 5000) { id } }", json!({}))
                .await?;
            let ticket = listed["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
            let query = json!({"query": "subscription($t: ID!) { ticketChanged(id: $t) { id version } }",
                "variables": {"t": ticket}});
            let change = (
                "mutation($t: ID!) { updateTicket(id: $t, title: \"Everyone is watching\") { id } }",
                json!({"t": ticket}),
                seller,
            );
            (query, change, "subscriptions")
        }
        Watched::Event => {
            let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
                .format(&time::format_description::well_known::Rfc3339)?;
            let input = json!({"title": "Watched event", "venue": "Arena", "startsAt": starts_at,
                "ticketTypes": [{"name": "Standing", "priceCents": 5000, "capacity": 10000}],
                "sections": [{"name": "A", "priceCents": 9000, "rows": WATCHED_ROWS, "seatsPerRow": 200}]});
            let created = seller
                .gql(
                    "mutation($i: CreateEventInput!) { createEvent(input: $i) { id ticketTypes { id } } }",
                    json!({"i": input}),
                )
                .await?;
            let event = created["createEvent"]["id"].as_str().context("no event id")?.to_owned();
            let tier = created["createEvent"]["ticketTypes"][0]["id"].as_str().context("no tier")?.to_owned();
            // The event page's own subscription (every field it shows, every seat as its seat map).
            let query = json!({"query": include_str!("../../web/graphql/event_changed.graphql"),
                "operationName": "EventChanged", "variables": {"id": event}});
            let change = (
                "mutation($e: ID!, $t: ID!) { createEventOrder(eventId: $e, items: [{ticketTypeId: $t, quantity: 2}], seats: [\"A-1-1\"]) { id } }",
                json!({"e": event, "t": tier}),
                buyer,
            );
            (query, change, "event subscriptions (the event page's eventChanged, 5,000 seats)")
        }
    };
    let metrics = socket_url.replacen("/graphql", "/metrics", 1);
    let socket_url = socket_url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
    // Subscriptions of others (or of an earlier row on a shared gateway) are not ours.
    let already = open_subscriptions(&metrics).await?;
    let before = memory.map(|m| m());
    let sockets = futures::stream::iter(0..count)
        .map(|n| {
            let (socket_url, query) = (socket_url.clone(), query.clone());
            async move {
                let mut request = socket_url.as_str().into_client_request()?;
                request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
                // Small client buffers: the load generator's memory is not what is measured.
                let config = WebSocketConfig::default().read_buffer_size(4096);
                let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
                socket.send(Message::text(json!({"type": "connection_init"}).to_string())).await?;
                while let Some(message) = socket.next().await {
                    if message?.to_text().unwrap_or_default().contains("connection_ack") {
                        break;
                    }
                }
                let subscribe = json!({"id": n.to_string(), "type": "subscribe", "payload": query});
                socket.send(Message::text(subscribe.to_string())).await?;
                Ok::<_, anyhow::Error>(socket)
            }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every subscription registered before the change (the gateway counts those open), so a miss
    // is a push that never came, not a subscription that came after the change.
    registered(&metrics, already + count).await?;
    let connected = memory.map(|m| m());
    let started = Instant::now();
    let receivers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    // A push with the data asked for (a push of errors only is not a delivery).
                    let text = message.to_text().unwrap_or_default();
                    if text.contains("\"next\"") && text.contains("\"version\"") {
                        return Some(Instant::now());
                    }
                }
                None
            })
        })
        .collect();
    let (mutation, variables, by) = change;
    by.gql(mutation, variables).await?;
    let mut latencies = Vec::new();
    let mut missed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for mut receiver in receivers {
        // One deadline for all: a subscriber that never gets the push waits no longer than that,
        // and its socket is closed (so it is not counted by a later row).
        match tokio::time::timeout_at(deadline, &mut receiver).await {
            Ok(Ok(Some(at))) => latencies.push(at.saturating_duration_since(started)),
            _ => {
                receiver.abort();
                missed += 1;
            }
        }
    }
    Ok((
        Row::from(
            &format!("{what}: one change to {count} WebSocket subscribers"),
            latencies,
            missed,
            started.elapsed(),
        ),
        before.zip(connected),
    ))
}

/// A process's resident memory in MiB, from its `/proc/<pid>/status`.
fn resident_mib_of(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .init();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--gateway") {
        return serve_gateway().await;
    }
    let mode = if args.iter().any(|a| a == "--quick") { QUICK } else { FULL };
    let given_url = args.iter().skip_while(|a| *a != "--url").nth(1).cloned();
    // The sales alone (with the baselines they are compared with): for profiling them.
    let sales_only = args.iter().any(|a| a == "--sales");
    // The subscribers alone (their latency and the gateway's memory).
    let subscriptions_only = args.iter().any(|a| a == "--subscriptions");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS * 2).build()?;

    let system = match &given_url {
        Some(_) => None,
        None => Some(start_system().await?),
    };
    let url = match (&given_url, &system) {
        (Some(url), _) => format!("{}/graphql", url.trim_end_matches('/').trim_end_matches("/graphql")),
        (None, Some(system)) => system.url.clone(),
        (None, None) => unreachable!(),
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut rows = Vec::new();

    if subscriptions_only {
        let seller = Client::sign_up(&http, &url, &format!("seller-{run}@example.com")).await?;
        let buyer = Client::sign_up(&http, &url, &format!("buyer-{run}@example.com")).await?;
        rows.extend(watched(system.as_ref(), &url, (&seller, &buyer), mode).await?);
        return report(mode, &rows, system.is_some(), false);
    }

    // Baselines.
    if let Some(system) = &system {
        rows.push(raw_appends(&system.nats, mode.raw, 1).await?);
        rows.push(raw_appends(&system.nats, mode.raw, 256).await?);
        rows.push(raw_inserts(&system.pool, mode.raw).await?);
        rows.push(projection_lag(system, mode.seconds, 1000).await?);
    }
    eprintln!("flash-sale ({}): signing up {} buyers", mode.name, CLIENTS.max(mode.hot_buyers));
    let seller = Client::sign_up(&http, &url, &format!("seller-{run}@example.com")).await?;
    let buyers: Vec<Client> = futures::stream::iter(0..CLIENTS.max(mode.hot_buyers))
        .map(|n| {
            let (http, url, email) = (http.clone(), url.clone(), format!("buyer{n}-{run}@example.com"));
            async move { Client::sign_up(&http, &url, &email).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let buyers = Arc::new(buyers);

    let noop = |query: &'static str| {
        let buyers = buyers.clone();
        move |worker: usize, _| {
            let client = buyers[worker].clone();
            async move { client.gql(query, json!({})).await.map(|_| ()) }
        }
    };
    // The HTTP ceiling: an axum handler that answers the same request with a constant, through the
    // same client, cookie and all (no GraphQL, no session, no database).
    let ceiling = serve_noop().await?;
    let to_ceiling = {
        let buyers = buyers.clone();
        move |worker: usize, _| {
            let client = Client { url: ceiling.clone(), ..buyers[worker].clone() };
            async move { client.gql("{ __typename }", json!({})).await.map(|_| ()) }
        }
    };
    rows.push(timed(CEILING, CLIENTS, mode.seconds, to_ceiling).await);
    rows.push(timed("no-op query over HTTP (baseline)", CLIENTS, mode.seconds, noop("{ __typename }")).await);
    rows.push(
        timed("no-op mutation over HTTP (baseline)", CLIENTS, mode.seconds, noop("mutation { __typename }")).await,
    );

    // Holds on distinct tickets.
    eprintln!("flash-sale: listing {} tickets", mode.holds + 1);
    let listed = counted("setup: createTicket over HTTP", mode.holds + 1, CLIENTS, |n| {
        let seller = seller.clone();
        async move {
            seller
                .gql(
                    "mutation($t: String!) { createTicket(title: $t, priceCents: 2500) { id } }",
                    json!({"t": format!("Seat {n}")}),
                )
                .await
                .map(|_| ())
        }
    })
    .await;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = seller
                .gql("query($a: String) { myTickets(first: 100, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }", json!({"a": after}))
                .await?;
            ids.extend(
                data["myTickets"]["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["id"].as_str().map(str::to_owned)),
            );
            if !data["myTickets"]["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
                break;
            }
            after = data["myTickets"]["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        ids
    };
    if ids.len() < mode.holds + 1 {
        bail!("only {} of {} tickets were listed", ids.len(), mode.holds + 1);
    }
    rows.push(listed);
    let (hot, distinct) = (ids[0].clone(), Arc::new(ids[1..].to_vec()));
    rows.push(
        // Each buyer holds at most 5 tickets (the product's default limit), as in a real sale.
        counted(&format!("holds: createOrder on distinct tickets ({CLIENTS} clients)"), mode.holds, CLIENTS, |n| {
            let (client, ticket) = (buyers[n % buyers.len()].clone(), distinct[n].clone());
            async move {
                client
                    .gql("mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket}))
                    .await
                    .map(|_| ())
            }
        })
        .await,
    );

    // Diagnostic: where a hold's time goes. The same command sent from the gateway's own state,
    // once without waiting for the projection and once with the read-your-writes wait, both
    // without HTTP and GraphQL, on fresh tickets.
    if let Some(system) = &system {
        rows.extend(hold_split(system, &seller, &buyers, mode.holds / 2).await?);
    }

    // Diagnostic: what one aggregate load costs now that the stream has grown.
    if let Some(system) = system.as_ref().filter(|_| !sales_only) {
        let store =
            event_store::EventStore::connect(system.nats.clone(), &event_store::StreamSettings::default()).await?;
        let head = async_nats::jetstream::new(system.nats.clone())
            .get_stream("TICKETING")
            .await?
            .info()
            .await?
            .state
            .last_sequence;
        // Latency alone (1 in flight), then throughput (64 in flight).
        for (count, in_flight) in [(200, 1), (5000, CLIENTS)] {
            let (store, ids) = (store.clone(), distinct.clone());
            let name = format!("diagnostic: load one listing, stream of {head} events ({in_flight} in flight)");
            rows.push(
                counted(&name, count, in_flight, |n| {
                    let (store, id) = (store.clone(), ids[(n * 37) % ids.len()].clone());
                    async move {
                        let boundary = format!("ticketing.ticket.{id}.>");
                        store.load::<domain::Listing>(&boundary).await.map(|_| ()).map_err(Into::into)
                    }
                })
                .await,
            );
        }
    }

    // The hot ticket: everyone at once.
    let started = Instant::now();
    let race: Vec<(Result<Value, anyhow::Error>, Duration)> =
        futures::future::join_all(buyers[..mode.hot_buyers].iter().map(|client| {
            let (client, hot) = (client.clone(), hot.clone());
            async move {
                let at = Instant::now();
                let result =
                    client.gql("mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": hot})).await;
                (result, at.elapsed())
            }
        }))
        .await;
    let winners = race.iter().filter(|(r, _)| r.is_ok()).count();
    let conflicts = race.iter().filter(|(r, _)| r.as_ref().err().is_some_and(|e| e.to_string() == "CONFLICT")).count();
    if winners != 1 || winners + conflicts != mode.hot_buyers {
        bail!("hot ticket: {winners} winners and {conflicts} conflicts of {} buyers", mode.hot_buyers);
    }
    let hot_row = Row::from(
        &format!("hot ticket: {} buyers at once (1 winner, {conflicts} CONFLICT)", mode.hot_buyers),
        race.iter().map(|(_, latency)| *latency).collect(),
        0,
        started.elapsed(),
    );
    rows.push(hot_row);

    // The hot event: a general-admission tier and a seated event, sold out at once.
    if let Some(system) = &system {
        rows.extend(event_sales(system, &seller, mode).await?);
    }

    if sales_only {
        return report(mode, &rows, system.is_some(), false);
    }

    // Reads.
    let read = |query: &'static str| {
        let (buyers, distinct) = (buyers.clone(), distinct.clone());
        move |worker: usize, n: usize| {
            let (client, ticket) = (buyers[worker].clone(), distinct[(worker * 7919 + n) % distinct.len()].clone());
            async move { client.gql(query, json!({"t": ticket})).await.map(|_| ()) }
        }
    };
    rows.push(
        timed(
            "read: ticket(id)",
            CLIENTS,
            mode.seconds,
            read("query($t: ID!) { ticket(id: $t) { id title priceCents status seller { id } } }"),
        )
        .await,
    );
    rows.push(timed("read: tickets(first: 20)", CLIENTS, mode.seconds, read("query($t: ID!) { tickets(first: 20) { nodes { id title priceCents status seller { id } } } ticket(id: $t) { id } }")).await);

    rows.extend(watched(system.as_ref(), &url, (&seller, &buyers[0]), mode).await?);

    report(mode, &rows, system.is_some(), !args.iter().any(|a| a == "--no-write"))
}

/// One change pushed to `mode.subscribers` WebSocket subscribers of a ticket and of an event, each
/// kind served by a fresh gateway process of its own when the system is ours (so that each
/// measures its own memory).
async fn watched(
    system: Option<&System>,
    url: &str,
    (seller, buyer): (&Client, &Client),
    mode: Mode,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    for watched in [Watched::Ticket, Watched::Event] {
        let gateway = match system {
            Some(system) => Some(Gateway::spawn(system).await?),
            None => None,
        };
        let memory = gateway.as_ref().map(|g| move || g.resident_mib());
        let socket_url = gateway.as_ref().map_or(url.to_owned(), |g| g.url.clone());
        let (row, memory) = subscribers(
            &socket_url,
            (seller, buyer),
            watched,
            mode.subscribers,
            memory.as_ref().map(|m| m as &dyn Fn() -> f64),
        )
        .await?;
        rows.push(row);
        if let (Some((before, connected)), Some(last)) = (memory, rows.last_mut()) {
            eprintln!("flash-sale: gateway process {before:.0} MiB idle, {connected:.0} MiB with the subscribers");
            last.name = format!("{} (gateway process: {before:.0} MiB idle, {connected:.0} MiB connected)", last.name);
        }
    }
    Ok(rows)
}

/// Buyers registered straight in the stream and signed in with the gateway's own secret: tens of
/// thousands of argon2 sign-ups would take minutes and are not what the sales measure.
async fn minted_buyers(system: &System, count: usize) -> anyhow::Result<Vec<Client>> {
    let store = event_store::EventStore::connect(system.nats.clone(), &event_store::StreamSettings::default()).await?;
    let sessions = query_service::session::Sessions::new(JWT_SECRET, 86_400, false);
    let http = reqwest::Client::builder().pool_max_idle_per_host(FULL.event_in_flight).build()?;
    futures::stream::iter(0..count)
        .map(|_| {
            let (store, sessions, http, url) = (store.clone(), &sessions, http.clone(), system.url.clone());
            async move {
                let id = domain::AccountId(uuid::Uuid::new_v4());
                let email = format!("fan-{}@example.com", id.0.simple());
                let event = domain::Event::AccountRegistered {
                    account_id: id,
                    email: domain::Email::parse(&email)?,
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bWludGVk$bWludGVkLWZvci1iZW5jaA".into(),
                    at: time::OffsetDateTime::now_utc(),
                };
                let subject = domain::subjects::account(id);
                let append = event_store::Append {
                    subject,
                    event: &event,
                    guard: event_store::Guard::subject(0),
                    msg_id: id.to_string(),
                };
                store.append(append).await?;
                let (token, _) = sessions.issue(
                    id,
                    domain::SessionId(uuid::Uuid::new_v4()),
                    &email,
                    vec![command_service::api::Role::User],
                )?;
                Ok::<_, anyhow::Error>(Client { http, url, cookie: Some(token), id: id.0 })
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// One sale: every buyer's request at once (at most `in_flight` of them on the wire), each
/// answered an order or `CONFLICT`. Returns the row (placed orders per second until the last one
/// was placed; latencies of every request) and how many tickets the placed orders hold.
async fn sale(
    name: &str,
    buyers: &[Client],
    in_flight: usize,
    request: impl Fn(usize) -> Value,
    tickets_of: impl Fn(usize) -> usize,
) -> anyhow::Result<(Row, usize, usize)> {
    const ORDER: &str = "mutation($e: ID!, $items: [OrderItemInput!], $seats: [String!]) {
        createEventOrder(eventId: $e, items: $items, seats: $seats) { id } }";
    eprintln!("flash-sale: {name}: selling");
    let started = Instant::now();
    let answers: Vec<(usize, Result<Value, anyhow::Error>, Duration, Duration)> =
        futures::stream::iter(buyers.iter().enumerate())
            .map(|(n, client)| {
                let variables = request(n);
                async move {
                    let at = Instant::now();
                    let result = client.gql(ORDER, variables).await;
                    (n, result, at.elapsed(), started.elapsed())
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
    let placed: Vec<_> = answers.iter().filter(|(_, r, _, _)| r.is_ok()).collect();
    let refused =
        answers.iter().filter(|(_, r, _, _)| r.as_ref().err().is_some_and(|e| e.to_string() == "CONFLICT")).count();
    let failed = answers.len() - placed.len() - refused;
    if failed > 0 {
        let first = answers.iter().find_map(|(_, r, _, _)| r.as_ref().err().filter(|e| e.to_string() != "CONFLICT"));
        bail!("{name}: {failed} requests failed (first: {first:?})");
    }
    let sold_out = placed.iter().map(|(_, _, _, done)| *done).max().unwrap_or_default();
    let tickets: usize = placed.iter().map(|(n, _, _, _)| tickets_of(*n)).sum();
    let mut row = Row::from(name, answers.iter().map(|(_, _, latency, _)| *latency).collect(), failed, sold_out);
    // The rate of the sale: orders placed per second until it sold out.
    row.ops = placed.len();
    row.per_second = placed.len() as f64 / sold_out.as_secs_f64().max(1e-9);
    Ok((row, tickets, refused))
}

/// The hot event, twice: `event_buyers` buyers asking 1-4 general-admission tickets each for an
/// `event_tickets` tier, and `seat_buyers` buyers each wanting two adjacent seats (four buyers for
/// every pair). Checked against the read model: nothing oversold, no seat in two orders.
async fn event_sales(system: &System, organizer: &Client, mode: Mode) -> anyhow::Result<Vec<Row>> {
    const CREATE: &str = "mutation($input: CreateEventInput!) { createEvent(input: $input) { id ticketTypes { id } } }";
    let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)?;
    let per_row = if mode.name == "quick" { 50 } else { 200 };
    eprintln!("flash-sale: minting {} buyers for the event sales", mode.event_buyers + mode.seat_buyers);
    let fans = minted_buyers(system, mode.event_buyers + mode.seat_buyers).await?;
    let (general_fans, seat_fans) = fans.split_at(mode.event_buyers);
    let mut rows = Vec::new();

    // Where an event order's time goes: the same command sent from the gateway's own state over
    // NATS (no HTTP, no GraphQL, no session), without and with the read-your-writes wait, one
    // ticket each on a tier large enough for all, from buyers of their own.
    {
        use command_service::api::{Command, OrderItemInput, Request};
        let count = mode.event_buyers / 4;
        let input = json!({"title": "Diagnostic event", "venue": "Arena", "startsAt": starts_at,
            "ticketTypes": [{"name": "Standing", "priceCents": 5000, "capacity": count * 2}]});
        let created = organizer.gql(CREATE, json!({"input": input})).await?;
        let event: domain::ShowId =
            domain::ShowId(created["createEvent"]["id"].as_str().context("no event id")?.parse()?);
        let tier = domain::TicketTypeId::of(event, 0);
        let diagnostic_fans = minted_buyers(system, count * 2).await?;
        let request = |n: usize| {
            let buyer = domain::Actor::user(domain::AccountId(diagnostic_fans[n].id));
            let items = vec![OrderItemInput { ticket_type_id: tier, quantity: 1 }];
            Request::new(Command::CreateEventOrder { event_id: event, items, seats: vec![] }).by(buyer)
        };
        let state = &system.gateway;
        eprintln!("flash-sale: event order diagnostic: sending");
        // As many in flight as the ticket holds' diagnostic rows, so the latencies compare.
        let in_flight = CLIENTS;
        rows.push(
            counted("diagnostic: event order command over NATS, no projection wait (no HTTP)", count, in_flight, |n| {
                let request = request(n);
                async move { state.send(&request).await.map(|_| ()).map_err(|f| anyhow::anyhow!("{}", f.message)) }
            })
            .await,
        );
        rows.push(
            counted("diagnostic: event order command + read-your-writes wait (no HTTP)", count, in_flight, |n| {
                let request = request(count + n);
                async move { state.command(request).await.map(|_| ()).map_err(|f| anyhow::anyhow!("{}", f.message)) }
            })
            .await,
        );
    }

    let input = json!({"title": "Hot event", "venue": "Arena", "startsAt": starts_at,
        "ticketTypes": [{"name": "Standing", "priceCents": 5000, "capacity": mode.event_tickets}]});
    let created = organizer.gql(CREATE, json!({"input": input})).await?;
    let event = created["createEvent"]["id"].as_str().context("no event id")?.to_owned();
    let tier = created["createEvent"]["ticketTypes"][0]["id"].as_str().context("no ticket type")?.to_owned();
    let quantity = |n: usize| n % 4 + 1;
    let name = format!(
        "hot event: {} buyers (1-4 each) for {} tickets, {} in flight",
        mode.event_buyers, mode.event_tickets, mode.event_in_flight
    );
    let (mut row, tickets, refused) = sale(
        &name,
        general_fans,
        mode.event_in_flight,
        |n| json!({"e": event, "items": [{"ticketTypeId": tier, "quantity": quantity(n)}]}),
        quantity,
    )
    .await?;
    let (capacity, held, sold): (i32, i32, i32) =
        sqlx::query_as("SELECT capacity, held, sold FROM read.ticket_types WHERE event_id = $1::uuid")
            .bind(&event)
            .fetch_one(&system.pool)
            .await?;
    let oversold = (held + sold - capacity).max(0);
    if oversold > 0 || usize::try_from(held).unwrap_or(0) != tickets {
        bail!("hot event: {held} held and {sold} sold of {capacity}; the answers placed {tickets}");
    }
    row.name = format!("{name}: {tickets} held in {} orders, {refused} CONFLICT, oversold {oversold}", row.ops);
    rows.push(row);

    let input = json!({"title": "Hot seats", "venue": "Theatre", "startsAt": starts_at,
        "sections": [{"name": "Stalls", "priceCents": 9000, "rows": mode.seat_rows, "seatsPerRow": per_row}]});
    let created = organizer.gql(CREATE, json!({"input": input})).await?;
    let event = created["createEvent"]["id"].as_str().context("no event id")?.to_owned();
    let pairs = mode.seat_rows * per_row / 2;
    let pair = |n: usize| {
        let p = n % pairs;
        let (row, first) = (p / (per_row / 2) + 1, (p % (per_row / 2)) * 2 + 1);
        [format!("Stalls-{row}-{first}"), format!("Stalls-{row}-{}", first + 1)]
    };
    let name = format!(
        "hot seats: {} buyers of two adjacent seats for {} seats, {} in flight",
        mode.seat_buyers,
        mode.seat_rows * per_row,
        mode.event_in_flight
    );
    let (mut row, seats, refused) =
        sale(&name, seat_fans, mode.event_in_flight, |n| json!({"e": event, "seats": pair(n)}), |_| 2).await?;
    let reserved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read.seats WHERE event_id = $1::uuid AND status = 'RESERVED'")
            .bind(&event)
            .fetch_one(&system.pool)
            .await?;
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT i.section_idx, i.row, i.number FROM read.order_items i
           JOIN read.orders o ON o.id = i.order_id
          WHERE o.event_id = $1::uuid AND o.status <> 'CANCELLED' AND i.row IS NOT NULL
          GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
    )
    .bind(&event)
    .fetch_one(&system.pool)
    .await?;
    if doubled > 0 || usize::try_from(reserved).unwrap_or(0) != seats {
        bail!("hot seats: {reserved} seats reserved, {doubled} in two orders; the answers placed {seats}");
    }
    row.name = format!("{name}: {seats} held in {} orders, {refused} CONFLICT, seats in two orders {doubled}", row.ops);
    rows.push(row);
    Ok(rows)
}

fn report(mode: Mode, rows: &[Row], own_system: bool, write: bool) -> anyhow::Result<()> {
    let find = |prefix: &str| rows.iter().find(|r| r.name.starts_with(prefix));
    let ratio = |row: &Row| -> String {
        let baseline = if row.name.starts_with("hot event") || row.name.starts_with("hot seats") {
            // The target: an event's holds against holds on distinct single tickets.
            find("holds: createOrder on distinct tickets")
        } else if row.name.starts_with("holds") || row.name.starts_with("setup") {
            find("no-op mutation")
        } else if row.name.starts_with("read") || row.name.starts_with("no-op query") {
            find("no-op query")
        } else if row.name.starts_with("no-op mutation") {
            find("no-op mutation")
        } else if row.name.starts_with("raw JetStream") {
            find("raw JetStream append (1 ")
        } else {
            None
        };
        baseline.map_or_else(|| "–".into(), |b| format!("{:.2}×", row.per_second / b.per_second))
    };
    // Every request over HTTP, against the axum no-op measured in the same run.
    let over_http = |row: &Row| -> String {
        let http = ["no-op", "setup", "holds", "hot ticket", "hot event", "hot seats", "read"]
            .iter()
            .any(|p| row.name.starts_with(p));
        match find(CEILING) {
            Some(ceiling) if http => format!("{:.2}×", row.per_second / ceiling.per_second),
            _ => "–".into(),
        }
    };
    let mut markdown = String::from(
        "| measure | ops | errors | per second | p50 ms | p99 ms | vs baseline | vs axum no-op |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        markdown.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            row.name,
            row.ops,
            row.errors,
            row.per_second,
            row.p50_ms,
            row.p99_ms,
            ratio(row),
            over_http(row)
        ));
    }
    let bundle = std::fs::read_to_string(testkit::workspace_root().join("web/dist/size.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    if let Some(bundle) = &bundle {
        markdown.push_str(&format!(
            "\nWeb bundle: {} bytes gzipped ({} raw).\n",
            bundle["total_gzip_bytes"], bundle["total_bytes"]
        ));
    }
    let machine = machine();
    eprintln!("\n{machine}\n\n{markdown}");
    let json = json!({
        "mode": mode.name,
        "machine": machine,
        "own_system": own_system,
        "rows": rows.iter().map(|r| json!({
            "measure": r.name, "ops": r.ops, "errors": r.errors, "per_second": r.per_second,
            "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "vs_baseline": ratio(r), "vs_axum_noop": over_http(r),
        })).collect::<Vec<_>>(),
        "web_bundle": bundle,
    });
    if !write {
        return Ok(());
    }
    let dir = testkit::workspace_root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let stem = if mode.name == "quick" { "flash-sale-quick" } else { "flash-sale" };
    std::fs::write(dir.join(format!("{stem}.json")), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(dir.join(format!("{stem}.md")), format!("{machine}\n\n{markdown}"))?;
    Ok(())
}

/// Cores, memory and versions, for the record.
fn machine() -> String {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(|| "? GiB".into(), |kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{} cores ({cpu}), {memory}, load generator in the same process; nats-server 2.15.1 (one node, file storage), PostgreSQL 15",
        std::thread::available_parallelism().map_or(0, usize::from)
    )
}
