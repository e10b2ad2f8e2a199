//! Replay speed of the projector, next to PostgreSQL's raw batched-insert rate in the same run.
//!
//! Appends `--events N` events (each ticket listed, held and cancelled: 3 events) to a fresh
//! `nats-server`, then
//! - rebuilds the read models from the stream (`projector::rebuild`): events/s;
//! - inserts as many rows into a plain table, 1000 per multi-row INSERT and transaction: rows/s.
//!
//! Results: terminal, `bench/results/projection-replay.{json,md}`.
//! Run: `cargo run --release -p bench --bin projection-replay [-- --events N]` (default 200,000).

use std::time::Instant;

use anyhow::Context;
use domain::testing::at;
use domain::{AccountId, CancelReason, Currency, Event, OrderId, Price, TicketId, Title, subjects};
use event_store::{Append, EventStore, Guard, StreamSettings};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use uuid::Uuid;

/// mimalloc, as in every binary of the platform (see `ticketing/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("--events N")?
        .unwrap_or(200_000);
    let server = testkit::NatsServer::start().await?;
    let client = testkit::connect(&server.url()).await?;
    let settings = StreamSettings::default();
    let store = EventStore::connect(client.clone(), &settings).await?;
    let db = testkit::postgres().await?;

    let tickets = events / 3;
    let appended = Instant::now();
    let mut running = FuturesUnordered::new();
    for n in 0..tickets {
        running.push(write_ticket(store.clone()));
        if running.len() >= 64 || n + 1 == tickets {
            while let Some(result) = running.next().await {
                result?;
                if running.len() < 32 {
                    break;
                }
            }
        }
    }
    while let Some(result) = running.next().await {
        result?;
    }
    let append_secs = appended.elapsed().as_secs_f64();
    let total = tickets * 3;

    let report = projector::rebuild::rebuild(&db.pool, client.clone(), &settings, 1000, false).await?;
    let replay = report.events_per_second();

    sqlx::query("CREATE TABLE raw_insert (id uuid PRIMARY KEY, title text NOT NULL, price_cents bigint NOT NULL, position bigint NOT NULL)")
        .execute(&db.pool)
        .await?;
    let started = Instant::now();
    let mut inserted = 0usize;
    while inserted < total {
        let rows = (total - inserted).min(1000);
        let mut sql = String::from("INSERT INTO raw_insert (id, title, price_cents, position) VALUES ");
        for i in 0..rows {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("('{}', 'Opera night', 2500, {})", Uuid::new_v4(), inserted + i));
        }
        let mut tx = db.pool.begin().await?;
        sqlx::query(&sql).execute(&mut *tx).await?;
        tx.commit().await?;
        inserted += rows;
    }
    let raw = total as f64 / started.elapsed().as_secs_f64();

    let machine = format!(
        "{} cores, nats-server {}, PostgreSQL at DATABASE_URL or local 15",
        std::thread::available_parallelism().map_or(0, usize::from),
        client.server_info().version
    );
    let markdown = format!(
        "| measure | events or rows | per second | vs raw batched insert |\n|---|---:|---:|---:|\n\
         | raw batched insert (1000 rows per INSERT and transaction) | {total} | {raw:.0} | 1.00× |\n\
         | projector replay (rebuild, batches of up to 1000) | {} | {replay:.0} | {:.2}× |\n\
         | appending the events (64 in flight, for scale) | {total} | {:.0} | {:.2}× |\n",
        report.events,
        replay / raw,
        total as f64 / append_secs,
        (total as f64 / append_secs) / raw,
    );
    eprintln!("{machine}\n{markdown}");
    let json = serde_json::json!({
        "machine": machine, "events": report.events, "replay_events_per_second": replay,
        "raw_insert_rows_per_second": raw, "ratio_replay_to_raw": replay / raw,
    });
    let dir = testkit::workspace_root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("projection-replay.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(dir.join("projection-replay.md"), format!("{machine}\n\n{markdown}"))?;
    Ok(())
}

/// One ticket's life: listed, held, cancelled.
async fn write_ticket(store: EventStore) -> anyhow::Result<()> {
    let (ticket, order) = (TicketId(Uuid::new_v4()), OrderId(Uuid::new_v4()));
    let price = Price::from_cents(2500)?;
    let events = [
        Event::TicketListed {
            ticket_id: ticket,
            seller: AccountId(Uuid::nil()),
            title: Title::parse("Opera night")?,
            price_cents: price,
            currency: Currency::Usd,
            at: at(0),
        },
        Event::OrderPlaced {
            order_id: order,
            ticket_id: ticket,
            buyer: AccountId(Uuid::from_u128(1)),
            seller: AccountId(Uuid::nil()),
            amount_cents: price,
            currency: Currency::Usd,
            idempotency_key: None,
            expires_at: at(900),
            at: at(1),
        },
        Event::OrderCancelled { order_id: order, ticket_id: ticket, reason: CancelReason::User, by: None, at: at(2) },
    ];
    let mut version = 0;
    for event in &events {
        let subject = subjects::listing_event(ticket, event).unwrap_or_default();
        let guard = Guard::boundary(subjects::listing(ticket), version);
        version = store.append(Append { subject, event, guard, msg_id: Uuid::new_v4().to_string() }).await?.sequence;
    }
    Ok(())
}
