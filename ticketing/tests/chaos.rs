//! Chaos: a mixed workload (sign-ups, listings, holds on contended tickets, events with a small
//! capacity and a few seats raced for by multi-item holds, cancels, card, declined and
//! asynchronous payments, expiries) runs against a 3-node NATS cluster, two command
//! services, a projector, two gateways and a PostgreSQL server of the test's own, while processes
//! are killed with SIGKILL and restarted, one NATS node at a time is killed and restarted, and
//! PostgreSQL is stopped as a crash would stop it and started again.
//!
//! The workload retries like real clients: the same request again with its idempotency key (it
//! must answer the same order), the same key on another ticket (it must be refused), and payments
//! whose answer is lost after charging (`tok_timeout`), settled by reconciliation.
//!
//! Afterwards, from the event stream (the source of truth), the provider's ledger (outside every
//! killed process) and the read models:
//! - no ticket was ever held by two open orders at once, held while sold, or sold twice, and each
//!   ticket's status agrees with its orders;
//! - after every event of an event (counted from its orders, not from its own counters), no
//!   ticket type had more tickets in open or paid orders than its capacity and no seat was in two
//!   such orders; its counters and seat statuses agree with its orders;
//! - every acknowledged mutation's events are in the stream;
//! - the read models equal a fresh rebuild from the stream, table by table;
//! - every charge in the provider's ledger completed its order or was refunded, pending ones
//!   included (reconciliation settles them before the end); no order was charged twice;
//! - every hold expired within 2 s of `max(expiresAt, the time the system was back)`, where "back"
//!   ends a fault that could delay it: a NATS node failing over (until JetStream serves the
//!   streams and the expiry consumer again, plus 5 s for the services to reconnect, re-pull and
//!   work off what fell due meanwhile) or a command-service killed (its firings go to the other
//!   replica after 1 s).
//!
//! It prints the operations, the faults injected and the violations (which must be 0). The
//! workload runs `CHAOS_SECONDS` (default 36, enough for every fault kind and each NATS node once;
//! the test command's short form); set it higher for a
//! longer run, e.g. `CHAOS_SECONDS=600 cargo nextest run -p ticketing --test chaos`.
//! `CHAOS_SEED` replays a run's choices.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Process, User, free_port, wait_ready};
use domain::{Aggregate, Event, Listing, OrderStatus, PaymentStatus, Show};
use serde_json::{Value, json};
use testkit::Rng;
use time::OffsetDateTime;
use uuid::Uuid;

/// Holds lapse after this long, so expiries happen throughout the run.
const HOLD_SECONDS: u64 = 3;
/// How late an expiry may be once the system is back.
const EXPIRY_SLACK: Duration = Duration::from_secs(2);
/// After JetStream answers the test's probe again, the services' own connections, pulls and
/// firings still need to recover: a client reconnects, a pull lost in the failover is replaced
/// within its 2 s expiry, a firing in hand comes back after the 1 s ack wait, and the backlog of
/// firings due during the outage is worked off (measured on 2 loaded cores: up to ~4.5 s).
const REDELIVERY: Duration = Duration::from_secs(5);
/// How long a pending payment waits before reconciliation asks the provider.
const RECONCILE_AFTER_SECONDS: u64 = 2;
const WORKERS: usize = 6;
const WEBHOOK_SECRET: &str = "whsec_chaos_secret";

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse battery\") { id } }";
const CREATE: &str = "mutation($t: String!) { createTicket(title: $t, priceCents: 2500) { id } }";
const HOLD: &str = "mutation($t: ID!, $k: String!) { createOrder(ticketId: $t, idempotencyKey: $k) { id } }";
const CANCEL: &str = "mutation($o: ID!) { cancelOrder(id: $o) { status } }";
const CREATE_EVENT: &str = "mutation($t: String!, $s: String!) { createEvent(input: {title: $t, venue: \"Chaos Hall\", startsAt: $s, ticketTypes: [{name: \"Floor\", priceCents: 3000, capacity: 8}], sections: [{name: \"A\", priceCents: 4500, rows: 2, seatsPerRow: 4}]}) { id ticketTypes { id } } }";
const HOLD_EVENT: &str = "mutation($e: ID!, $i: [OrderItemInput!], $s: [String!], $k: String!) { createEventOrder(eventId: $e, items: $i, seats: $s, idempotencyKey: $k) { id } }";
const PAY: &str =
    "mutation($o: ID!, $c: String!, $k: String!) { payOrder(orderId: $o, token: $c, idempotencyKey: $k) { status } }";

/// What the system acknowledged, and how often each operation was tried.
#[derive(Default)]
struct Ledger {
    accounts: Vec<Uuid>,
    tickets: Vec<Uuid>,
    /// (ticket or event, order): orders on events are kept apart (`on_events`).
    holds: Vec<(Uuid, Uuid)>,
    cancelled: Vec<(Uuid, Uuid)>,
    paid: Vec<(Uuid, Uuid)>,
    /// Events put on sale.
    events: Vec<Uuid>,
    /// The orders of `holds`, `cancelled` and `paid` that are on events.
    on_events: std::collections::HashSet<Uuid>,
    /// (event, order) of event holds refused with `CONFLICT`: all or nothing, so none of their
    /// orders may be in the stream (the order id follows from the buyer, event and key).
    refused_on_events: Vec<(Uuid, Uuid)>,
    /// Operation → (acknowledged, refused with a code, unanswered).
    tried: BTreeMap<&'static str, (usize, usize, usize)>,
    /// What the clients saw that must never happen.
    violations: Vec<String>,
    /// Payments answered pending because the provider's answer was lost (`tok_timeout`).
    lost_answers: usize,
}

impl Ledger {
    fn count(&mut self, operation: &'static str, answer: &Result<Value, String>) {
        let entry = self.tried.entry(operation).or_default();
        match answer {
            Ok(_) => entry.0 += 1,
            Err(e) if e.starts_with("no gateway") => entry.2 += 1,
            Err(_) => entry.1 += 1,
        }
    }
}

fn id(data: &Value, field: &str) -> Option<Uuid> {
    data[field]["id"].as_str()?.parse().ok()
}

/// One simulated user session: signs up, then lists, holds, cancels and pays at random.
async fn worker(
    gateways: Vec<String>,
    seed: u64,
    until: Instant,
    ledger: Arc<Mutex<Ledger>>,
    pool: Arc<Mutex<Vec<Uuid>>>,
    shows: Arc<Mutex<Vec<(Uuid, String)>>>,
) {
    let mut rng = Rng::new(seed);
    let via: Vec<&str> = gateways.iter().map(String::as_str).collect();
    let mut user = User::new();
    let record = |operation, answer: &Result<Value, String>| {
        ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).count(operation, answer);
    };
    let mut signed_up = false;
    let mut me = Uuid::nil();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        if !signed_up || rng.below(20) == 0 {
            // A new account (now and then a fresh session as someone else).
            user = User::new();
            let answer = user.call(&via, SIGN_UP, json!({"e": format!("chaos-{seed}-{n}@example.com")})).await;
            record("signUp", &answer);
            if let Ok(data) = &answer
                && let Some(account) = id(data, "signUp")
            {
                ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).accounts.push(account);
                signed_up = true;
                me = account;
            } else {
                // Unknown who this session is now (a retried sign-up may have set a cookie whose
                // answer was lost): start again as someone new, so `me` is always the sender.
                signed_up = false;
            }
            continue;
        }
        let listed = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if listed.len() < 4 || rng.below(4) == 0 {
            let answer = user.call(&via, CREATE, json!({"t": format!("Chaos seat {seed}-{n}")})).await;
            record("createTicket", &answer);
            if let Ok(data) = &answer
                && let Some(ticket) = id(data, "createTicket")
            {
                ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tickets.push(ticket);
                pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(ticket);
            }
            continue;
        }
        let on_sale = shows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if on_sale.len() < 2 && rng.below(3) == 0 || rng.below(40) == 0 {
            // An event: 8 standing tickets and 2 rows of 4 seats, so that holds on it contend.
            let starts = OffsetDateTime::now_utc() + Duration::from_secs(86_400);
            let starts = starts.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            let answer =
                user.call(&via, CREATE_EVENT, json!({"t": format!("Chaos gig {seed}-{n}"), "s": starts})).await;
            record("createEvent", &answer);
            if let Ok(data) = &answer
                && let Some(show) = id(data, "createEvent")
                && let Some(floor) = data["createEvent"]["ticketTypes"][0]["id"].as_str()
            {
                ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).events.push(show);
                shows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((show, floor.to_owned()));
            }
            continue;
        }
        let key = format!("hold-{seed}-{n}");
        let (target, order, on_event) = if !on_sale.is_empty() && rng.below(3) == 0 {
            // An event order: 1–3 standing tickets, two adjacent seats, or both.
            let (show, floor) = on_sale[on_sale.len() - 1 - rng.below(on_sale.len().min(3))].clone();
            let (row, first) = (1 + rng.below(2), 1 + rng.below(3));
            let seats = json!([format!("A-{row}-{first}"), format!("A-{row}-{}", first + 1)]);
            let quantity = 1 + rng.below(3);
            let hold = match rng.below(3) {
                0 => json!({"e": show, "i": [{"ticketTypeId": floor, "quantity": quantity}], "k": key}),
                1 => json!({"e": show, "s": seats, "k": key}),
                _ => json!({"e": show, "i": [{"ticketTypeId": floor, "quantity": quantity}], "s": seats, "k": key}),
            };
            let answer = user.call(&via, HOLD_EVENT, hold.clone()).await;
            record("createEventOrder", &answer);
            if answer.as_ref().err().is_some_and(|code| code == "CONFLICT") {
                let order =
                    domain::OrderId::for_show_idempotency_key(domain::AccountId(me), domain::ShowId(show), &key);
                ledger
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .refused_on_events
                    .push((show, order.0));
            }
            let Some(order) = answer.as_ref().ok().and_then(|data| id(data, "createEventOrder")) else { continue };
            {
                let mut ledger = ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                ledger.holds.push((show, order));
                ledger.on_events.insert(order);
            }
            match rng.below(3) {
                // The same request again: the same order.
                0 => {
                    let again = user.call(&via, HOLD_EVENT, hold).await;
                    record("createEventOrder (retry)", &again);
                    if let Ok(data) = &again
                        && id(data, "createEventOrder") != Some(order)
                    {
                        let seen = id(data, "createEventOrder");
                        ledger
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .violations
                            .push(format!("a retry of event hold {order} with its key answered {seen:?}"));
                    }
                }
                // The same key for other seats: refused, nothing held.
                1 => {
                    let other = json!({"e": show, "s": [format!("A-{row}-4")], "k": key});
                    let reused = user.call(&via, HOLD_EVENT, other).await;
                    record("createEventOrder (key reused)", &reused);
                    if let Ok(data) = &reused {
                        ledger
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .violations
                            .push(format!("key {key} of event hold {order} was accepted for other seats: {data}"));
                    }
                }
                _ => {}
            }
            (show, order, true)
        } else {
            // Hold one of the most recent listings: workers contend for the same tickets.
            let recent = &listed[listed.len().saturating_sub(8)..];
            let ticket = recent[rng.below(recent.len())];
            let answer = user.call(&via, HOLD, json!({"t": ticket, "k": key})).await;
            record("createOrder", &answer);
            let Some(order) = answer.as_ref().ok().and_then(|data| id(data, "createOrder")) else { continue };
            ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).holds.push((ticket, order));
            (ticket, order, false)
        };
        let ticket = target;
        let recent = if on_event { &[][..] } else { &listed[listed.len().saturating_sub(8)..] };
        match if on_event { 3 } else { rng.below(4) } {
            // The same request again (a client that never saw the answer): the same order.
            0 => {
                let again = user.call(&via, HOLD, json!({"t": ticket, "k": key})).await;
                record("createOrder (retry)", &again);
                if let Ok(data) = &again
                    && id(data, "createOrder") != Some(order)
                {
                    let seen = id(data, "createOrder");
                    ledger
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .violations
                        .push(format!("a retry of hold {order} with its key answered {seen:?}"));
                }
            }
            // The same key on another ticket: refused, nothing held.
            1 if recent.len() > 1 => {
                let other = recent.iter().copied().find(|t| *t != ticket).unwrap_or(ticket);
                let reused = user.call(&via, HOLD, json!({"t": other, "k": key})).await;
                record("createOrder (key reused)", &reused);
                if let Ok(data) = &reused {
                    ledger
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .violations
                        .push(format!("key {key} of hold {order} was accepted for another ticket {other}: {data}"));
                }
            }
            _ => {}
        }
        match rng.below(9) {
            0 | 1 => {
                let answer = user.call(&via, CANCEL, json!({"o": order})).await;
                record("cancelOrder", &answer);
                if answer.is_ok() {
                    ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).cancelled.push((ticket, order));
                }
            }
            choice @ 2..=6 => {
                let token = match choice {
                    2 | 3 => "tok_visa",
                    4 => "tok_async",
                    5 => "tok_timeout",
                    _ => "tok_chargeDeclined",
                };
                let pay = json!({"o": order, "c": token, "k": format!("pay-{seed}-{n}")});
                let answer = user.call(&via, PAY, pay.clone()).await;
                record("payOrder", &answer);
                if token == "tok_timeout"
                    && let Ok(data) = &answer
                    && data["payOrder"]["status"] == "PENDING"
                {
                    ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).lost_answers += 1;
                }
                if rng.below(3) == 0 {
                    // Paying again with the same key: the first result, never a second charge.
                    let again = user.call(&via, PAY, pay).await;
                    record("payOrder (retry)", &again);
                }
                if let Ok(data) = &answer
                    && data["payOrder"]["status"] == "SUCCEEDED"
                {
                    ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).paid.push((ticket, order));
                }
            }
            // Left to expire.
            _ => {}
        }
    }
}

/// Waits until JetStream serves both streams and the expiry consumer again (after a NATS node
/// failed over): from then on the system is back for expiries.
async fn jetstream_back(js: &async_nats::jetstream::Context) -> OffsetDateTime {
    let started = Instant::now();
    loop {
        let probe = async {
            for name in ["TICKETING", "TICKETING_TIMERS"] {
                js.get_stream(name).await.ok()?.info().await.ok()?;
            }
            let mut consumer = js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    "command-service-expiry",
                    "TICKETING_TIMERS",
                )
                .await
                .ok()?;
            consumer.info().await.ok().map(|_| ())
        };
        if let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(1), probe).await {
            return OffsetDateTime::now_utc();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "JetStream did not come back within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What is wrong with an event after one more of its stored events: counted from its orders (not
/// from its own counters), no ticket type has more tickets in open or paid orders than its
/// capacity and no seat is in two such orders; and its counters and seat statuses agree.
fn show_violations(show: Uuid, state: &Show, position: u64) -> Vec<String> {
    let mut violations = Vec::new();
    let taken = state.orders.values().filter(|o| o.is_open() || o.status == OrderStatus::Complete);
    let mut per_type: HashMap<domain::TicketTypeId, (u32, u32)> = HashMap::new();
    let mut per_seat: HashMap<String, (usize, bool)> = HashMap::new();
    for order in taken {
        let paid = order.status == OrderStatus::Complete;
        for line in &order.placed.tickets {
            let counts = per_type.entry(line.ticket_type_id).or_default();
            if paid { counts.1 += line.quantity } else { counts.0 += line.quantity }
        }
        for line in &order.placed.seats {
            let seat = per_seat.entry(line.seat.to_string()).or_default();
            seat.0 += 1;
            seat.1 |= paid;
        }
    }
    for stock in &state.ticket_types {
        let (held, sold) = per_type.get(&stock.ticket_type.id).copied().unwrap_or_default();
        if held + sold > stock.ticket_type.capacity {
            violations.push(format!(
                "event {show}: {} tickets of {} in orders, capacity {} (position {position})",
                held + sold,
                stock.ticket_type.name,
                stock.ticket_type.capacity
            ));
        }
        if (stock.held, stock.sold) != (held, sold) {
            violations.push(format!(
                "event {show}: {} counts {}/{} held/sold while its orders hold {held} and paid {sold} (position {position})",
                stock.ticket_type.name, stock.held, stock.sold
            ));
        }
    }
    for (seat, (orders, _)) in &per_seat {
        if *orders > 1 {
            violations.push(format!("event {show}: seat {seat} is in {orders} orders (position {position})"));
        }
    }
    for stock in &state.sections {
        let free = stock.seats.iter().filter(|s| **s == domain::SeatStatus::Available).count();
        if usize::try_from(stock.available).ok() != Some(free) {
            violations.push(format!(
                "event {show}: section {} counts {} available of {free} free seats (position {position})",
                stock.section.name, stock.available
            ));
        }
        let per_row = u32::from(stock.section.seats_per_row);
        for (i, status) in stock.seats.iter().enumerate() {
            let (row, number) = (i as u32 / per_row + 1, i as u32 % per_row + 1);
            let id = format!("{}-{row}-{number}", stock.section.name);
            let expected = match per_seat.get(&id) {
                Some((_, true)) => domain::SeatStatus::Sold,
                Some(_) => domain::SeatStatus::Reserved,
                None => domain::SeatStatus::Available,
            };
            if *status != expected {
                violations.push(format!(
                    "event {show}: seat {id} is {status:?} while its orders say {expected:?} (position {position})"
                ));
            }
        }
    }
    violations
}

/// Every read model, table by table, as comparable text.
async fn dump(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    projector::schema::snapshot(pool).await.unwrap_or_else(|e| panic!("snapshot: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing_and_break_no_rule() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = std::env::var("CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(36);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_fields().0));
    eprintln!("chaos: {seconds} s of workload, seed {seed} (CHAOS_SEED={seed} replays the choices)");

    // Authentication and per-service permissions on, as deployed.
    let (mut cluster, urls) = common::secured_cluster(3).await;
    // PostgreSQL of our own, so that restarting it disturbs no other test. As root it runs as
    // the postgres user, which must be able to reach its data directory.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let (pg_data, pg_port) = (dir.path().join("postgres"), free_port());
    let mut postgres = Some(ticketing::postgres::start(&pg_data, pg_port).await.unwrap_or_else(|e| panic!("{e:#}")));
    let database_url = postgres.as_ref().map(|p| p.url.clone()).unwrap_or_default();
    let (a, b) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap_or_else(|e| panic!("{e}"));
    let nats_url = cluster.url();
    let env = |extra: &[(&str, String)]| {
        let mut env = vec![
            ("NATS_URL".to_owned(), nats_url.clone()),
            ("STREAM_REPLICAS".to_owned(), "3".to_owned()),
            ("DATABASE_URL".to_owned(), database_url.clone()),
            ("JWT_SECRET".to_owned(), "chaos-secret-chaos-secret-chaos-secret-01".to_owned()),
            ("COOKIE_SECURE".to_owned(), "false".to_owned()),
            ("WEB_DIR".to_owned(), web.display().to_string()),
            ("ORDER_HOLD_SECONDS".to_owned(), HOLD_SECONDS.to_string()),
            ("MAX_ACTIVE_HOLDS".to_owned(), "100".to_owned()),
            ("PAYMENT_WEBHOOK_SECRET".to_owned(), WEBHOOK_SECRET.to_owned()),
            // The pretend bank settles asynchronous payments through the second gateway.
            ("FAKE_BANK_WEBHOOK_URL".to_owned(), format!("http://{b}/webhooks/payments")),
            ("FAKE_BANK_SETTLE_MS".to_owned(), "1500".to_owned()),
            ("PAYMENT_RECONCILE_AFTER_SECONDS".to_owned(), RECONCILE_AFTER_SECONDS.to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let projector_health = format!("127.0.0.1:{}", free_port());
    let command_env = env(&[("NATS_URL", urls.commands.clone())]);
    let mut commands =
        [Process::start(&["command-service"], command_env.clone()), Process::start(&["command-service"], command_env)];
    let mut projector = Process::start(
        &["projector"],
        env(&[("HEALTH_ADDR", projector_health.clone()), ("NATS_URL", urls.projector.clone())]),
    );
    let mut gateways = [
        Process::start(&["query-service"], env(&[("HTTP_ADDR", a.clone()), ("NATS_URL", urls.gateway.clone())])),
        Process::start(&["query-service"], env(&[("HTTP_ADDR", b.clone()), ("NATS_URL", urls.gateway.clone())])),
    ];
    let http = reqwest::Client::builder().build().unwrap_or_else(|e| panic!("{e}"));
    for ready in [&a, &b, &projector_health] {
        wait_ready(&http, ready).await;
    }

    // The workload.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let pool = Arc::new(Mutex::new(Vec::new()));
    let shows = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (gateways, ledger, pool, shows) =
                (vec![a.clone(), b.clone()], ledger.clone(), pool.clone(), shows.clone());
            // Half the workers prefer the other gateway first.
            let gateways = if w % 2 == 0 { gateways } else { gateways.into_iter().rev().collect() };
            tokio::spawn(worker(gateways, seed.wrapping_add(w as u64 * 7919), until, ledger, pool, shows))
        })
        .collect();

    // The faults, in turn, while the workload runs.
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    // When a fault could delay an expiry (a NATS node failing over): (from, system back).
    let mut windows: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
    let mut nats_kills = 0;
    let probe = {
        let (options, servers) = event_store::connect_options(&nats_url, "harness").unwrap_or_else(|e| panic!("{e:#}"));
        let client = options.retry_on_initial_connect().connect(servers).await.unwrap_or_else(|e| panic!("{e}"));
        async_nats::jetstream::new(client)
    };
    let mut round = 0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // All eight slots always run, even when a slow machine makes them outlast the workload (the
    // checks below need every kind); more rounds while the workload lasts.
    while round < 8 || Instant::now() + Duration::from_secs(3) < until {
        // Eight slots: every kind of fault, and a NATS node three times (each node once).
        let fault = match [0, 3, 1, 2, 3, 4, 5, 3][round % 8] {
            0 => {
                let from = OffsetDateTime::now_utc();
                commands[0].kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                commands[0].spawn();
                // The other replica goes on; firings the killed one held come back after 1 s.
                windows.push((from, OffsetDateTime::now_utc() + Duration::from_secs(1)));
                "command-service SIGKILL"
            }
            1 => {
                projector.kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                projector.spawn();
                "projector SIGKILL"
            }
            2 => {
                gateways[0].kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                gateways[0].spawn();
                "query-service SIGKILL"
            }
            3 => {
                // Every node in turn.
                let node = nats_kills % 3;
                nats_kills += 1;
                let from = OffsetDateTime::now_utc();
                cluster.kill(node).await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                cluster.restart(node).await.unwrap_or_else(|e| panic!("{e:#}"));
                windows.push((from, jetstream_back(&probe).await + REDELIVERY));
                "NATS node SIGKILL"
            }
            4 => {
                if let Some(server) = postgres.take() {
                    server.crash().await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                postgres =
                    Some(ticketing::postgres::start(&pg_data, pg_port).await.unwrap_or_else(|e| panic!("{e:#}")));
                "PostgreSQL immediate stop and restart"
            }
            _ => {
                let from = OffsetDateTime::now_utc();
                commands[1].kill().await;
                gateways[1].kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                commands[1].spawn();
                gateways[1].spawn();
                windows.push((from, OffsetDateTime::now_utc() + Duration::from_secs(1)));
                "command-service and query-service SIGKILL"
            }
        };
        *faults.entry(fault).or_default() += 1;
        round += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for worker in workers {
        worker.await.unwrap_or_else(|e| panic!("worker: {e}"));
    }

    // Back: everything is up; from here on, expiries must be on time.
    for ready in [&a, &b, &projector_health] {
        wait_ready(&http, ready).await;
    }
    // Let every hold lapse and the pretend bank settle, then the projector catch up.
    tokio::time::sleep(Duration::from_secs(HOLD_SECONDS) + EXPIRY_SLACK + Duration::from_secs(2)).await;
    let (options, servers) = event_store::connect_options(&nats_url, "harness").unwrap_or_else(|e| panic!("{e:#}"));
    let client = options.connect(servers).await.unwrap_or_else(|e| panic!("{e}"));
    let store = event_store::EventStore::connect(
        client.clone(),
        &event_store::StreamSettings { replicas: 3, ..Default::default() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let js = async_nats::jetstream::new(client.clone());
    let stream_head = || async {
        let mut stream = js.get_stream("TICKETING").await.unwrap_or_else(|e| panic!("{e}"));
        stream.info().await.unwrap_or_else(|e| panic!("{e}")).state.last_sequence
    };
    // Reconciliation settles every payment still pending (answers lost to the faults).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = store.read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e:#}"));
        let mut replayed: HashMap<domain::TicketId, Listing> = HashMap::new();
        let mut replayed_shows: HashMap<domain::ShowId, Show> = HashMap::new();
        for stored in &events {
            if let Some(ticket) = domain::subjects::ticket_of(&stored.subject) {
                let listing = replayed.entry(ticket).or_default();
                *listing = std::mem::take(listing).evolve(&stored.event);
            } else if let Some(show) = domain::subjects::show_of(&stored.subject) {
                let state = replayed_shows.entry(show).or_default();
                *state = std::mem::take(state).evolve(&stored.event);
            }
        }
        let pending = replayed
            .values()
            .flat_map(|l| l.payments.values())
            .chain(replayed_shows.values().flat_map(|s| s.payments.values()))
            .filter(|p| p.status == PaymentStatus::Pending || p.refund_due)
            .count();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} payments still unsettled a minute after the faults");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let head = stream_head().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM read.checkpoint").fetch_one(&db).await.unwrap_or(0);
        if u64::try_from(position).unwrap_or(0) >= head {
            break;
        }
        assert!(Instant::now() < deadline, "projection stuck at {position} of {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The checks, from the stream.
    let events = store.read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut violations: Vec<String> = Vec::new();
    let mut listings: HashMap<Uuid, Listing> = HashMap::new();
    let mut expiries: HashMap<Uuid, OffsetDateTime> = HashMap::new();
    let mut shows: HashMap<Uuid, Show> = HashMap::new();
    for stored in &events {
        if let Event::ShowOrderCancelled { order_id, reason: domain::CancelReason::Expired, .. } = &stored.event {
            expiries.insert(order_id.0, stored.recorded_at);
        }
        if let Some(domain::ShowId(show)) = domain::subjects::show_of(&stored.subject) {
            let state = shows.entry(show).or_default();
            *state = std::mem::take(state).evolve(&stored.event);
            violations.extend(show_violations(show, state, stored.sequence));
            continue;
        }
        let Some(domain::TicketId(ticket)) = domain::subjects::ticket_of(&stored.subject) else { continue };
        let listing = listings.entry(ticket).or_default();
        *listing = std::mem::take(listing).evolve(&stored.event);
        if let Event::OrderCancelled { order_id, reason: domain::CancelReason::Expired, .. } = &stored.event {
            expiries.insert(order_id.0, stored.recorded_at);
        }
        let open = listing.orders.values().filter(|o| o.is_open()).count();
        let sold = listing.orders.values().filter(|o| o.status == OrderStatus::Complete).count();
        if open > 1 {
            violations.push(format!("ticket {ticket} held by {open} orders at once (position {})", stored.sequence));
        }
        if sold > 1 {
            violations.push(format!("ticket {ticket} sold {sold} times (position {})", stored.sequence));
        }
        if sold > 0 && open > 0 {
            violations.push(format!("ticket {ticket} held while sold (position {})", stored.sequence));
        }
        // The ticket's status agrees with its orders.
        if let Some(state) = &listing.ticket {
            let expected = match (open, sold) {
                (_, 1..) => domain::TicketStatus::Sold,
                (1.., 0) => domain::TicketStatus::Reserved,
                _ => domain::TicketStatus::Available,
            };
            let holder =
                listing.orders.values().find(|o| o.is_open() || o.status == OrderStatus::Complete).map(|o| o.id);
            if state.status != expected || state.holder != holder {
                violations.push(format!(
                    "ticket {ticket} is {:?} held by {:?} while its orders say {expected:?} by {holder:?} (position {})",
                    state.status, state.holder, stored.sequence
                ));
            }
        }
    }
    violations.extend(std::mem::take(&mut ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).violations));
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let order = |ticket: &Uuid, order: &Uuid| listings.get(ticket).and_then(|l| l.orders.get(&domain::OrderId(*order)));
    // An acknowledged order's status in the stream, on a ticket or on an event.
    let status = |target: &Uuid, id: &Uuid| {
        if ledger.on_events.contains(id) {
            shows.get(target).and_then(|s| s.orders.get(&domain::OrderId(*id))).map(|o| o.status)
        } else {
            order(target, id).map(|o| o.status)
        }
    };
    for show in &ledger.events {
        if shows.get(show).is_none_or(|s| s.info.is_none()) {
            violations.push(format!("acknowledged event {show} is not in the stream"));
        }
    }
    for (show, order) in &ledger.refused_on_events {
        if shows.get(show).is_some_and(|s| s.orders.contains_key(&domain::OrderId(*order))) {
            violations.push(format!("event hold {order} was refused, yet it is in the stream (not all or nothing)"));
        }
    }
    for ticket in &ledger.tickets {
        if listings.get(ticket).is_none_or(|l| l.ticket.is_none()) {
            violations.push(format!("acknowledged listing {ticket} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.holds {
        if status(ticket, id).is_none() {
            violations.push(format!("acknowledged hold {id} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.cancelled {
        if status(ticket, id) != Some(OrderStatus::Cancelled) {
            violations.push(format!("acknowledged cancel of {id} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.paid {
        if status(ticket, id) != Some(OrderStatus::Complete) {
            violations.push(format!("acknowledged payment of {id} did not complete it in the stream"));
        }
    }
    for account in &ledger.accounts {
        let loaded = store
            .load::<domain::Account>(&domain::subjects::account(domain::AccountId(*account)))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        if loaded.history.is_empty() {
            violations.push(format!("acknowledged sign-up {account} is not in the stream"));
        }
    }
    // The provider's ledger, which no killed process held: every charge that moved money
    // completed its order or was refunded.
    let bucket = js.get_key_value("TICKETING_FAKE_LEDGER").await.unwrap_or_else(|e| panic!("{e}"));
    let mut keys = futures::StreamExt::boxed(bucket.keys().await.unwrap_or_else(|e| panic!("{e}")));
    let mut provider_charges = 0;
    // Every payment, with whether its order (on a ticket or an event) completed.
    let payments: HashMap<Uuid, (bool, &domain::Payment)> = listings
        .values()
        .flat_map(|l| {
            l.payments.values().map(move |p| {
                (p.id.0, (l.orders.get(&p.order_id).is_some_and(|o| o.status == OrderStatus::Complete), p))
            })
        })
        .chain(shows.values().flat_map(|s| {
            s.payments.values().map(move |p| {
                (p.id.0, (s.orders.get(&p.order_id).is_some_and(|o| o.status == OrderStatus::Complete), p))
            })
        }))
        .collect();
    while let Some(key) = futures::StreamExt::next(&mut keys).await {
        let key = key.unwrap_or_else(|e| panic!("{e}"));
        let Some(payment) = key.strip_prefix("charge.").and_then(|k| k.parse::<Uuid>().ok()) else { continue };
        let entry: command_service::payments::fake::LedgerEntry =
            serde_json::from_slice(&bucket.get(&key).await.ok().flatten().unwrap_or_default())
                .unwrap_or_else(|e| panic!("ledger entry {key}: {e}"));
        if entry.status == "declined" {
            continue;
        }
        provider_charges += 1;
        match payments.get(&payment) {
            Some((completed, p)) => {
                let kept = p.status == PaymentStatus::Succeeded && *completed;
                if !(kept || p.status == PaymentStatus::Refunded) {
                    violations.push(format!(
                        "the provider charged payment {payment} ({}), which is {:?} and neither completed nor refunded",
                        entry.status, p.status
                    ));
                }
            }
            None => violations.push(format!("the provider charged payment {payment}, which is not in the stream")),
        }
    }
    // Every refund recorded in the stream was made at the provider.
    for (id, (_, payment)) in &payments {
        if payment.status == PaymentStatus::Refunded
            && bucket.get(format!("refund.refund-{id}")).await.ok().flatten().is_none()
        {
            violations.push(format!("payment {id} is refunded in the stream but not at the provider"));
        }
    }
    // No order was charged twice.
    let mut kept: HashMap<domain::OrderId, usize> = HashMap::new();
    for (_, payment) in payments.values() {
        if payment.status == PaymentStatus::Succeeded && !payment.refund_due {
            *kept.entry(payment.order_id).or_default() += 1;
        }
    }
    for (order, kept) in kept {
        if kept > 1 {
            violations.push(format!("order {} kept {kept} charges", order.0));
        }
    }
    let (mut charges, mut refunds) = (0, 0);
    let mut lateness: Vec<Duration> = Vec::new();
    let now = OffsetDateTime::now_utc();
    // An expiry is due 2 s after its time, or after the system was back from a fault that
    // covered that time; a fault that struck before the system was back from the previous one
    // carries the outage on (seen: a NATS node killed while JetStream was still recovering from
    // the last node's kill).
    let due = |expires_at: OffsetDateTime| {
        let mut back = expires_at;
        loop {
            // A hold due just before a fault began could still be in hand when it struck.
            let later =
                windows.iter().filter(|(from, to)| *from - EXPIRY_SLACK <= back && back < *to).map(|(_, to)| *to).max();
            match later {
                Some(to) if to > back => back = to,
                _ => break,
            }
        }
        back + EXPIRY_SLACK
    };
    for (ticket, listing) in &listings {
        for payment in listing.payments.values() {
            let completed = listing.orders.get(&payment.order_id).is_some_and(|o| o.status == OrderStatus::Complete);
            match payment.status {
                PaymentStatus::Succeeded if completed => charges += 1,
                PaymentStatus::Succeeded => violations.push(format!(
                    "payment {} on ticket {ticket} was charged but neither completed its order nor was refunded",
                    payment.id.0
                )),
                PaymentStatus::Refunded => refunds += 1,
                PaymentStatus::Pending | PaymentStatus::Failed => {}
            }
        }
        for order in listing.orders.values() {
            let due = due(order.expires_at);
            if order.is_open() && now > due {
                violations.push(format!(
                    "hold {} ({:?}) on ticket {ticket} still open {} after its expiry",
                    order.id.0,
                    order.status,
                    now - order.expires_at
                ));
            }
            if let Some(expired) = expiries.get(&order.id.0) {
                lateness.push(Duration::try_from(*expired - order.expires_at).unwrap_or_default());
                if *expired > due {
                    let start = windows.first().map_or(order.expires_at, |w| w.0);
                    violations.push(format!(
                        "hold {} expired {} late (due {:.1} s into the faults; fault windows {:?})",
                        order.id.0,
                        *expired - order.expires_at,
                        (order.expires_at - start).as_seconds_f64(),
                        windows
                            .iter()
                            .map(|(a, b)| ((*a - start).as_seconds_f64(), (*b - start).as_seconds_f64()))
                            .collect::<Vec<_>>()
                    ));
                }
                if *expired < order.expires_at {
                    violations.push(format!("hold {} expired {} early", order.id.0, order.expires_at - *expired));
                }
            }
        }
    }

    for (show, state) in &shows {
        for payment in state.payments.values() {
            let completed = state.orders.get(&payment.order_id).is_some_and(|o| o.status == OrderStatus::Complete);
            match payment.status {
                PaymentStatus::Succeeded if completed => charges += 1,
                PaymentStatus::Succeeded => violations.push(format!(
                    "payment {} on event {show} was charged but neither completed its order nor was refunded",
                    payment.id.0
                )),
                PaymentStatus::Refunded => refunds += 1,
                PaymentStatus::Pending | PaymentStatus::Failed => {}
            }
        }
        for (id, order) in &state.orders {
            let expires_at = order.placed.expires_at;
            if order.is_open() && now > due(expires_at) {
                violations.push(format!(
                    "event hold {} on {show} still open {} after its expiry",
                    id.0,
                    now - expires_at
                ));
            }
            if let Some(expired) = expiries.get(&id.0) {
                lateness.push(Duration::try_from(*expired - expires_at).unwrap_or_default());
                if *expired > due(expires_at) {
                    violations.push(format!("event hold {} expired {} late", id.0, *expired - expires_at));
                }
                if *expired < expires_at {
                    violations.push(format!("event hold {} expired {} early", id.0, expires_at - *expired));
                }
            }
        }
    }

    // The read models equal a fresh rebuild from the stream.
    projector.kill().await;
    let live = dump(&db).await;
    let mut rebuild = Process::start(&["projector", "rebuild"], env(&[("NATS_URL", urls.projector.clone())]));
    let status = match &mut rebuild.child {
        Some(child) => child.wait().await.unwrap_or_else(|e| panic!("{e}")),
        None => panic!("rebuild did not start"),
    };
    assert!(status.success(), "projector rebuild failed: {status}");
    let rebuilt = dump(&db).await;
    // The comparison holds only if nothing was written meanwhile: the system must be quiet by now.
    let later = stream_head().await;
    if later != head {
        violations.push(format!("events were still being written once the system was quiet ({head} → {later})"));
    }
    for ((table, live), (_, rebuilt)) in live.iter().zip(&rebuilt) {
        if live != rebuilt {
            let (live, rebuilt): (Vec<_>, Vec<_>) = (live.lines().collect(), rebuilt.lines().collect());
            let only_live: Vec<_> = live.iter().filter(|l| !rebuilt.contains(l)).take(2).collect();
            let only_rebuilt: Vec<_> = rebuilt.iter().filter(|l| !live.contains(l)).take(2).collect();
            violations.push(format!(
                "read model {table} differs from a fresh rebuild ({} rows live, {} rebuilt); live only: {only_live:?}; rebuilt only: {only_rebuilt:?}",
                live.len(),
                rebuilt.len()
            ));
        }
    }

    eprintln!("chaos: operations (acknowledged / refused / unanswered):");
    for (operation, (acknowledged, refused, unanswered)) in &ledger.tried {
        eprintln!("chaos:   {operation:<13} {acknowledged:>5} / {refused:>5} / {unanswered:>3}");
    }
    eprintln!(
        "chaos: {} events in the stream, {} tickets, {} holds, {} events on sale, {} event orders ({} items), {} expired, {charges} charges completed, {refunds} refunded",
        events.len(),
        listings.len(),
        listings.values().map(|l| l.orders.len()).sum::<usize>(),
        shows.len(),
        shows.values().map(|s| s.orders.len()).sum::<usize>(),
        shows
            .values()
            .flat_map(|s| s.orders.values())
            .map(|o| o.placed.seats.len() + o.placed.tickets.iter().map(|t| t.quantity as usize).sum::<usize>())
            .sum::<usize>(),
        expiries.len(),
    );
    lateness.sort_unstable();
    let percentile = |p: usize| lateness.get((lateness.len() * p / 100).min(lateness.len().saturating_sub(1)));
    eprintln!(
        "chaos: expiry lateness over {} expired holds: median {:?}, p99 {:?}, max {:?}",
        lateness.len(),
        percentile(50),
        percentile(99),
        lateness.last()
    );
    eprintln!("chaos: provider ledger: {provider_charges} charges that moved money");
    eprintln!("chaos: faults injected: {}", faults.values().sum::<usize>());
    for (fault, count) in &faults {
        eprintln!("chaos:   {count} × {fault}");
    }
    eprintln!("chaos: violations: {}", violations.len());
    for violation in &violations {
        eprintln!("chaos:   {violation}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
    let kinds = [
        "command-service SIGKILL",
        "projector SIGKILL",
        "query-service SIGKILL",
        "NATS node SIGKILL",
        "PostgreSQL immediate stop and restart",
        "command-service and query-service SIGKILL",
    ];
    for kind in kinds {
        assert!(faults.contains_key(kind), "{kind} was never injected: {faults:?}");
    }
    assert!(nats_kills >= 3, "every NATS node is killed at least once ({nats_kills} kills)");
    assert!(provider_charges > 0, "no charge reached the provider");
    assert!(ledger.lost_answers > 0, "no payment lost its answer, so reconciliation was not exercised");
    assert!(ledger.holds.len() >= 10 && !expiries.is_empty(), "the workload did too little to prove anything");
    assert!(ledger.on_events.len() >= 3, "too few event orders to prove anything: {}", ledger.on_events.len());
    assert!(!ledger.refused_on_events.is_empty(), "no event hold was refused: the races were not raced");
    drop(gateways);
    drop(commands);
    if let Some(server) = postgres {
        server.stop().await;
    }
}
