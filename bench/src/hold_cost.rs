//! What does writing a hold cost? Compares, against one fresh `nats-server` in one run:
//!
//! - `guarded append`: one event guarded by the listing's wildcard boundary (the baseline);
//! - `hold as written`: what `createOrder` writes: the buyer's hold slot (guarded by the account
//!   subject), the expiry schedule (timer stream) and the hold itself (guarded by the listing);
//! - `atomic batch`: the slot and the hold as one JetStream atomic batch (stream `allow_atomic`),
//!   the alternative that would make the two appends one transaction.
//!
//! Each runs with 1 and with 64 operations in flight. Results go to the terminal and to
//! `bench/results/hold-cost.{json,md}`.
//!
//! Run: `cargo run --release -p bench --bin hold-cost [-- --ops N]`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use domain::testing::at;
use domain::{AccountId, Currency, Event, OrderId, Price, TicketId, subjects};
use event_store::{Append, EventStore, Guard, StreamSettings};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use uuid::Uuid;

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let ops: usize = std::env::args()
        .skip_while(|a| a != "--ops")
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("--ops N")?
        .unwrap_or(2000);
    let server = testkit::NatsServer::start().await?;
    let client = testkit::connect(&server.url()).await?;
    let store = EventStore::connect(client.clone(), &StreamSettings::default()).await?;
    create_batch_stream(&client).await?;

    let mut rows = Vec::new();
    for in_flight in [1usize, 64] {
        rows.push(measure("guarded append", in_flight, ops, |_| guarded_append(store.clone())).await?);
        rows.push(measure("hold as written", in_flight, ops, |_| hold_as_written(store.clone())).await?);
        let batch_ops = ops.min(1000);
        rows.push(measure("atomic batch (slot + hold)", in_flight, batch_ops, |_| atomic_batch(client.clone())).await?);
    }

    let baseline = |in_flight: usize| {
        rows.iter().find(|r| r.name == "guarded append" && r.in_flight == in_flight).map_or(1.0, |r| r.per_second)
    };
    let mut markdown = String::from(
        "| write | in flight | ops | per second | p50 ms | p99 ms | vs guarded append |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &rows {
        markdown.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2}× |\n",
            row.name,
            row.in_flight,
            row.ops,
            row.per_second,
            row.p50_ms,
            row.p99_ms,
            row.per_second / baseline(row.in_flight)
        ));
    }
    let machine = format!(
        "{} cores, nats-server {}, single replica, file storage",
        std::thread::available_parallelism().map_or(0, usize::from),
        client.server_info().version
    );
    eprintln!("{machine}\n{markdown}");
    let json = serde_json::json!({
        "machine": machine,
        "rows": rows.iter().map(|r| serde_json::json!({
            "write": r.name, "in_flight": r.in_flight, "ops": r.ops, "per_second": r.per_second,
            "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "ratio_to_guarded_append": r.per_second / baseline(r.in_flight),
        })).collect::<Vec<_>>(),
    });
    let dir = testkit::workspace_root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hold-cost.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(dir.join("hold-cost.md"), format!("{machine}\n\n{markdown}"))?;
    Ok(())
}

struct Row {
    name: &'static str,
    in_flight: usize,
    ops: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure<F, Fut>(name: &'static str, in_flight: usize, ops: usize, op: F) -> anyhow::Result<Row>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut latencies = Vec::with_capacity(ops);
    let started = Instant::now();
    let mut running = FuturesUnordered::new();
    let mut issued = 0;
    while latencies.len() < ops {
        while issued < ops && running.len() < in_flight {
            let fut = op(issued);
            running.push(async move {
                let t = Instant::now();
                fut.await.map(|()| t.elapsed())
            });
            issued += 1;
        }
        if let Some(result) = running.next().await {
            latencies.push(result?);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    Ok(Row {
        name,
        in_flight,
        ops,
        per_second: ops as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

fn hold(ticket: TicketId, order: OrderId, buyer: AccountId) -> Event {
    Event::OrderPlaced {
        order_id: order,
        ticket_id: ticket,
        buyer,
        seller: AccountId(Uuid::nil()),
        amount_cents: Price::from_cents(2500).unwrap_or_else(|e| panic!("{e}")),
        currency: Currency::Usd,
        idempotency_key: None,
        expires_at: at(900),
        at: at(0),
    }
}

async fn guarded_append(store: EventStore) -> anyhow::Result<()> {
    let (ticket, order) = (TicketId(Uuid::new_v4()), OrderId(Uuid::new_v4()));
    let event = hold(ticket, order, AccountId(Uuid::new_v4()));
    store
        .append(Append {
            subject: subjects::listing_event(ticket, &event).unwrap_or_default(),
            event: &event,
            guard: Guard::boundary(subjects::listing(ticket), 0),
            msg_id: order.to_string(),
        })
        .await?;
    Ok(())
}

async fn hold_as_written(store: EventStore) -> anyhow::Result<()> {
    let (ticket, order, buyer) = (TicketId(Uuid::new_v4()), OrderId(Uuid::new_v4()), AccountId(Uuid::new_v4()));
    let slot = Event::HoldSlotClaimed {
        account_id: buyer,
        order_id: order,
        ticket_id: Some(ticket),
        show_id: None,
        expires_at: at(900),
        at: at(0),
    };
    store
        .append(Append {
            subject: subjects::account(buyer),
            event: &slot,
            guard: Guard::subject(0),
            msg_id: format!("slot-{order}"),
        })
        .await?;
    let fire_at = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store
        .schedule(
            &subjects::expiry_schedule(order),
            &subjects::expiry_firing(ticket, order),
            fire_at,
            Bytes::from_static(b"{}"),
            &format!("expiry-{order}"),
        )
        .await?;
    let event = hold(ticket, order, buyer);
    store
        .append(Append {
            subject: subjects::listing_event(ticket, &event).unwrap_or_default(),
            event: &event,
            guard: Guard::boundary(subjects::listing(ticket), 0),
            msg_id: order.to_string(),
        })
        .await?;
    Ok(())
}

async fn create_batch_stream(client: &Client) -> anyhow::Result<()> {
    let config = serde_json::json!({
        "name": "BATCHBENCH", "subjects": ["batchbench.>"], "storage": "file", "num_replicas": 1,
        "allow_atomic": true, "deny_delete": true, "deny_purge": true, "allow_direct": true,
    });
    let reply = client.request("$JS.API.STREAM.CREATE.BATCHBENCH", config.to_string().into()).await?;
    if String::from_utf8_lossy(&reply.payload).contains("\"error\"") {
        bail!("creating the batch stream: {}", String::from_utf8_lossy(&reply.payload));
    }
    Ok(())
}

async fn atomic_batch(client: Client) -> anyhow::Result<()> {
    let (ticket, order, buyer) = (TicketId(Uuid::new_v4()), OrderId(Uuid::new_v4()), AccountId(Uuid::new_v4()));
    let slot = Event::HoldSlotClaimed {
        account_id: buyer,
        order_id: order,
        ticket_id: Some(ticket),
        show_id: None,
        expires_at: at(900),
        at: at(0),
    };
    let event = hold(ticket, order, buyer);
    let batch = Uuid::new_v4().simple().to_string();
    let mut first = HeaderMap::new();
    first.insert("Nats-Batch-Id", batch.as_str());
    first.insert("Nats-Batch-Sequence", "1");
    first.insert("Nats-Expected-Last-Subject-Sequence", "0");
    client
        .publish_with_headers(
            format!("batchbench.account.{buyer}"),
            first,
            Bytes::from(domain::EventEnvelope::encode(&slot).unwrap_or_else(|e| panic!("{e}"))),
        )
        .await?;
    let mut commit = HeaderMap::new();
    commit.insert("Nats-Batch-Id", batch.as_str());
    commit.insert("Nats-Batch-Sequence", "2");
    commit.insert("Nats-Batch-Commit", "1");
    commit.insert("Nats-Expected-Last-Subject-Sequence", "0");
    commit.insert("Nats-Expected-Last-Subject-Sequence-Subject", format!("batchbench.ticket.{ticket}.>").as_str());
    let reply = client
        .request_with_headers(
            format!("batchbench.ticket.{ticket}.order.{order}"),
            commit,
            Bytes::from(domain::EventEnvelope::encode(&event).unwrap_or_else(|e| panic!("{e}"))),
        )
        .await?;
    if String::from_utf8_lossy(&reply.payload).contains("\"error\"") {
        bail!("batch refused: {}", String::from_utf8_lossy(&reply.payload));
    }
    Ok(())
}
