//! Chaos: a mixed workload (sign-ups, listings, holds on contended tickets, cancels, card,
//! declined and asynchronous payments, expiries) runs against a 3-node NATS cluster, two command
//! services, a projector, two gateways and a PostgreSQL server of the test's own, while processes
//! are killed with SIGKILL and restarted, one NATS node at a time is killed and restarted, and
//! PostgreSQL is stopped as a crash would stop it and started again.
//!
//! Afterwards, from the event stream (the source of truth) and the read models:
//! - no ticket was ever held by two open orders at once, or sold twice;
//! - every acknowledged mutation's events are in the stream;
//! - the read models equal a fresh rebuild from the stream, table by table;
//! - every charge that succeeded completed its order or was refunded;
//! - no hold outlived its expiry by more than 2 s once the system was back.
//!
//! It prints the operations, the faults injected and the violations (which must be 0). The
//! workload runs `CHAOS_SECONDS` (default 30; the test command's short form); set it higher for a
//! longer run, e.g. `CHAOS_SECONDS=600 cargo nextest run -p ticketing --test chaos`.
//! `CHAOS_SEED` replays a run's choices.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Process, User, free_port, wait_ready};
use domain::{Aggregate, Event, Listing, OrderStatus, PaymentStatus};
use serde_json::{Value, json};
use testkit::Rng;
use time::OffsetDateTime;
use uuid::Uuid;

/// Holds lapse after this long, so expiries happen throughout the run.
const HOLD_SECONDS: u64 = 3;
/// How late an expiry may be once the system is back.
const EXPIRY_SLACK: Duration = Duration::from_secs(2);
const WORKERS: usize = 6;
const WEBHOOK_SECRET: &str = "whsec_chaos_secret";

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse battery\") { id } }";
const CREATE: &str = "mutation($t: String!) { createTicket(title: $t, priceCents: 2500) { id } }";
const HOLD: &str = "mutation($t: ID!, $k: String!) { createOrder(ticketId: $t, idempotencyKey: $k) { id } }";
const CANCEL: &str = "mutation($o: ID!) { cancelOrder(id: $o) { status } }";
const PAY: &str =
    "mutation($o: ID!, $c: String!, $k: String!) { payOrder(orderId: $o, token: $c, idempotencyKey: $k) { status } }";

/// What the system acknowledged, and how often each operation was tried.
#[derive(Default)]
struct Ledger {
    accounts: Vec<Uuid>,
    tickets: Vec<Uuid>,
    /// (ticket, order)
    holds: Vec<(Uuid, Uuid)>,
    cancelled: Vec<(Uuid, Uuid)>,
    paid: Vec<(Uuid, Uuid)>,
    /// Operation → (acknowledged, refused with a code, unanswered).
    tried: BTreeMap<&'static str, (usize, usize, usize)>,
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
) {
    let mut rng = Rng::new(seed);
    let via: Vec<&str> = gateways.iter().map(String::as_str).collect();
    let mut user = User::new();
    let record = |operation, answer: &Result<Value, String>| {
        ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).count(operation, answer);
    };
    let mut signed_up = false;
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
        // Hold one of the most recent listings: workers contend for the same tickets.
        let recent = &listed[listed.len().saturating_sub(8)..];
        let ticket = recent[rng.below(recent.len())];
        let answer = user.call(&via, HOLD, json!({"t": ticket, "k": format!("hold-{seed}-{n}")})).await;
        record("createOrder", &answer);
        let Some(order) = answer.as_ref().ok().and_then(|data| id(data, "createOrder")) else { continue };
        ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).holds.push((ticket, order));
        match rng.below(8) {
            0 | 1 => {
                let answer = user.call(&via, CANCEL, json!({"o": order})).await;
                record("cancelOrder", &answer);
                if answer.is_ok() {
                    ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).cancelled.push((ticket, order));
                }
            }
            choice @ 2..=5 => {
                let token = match choice {
                    2 | 3 => "tok_visa",
                    4 => "tok_async",
                    _ => "tok_chargeDeclined",
                };
                let answer =
                    user.call(&via, PAY, json!({"o": order, "c": token, "k": format!("pay-{seed}-{n}")})).await;
                record("payOrder", &answer);
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

/// Every read model, table by table, as comparable text.
async fn dump(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    projector::schema::snapshot(pool).await.unwrap_or_else(|e| panic!("snapshot: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing_and_break_no_rule() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = std::env::var("CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_fields().0));
    eprintln!("chaos: {seconds} s of workload, seed {seed} (CHAOS_SEED={seed} replays the choices)");

    let mut cluster = testkit::NatsCluster::start(3).await.unwrap_or_else(|e| panic!("{e:#}"));
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
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let projector_health = format!("127.0.0.1:{}", free_port());
    let mut commands = [Process::start(&["command-service"], env(&[])), Process::start(&["command-service"], env(&[]))];
    let mut projector = Process::start(&["projector"], env(&[("HEALTH_ADDR", projector_health.clone())]));
    let mut gateways = [
        Process::start(&["query-service"], env(&[("HTTP_ADDR", a.clone())])),
        Process::start(&["query-service"], env(&[("HTTP_ADDR", b.clone())])),
    ];
    let http = reqwest::Client::builder().build().unwrap_or_else(|e| panic!("{e}"));
    for ready in [&a, &b, &projector_health] {
        wait_ready(&http, ready).await;
    }

    // The workload.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let pool = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (gateways, ledger, pool) = (vec![a.clone(), b.clone()], ledger.clone(), pool.clone());
            // Half the workers prefer the other gateway first.
            let gateways = if w % 2 == 0 { gateways } else { gateways.into_iter().rev().collect() };
            tokio::spawn(worker(gateways, seed.wrapping_add(w as u64 * 7919), until, ledger, pool))
        })
        .collect();

    // The faults, in turn, while the workload runs.
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut round = 0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while Instant::now() + Duration::from_secs(3) < until {
        let fault = match round % 7 {
            0 => {
                commands[0].kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                commands[0].spawn();
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
            3 | 6 => {
                let node = round % 3;
                cluster.kill(node).await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                cluster.restart(node).await.unwrap_or_else(|e| panic!("{e:#}"));
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
                commands[1].kill().await;
                gateways[1].kill().await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                commands[1].spawn();
                gateways[1].spawn();
                "command-service and query-service SIGKILL"
            }
        };
        *faults.entry(fault).or_default() += 1;
        round += 1;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    for worker in workers {
        worker.await.unwrap_or_else(|e| panic!("worker: {e}"));
    }

    // Back: everything is up; from here on, expiries must be on time.
    for ready in [&a, &b, &projector_health] {
        wait_ready(&http, ready).await;
    }
    let back = OffsetDateTime::now_utc();
    // Let every hold lapse and the pretend bank settle, then the projector catch up.
    tokio::time::sleep(Duration::from_secs(HOLD_SECONDS) + EXPIRY_SLACK + Duration::from_secs(2)).await;
    let servers = event_store::server_addrs(&nats_url).unwrap_or_else(|e| panic!("{e:#}"));
    let client = async_nats::connect(servers).await.unwrap_or_else(|e| panic!("{e}"));
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
    for stored in &events {
        let Some(ticket) = stored.subject.strip_prefix("ticketing.ticket.").and_then(|s| s.split('.').next()) else {
            continue;
        };
        let Ok(ticket) = ticket.parse::<Uuid>() else { continue };
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
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let order = |ticket: &Uuid, order: &Uuid| listings.get(ticket).and_then(|l| l.orders.get(&domain::OrderId(*order)));
    for ticket in &ledger.tickets {
        if listings.get(ticket).is_none_or(|l| l.ticket.is_none()) {
            violations.push(format!("acknowledged listing {ticket} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.holds {
        if order(ticket, id).is_none() {
            violations.push(format!("acknowledged hold {id} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.cancelled {
        if order(ticket, id).is_none_or(|o| o.status != OrderStatus::Cancelled) {
            violations.push(format!("acknowledged cancel of {id} is not in the stream"));
        }
    }
    for (ticket, id) in &ledger.paid {
        if order(ticket, id).is_none_or(|o| o.status != OrderStatus::Complete) {
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
    let (mut charges, mut refunds) = (0, 0);
    let now = OffsetDateTime::now_utc();
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
            let due = order.expires_at.max(back) + EXPIRY_SLACK;
            if order.is_open() && now > due {
                violations.push(format!(
                    "hold {} ({:?}) on ticket {ticket} still open {} after its expiry",
                    order.id.0,
                    order.status,
                    now - order.expires_at
                ));
            }
            if let Some(expired) = expiries.get(&order.id.0)
                && *expired > due
            {
                violations.push(format!("hold {} expired {} late", order.id.0, *expired - order.expires_at));
            }
        }
    }

    // The read models equal a fresh rebuild from the stream.
    projector.kill().await;
    let live = dump(&db).await;
    let mut rebuild = Process::start(&["projector", "rebuild"], env(&[]));
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
        "chaos: {} events in the stream, {} tickets, {} holds, {} expired, {charges} charges completed, {refunds} refunded",
        events.len(),
        listings.len(),
        listings.values().map(|l| l.orders.len()).sum::<usize>(),
        expiries.len(),
    );
    eprintln!("chaos: faults injected: {}", faults.values().sum::<usize>());
    for (fault, count) in &faults {
        eprintln!("chaos:   {count} × {fault}");
    }
    eprintln!("chaos: violations: {}", violations.len());
    for violation in &violations {
        eprintln!("chaos:   {violation}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert!(faults.len() >= 5, "every kind of fault was injected at least once: {faults:?}");
    assert!(ledger.holds.len() >= 10 && !expiries.is_empty(), "the workload did too little to prove anything");
    drop(gateways);
    drop(commands);
    if let Some(server) = postgres {
        server.stop().await;
    }
}
