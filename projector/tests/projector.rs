//! The projector against real NATS JetStream and PostgreSQL.

use std::time::{Duration, Instant};

use command_service::Service;
use command_service::api::{Command, Outcome, Reply, Request, Success};
use command_service::config::Config;
use domain::{Actor, TicketId};
use event_store::StreamSettings;
use futures::future::join_all;
use projector::{Incoming, Projector, schema};
use sqlx::PgPool;

/// NATS, a database, and a command service to produce real events.
struct World {
    nats: testkit::TestNats,
    db: testkit::TestDb,
    service: Service,
    settings: StreamSettings,
    commands: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl World {
    async fn start() -> Self {
        let nats = testkit::nats().await.unwrap_or_else(|e| panic!("{e:#}"));
        let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
        let mut config = Config::with_nats_url(&nats.url);
        config.stream_name = nats.stream.clone();
        config.subject_root = nats.root.clone();
        config.order_hold_seconds = 1;
        let client = testkit::connect(&nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
        let service = Service::connect(config, client, None).await.unwrap_or_else(|e| panic!("{e:#}"));
        let requests = service.subscribe().await.unwrap_or_else(|e| panic!("{e:#}"));
        let serving = tokio::spawn(service.clone().serve_subscription(requests));
        let expiring = tokio::spawn(service.clone().run_expiry());
        let settings = service.store().settings().clone();
        Self { nats, db, service, settings, commands: vec![serving, expiring] }
    }

    /// Stops the command service (and its expiry timers): nothing more is written.
    async fn stop_commands(&mut self) {
        for task in self.commands.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the command service, so nothing more is written (expiry timers included), and
    /// waits until the projection has everything: the state to compare with a rebuild.
    async fn quiesce(&mut self) {
        self.stop_commands().await;
        let head = self.head().await;
        wait_projected(&self.db.pool, head).await;
    }

    async fn projector(&self) -> Projector {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = testkit::connect(&self.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
        Projector::new(pool, client, self.settings.clone(), 500)
    }

    async fn send(&self, request: Request) -> Reply {
        let subject = self.settings.wire_subject(&request.subject());
        let reply = self
            .nats
            .client
            .request(subject, serde_json::to_vec(&request).unwrap_or_default().into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn actor(&self) -> Actor {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        match self
            .send(Request::new(Command::SignUp { email, password: "correct horse".into(), client_addr: None }))
            .await
        {
            Reply::Ok(s) => match s.result {
                Outcome::Session { account_id, .. } => Actor::user(account_id),
                other => panic!("{other:?}"),
            },
            Reply::Error(f) => panic!("{f:?}"),
        }
    }

    /// A mixed workload: listings, edits, holds, cancellations, payments (sync and async), expiries.
    async fn workload(&self, rounds: usize) {
        let seller = self.actor().await;
        let buyers = join_all((0..8).map(|_| self.actor())).await;
        for round in 0..rounds {
            let ticket = match self
                .send(
                    Request::new(Command::CreateTicket {
                        title: format!("Show {round}"),
                        price_cents: 1000 + i64::try_from(round).unwrap_or(0),
                    })
                    .by(seller),
                )
                .await
            {
                Reply::Ok(s) => match s.result {
                    Outcome::Ticket { ticket_id, .. } => ticket_id,
                    other => panic!("{other:?}"),
                },
                Reply::Error(f) => panic!("{f:?}"),
            };
            let buyer = buyers[round % buyers.len()];
            let _ = self
                .send(
                    Request::new(Command::UpdateTicket {
                        ticket_id: ticket,
                        title: Some(format!("Show {round}, edited")),
                        price_cents: None,
                    })
                    .by(seller),
                )
                .await;
            let Reply::Ok(order) = self.send(Request::new(Command::CreateOrder { ticket_id: ticket }).by(buyer)).await
            else {
                continue;
            };
            let Outcome::Order { order_id, .. } = order.result else { continue };
            let pay = |token: &str| {
                Request::new(Command::PayOrder {
                    order_id,
                    ticket_id: Some(ticket),
                    event_id: None,
                    token: token.into(),
                })
                .by(buyer)
            };
            match round % 4 {
                0 => drop(self.send(pay("tok_visa")).await),
                1 => drop(
                    self.send(
                        Request::new(Command::CancelOrder { order_id, ticket_id: Some(ticket), event_id: None })
                            .by(buyer),
                    )
                    .await,
                ),
                2 => {
                    let _ = self.send(pay("tok_chargeDeclined")).await;
                    let _ = self.send(pay("tok_async")).await;
                }
                _ => {} // left to expire
            }
        }
    }

    /// An event with a ticket type and a section, and orders on it from every buyer: some
    /// cancelled, the rest left to expire (holds last 1 s), some refused for want of seats.
    async fn event_workload(&self) -> domain::ShowId {
        use command_service::api::{OrderItemInput, SectionInput, TicketTypeInput};
        let organizer = self.actor().await;
        let buyers = join_all((0..6).map(|_| self.actor())).await;
        let create = Command::CreateEvent {
            title: "Rock Arena".into(),
            venue: "Town Hall".into(),
            starts_at: time::OffsetDateTime::now_utc() + time::Duration::days(7),
            ticket_types: vec![TicketTypeInput { name: "Standing".into(), price_cents: 2_500, capacity: 10 }],
            sections: vec![SectionInput { name: "A".into(), price_cents: 9_000, rows: 2, seats_per_row: 4 }],
        };
        let show = match self.send(Request::new(create).by(organizer)).await {
            Reply::Ok(Success { result: Outcome::Event { event_id }, .. }) => event_id,
            other => panic!("{other:?}"),
        };
        let update =
            Command::UpdateEvent { event_id: show, title: Some("Rock Arena II".into()), venue: None, starts_at: None };
        let _ = self.send(Request::new(update).by(organizer)).await;
        let ga = domain::TicketTypeId::of(show, 0);
        let replies = join_all(buyers.iter().enumerate().map(|(i, buyer)| {
            let seats = vec![format!("A-1-{}", i % 4 + 1), format!("A-2-{}", i % 3 + 1)];
            let items = vec![OrderItemInput { ticket_type_id: ga, quantity: i64::try_from(i % 3 + 1).unwrap_or(1) }];
            self.send(Request::new(Command::CreateEventOrder { event_id: show, items, seats }).by(*buyer))
        }))
        .await;
        for (i, reply) in replies.iter().enumerate() {
            let Reply::Ok(Success { result: Outcome::EventOrder { order_id, .. }, .. }) = reply else { continue };
            let pay = |token: &str| Command::PayOrder {
                order_id: *order_id,
                ticket_id: None,
                event_id: Some(show),
                token: token.into(),
            };
            let command = match i % 4 {
                0 | 2 => Command::CancelOrder { order_id: *order_id, ticket_id: None, event_id: Some(show) },
                1 => pay("tok_visa"),
                _ => pay("tok_async"),
            };
            let _ = self.send(Request::new(command).by(buyers[i])).await;
        }
        show
    }

    async fn head(&self) -> u64 {
        let js = async_nats::jetstream::new(self.nats.client.clone());
        let mut stream = js.get_stream(&self.settings.name).await.unwrap_or_else(|e| panic!("{e}"));
        stream.info().await.map(|i| i.state.last_sequence).unwrap_or(0)
    }
}

async fn projected(pool: &PgPool) -> u64 {
    sqlx::query_scalar::<_, i64>("SELECT position FROM read.checkpoint")
        .fetch_one(pool)
        .await
        .map(|p| u64::try_from(p).unwrap_or(0))
        .unwrap_or(0)
}

async fn wait_projected(pool: &PgPool, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while projected(pool).await < head {
        assert!(Instant::now() < deadline, "projection stuck at {} of {head}", projected(pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every hold left open has expired (the world's holds last 1 s).
async fn holds_expired(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM read.orders WHERE status IN ('CREATED', 'AWAITING_PAYMENT')")
                .fetch_one(pool)
                .await
                .unwrap_or(-1);
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} holds never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stored events as the projector receives them from its consumer.
fn incoming(events: &[event_store::StoredEvent]) -> Vec<Incoming> {
    events
        .iter()
        .map(|e| Incoming {
            position: e.sequence,
            subject: e.subject.clone(),
            recorded_at: e.recorded_at,
            payload: domain::EventEnvelope::encode(&e.event).unwrap_or_else(|e| panic!("{e}")).into(),
            traceparent: None,
        })
        .collect()
}

/// Every read model, table by table, as comparable text.
async fn dump(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    projector::schema::snapshot(pool).await.unwrap_or_else(|e| panic!("snapshot: {e}"))
}

fn assert_same(live: &[(String, String)], rebuilt: &[(String, String)]) {
    for ((table, a), (_, b)) in live.iter().zip(rebuilt) {
        assert_eq!(a, b, "table {table} differs between live projection and rebuild");
    }
}

async fn rebuild(world: &World) -> projector::rebuild::Report {
    let client = testkit::connect(&world.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    projector::rebuild::rebuild(&world.db.pool, client, &world.settings, 500, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test]
async fn the_live_projection_equals_a_rebuild_table_by_table() {
    let mut world = World::start().await;
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    world.workload(24).await;
    world.event_workload().await;
    // Let the left-open holds expire, so the stream has expiries too.
    // Every order projected first: a hold not projected yet is not an open one to wait for.
    wait_projected(&world.db.pool, world.head().await).await;
    holds_expired(&world.db.pool).await;
    world.quiesce().await;
    let head = world.head().await;

    let counts: (i64, i64, i64) = sqlx::query_as("SELECT (SELECT count(*) FROM read.tickets), (SELECT count(*) FROM read.orders), (SELECT count(*) FROM read.payments)")
        .fetch_one(&world.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.0, 24);
    assert!(counts.1 >= 26 && counts.2 >= 12, "{counts:?}");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM read.orders ORDER BY 1")
        .fetch_all(&world.db.pool)
        .await
        .unwrap_or_default();
    assert_eq!(statuses, ["CANCELLED", "COMPLETE"]);
    let payments: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM read.payments ORDER BY 1")
        .fetch_all(&world.db.pool)
        .await
        .unwrap_or_default();
    assert_eq!(payments, ["FAILED", "PENDING", "SUCCEEDED"]);

    let live = dump(&world.db.pool).await;
    running.abort();
    let report = rebuild(&world).await;
    assert_eq!(report.events, head);
    assert_same(&live, &dump(&world.db.pool).await);
}

/// Timestamps as PostgreSQL keeps them (microseconds).
fn micros(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// The projector folds with the domain's own `evolve`: every ticket, order and payment row says
/// what the write model's state of its listing says, field by field.
#[tokio::test]
async fn every_row_says_what_the_write_models_state_says() {
    use domain::stored::text;
    let mut world = World::start().await;
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    world.workload(16).await;
    // The holds left open expire (1 s), so expiries are compared too.
    // Every order projected first: a hold not projected yet is not an open one to wait for.
    wait_projected(&world.db.pool, world.head().await).await;
    holds_expired(&world.db.pool).await;
    world.quiesce().await;
    running.abort();

    let tickets: Vec<(uuid::Uuid, String, Option<uuid::Uuid>, String, i64, time::OffsetDateTime)> =
        sqlx::query_as("SELECT id, status, holder_order_id, title, price_cents, updated_at FROM read.tickets")
            .fetch_all(&world.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tickets.len(), 16);
    let (mut orders_seen, mut payments_seen) = (0, 0);
    for (id, status, holder, title, price, updated_at) in tickets {
        let loaded = world
            .service
            .store()
            .load::<domain::Listing>(&domain::subjects::listing(TicketId(id)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ticket = loaded.state.ticket.unwrap_or_else(|| panic!("ticket {id} has a row but no listing"));
        let expected = (text(&ticket.status, "s").ok(), ticket.holder.map(|o| o.0), ticket.title.as_str().to_owned());
        assert_eq!((Some(status), holder, title), expected, "ticket {id}");
        assert_eq!((price, updated_at), (ticket.price.cents(), micros(ticket.updated_at)), "ticket {id}");
        for order in loaded.state.orders.values() {
            let row: (String, Option<String>, Option<uuid::Uuid>, time::OffsetDateTime, time::OffsetDateTime) =
                sqlx::query_as(
                    "SELECT status, cancel_reason, payment_id, expires_at, updated_at FROM read.orders WHERE id = $1",
                )
                .bind(order.id.0)
                .fetch_one(&world.db.pool)
                .await
                .unwrap_or_else(|e| panic!("order {}: {e}", order.id));
            let expected = (
                text(&order.status, "s").unwrap_or_default(),
                order.cancel_reason.map(|r| text(&r, "r").unwrap_or_default()),
                order.payment.map(|p| p.0),
                micros(order.expires_at),
                micros(order.updated_at),
            );
            assert_eq!(row, expected, "order {}", order.id);
            orders_seen += 1;
        }
        for payment in loaded.state.payments.values() {
            let row: (String, Option<String>, Option<String>, bool, time::OffsetDateTime) = sqlx::query_as(
                "SELECT status, provider_ref, failure_reason, refund_due, updated_at FROM read.payments WHERE id = $1",
            )
            .bind(payment.id.0)
            .fetch_one(&world.db.pool)
            .await
            .unwrap_or_else(|e| panic!("payment {}: {e}", payment.id));
            let expected = (
                text(&payment.status, "s").unwrap_or_default(),
                payment.provider_ref.clone(),
                payment.failure_reason.clone(),
                payment.refund_due,
                micros(payment.updated_at),
            );
            assert_eq!(row, expected, "payment {}", payment.id);
            payments_seen += 1;
        }
    }
    assert!(orders_seen >= 16 && payments_seen >= 12, "{orders_seen} orders, {payments_seen} payments");
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM read.payments WHERE failure_reason IS NOT NULL")
        .fetch_one(&world.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(failed >= 4, "declined payments keep their reason: {failed}");
}

/// A listing's history with every odd case the fold must get right, as the stream would hold it:
/// a cancel and a failure for rows never seen, creation events repeated, an expiry while a
/// payment is under way, the late money and its refund, then a sale to someone else.
fn odd_history() -> (TicketId, Vec<domain::Event>) {
    use domain::testing::{account, at};
    use domain::{CancelReason, Currency, Event, OrderId, PaymentId, Price, Title};
    let ticket = TicketId(uuid::Uuid::new_v4());
    let (o1, o2, o3) =
        (OrderId(uuid::Uuid::from_u128(1)), OrderId(uuid::Uuid::from_u128(2)), OrderId(uuid::Uuid::from_u128(3)));
    let (p0, p1, p3) = (
        PaymentId(uuid::Uuid::from_u128(10)),
        PaymentId(uuid::Uuid::from_u128(11)),
        PaymentId(uuid::Uuid::from_u128(13)),
    );
    let price = Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}"));
    let listed = |title: &str, t| Event::TicketListed {
        ticket_id: ticket,
        seller: account(1),
        title: Title::parse(title).unwrap_or_else(|e| panic!("{e}")),
        price_cents: price,
        currency: Currency::Usd,
        at: at(t),
    };
    let placed = |order_id, buyer, t| Event::OrderPlaced {
        order_id,
        ticket_id: ticket,
        buyer: account(buyer),
        seller: account(1),
        amount_cents: price,
        currency: Currency::Usd,
        idempotency_key: None,
        expires_at: at(900),
        at: at(t),
    };
    let started = |payment_id, order_id, t| Event::PaymentStarted {
        payment_id,
        order_id,
        ticket_id: ticket,
        amount_cents: price,
        currency: Currency::Usd,
        idempotency_key: "k".into(),
        at: at(t),
    };
    let events = vec![
        listed("Opera", 0),
        placed(o1, 2, 1),
        Event::OrderCancelled { order_id: o2, ticket_id: ticket, reason: CancelReason::User, by: None, at: at(2) },
        Event::PaymentFailed { payment_id: p0, order_id: o1, reason: "card_declined".into(), at: at(3) },
        started(p1, o1, 4),
        Event::PaymentPending { payment_id: p1, order_id: o1, provider_ref: "pi_1".into(), at: at(5) },
        listed("Another title", 6),
        placed(o1, 2, 7),
        started(p1, o1, 8),
        Event::OrderCancelled { order_id: o1, ticket_id: ticket, reason: CancelReason::Expired, by: None, at: at(9) },
        Event::LatePaymentReceived { payment_id: p1, order_id: o1, provider_ref: "pi_1".into(), at: at(10) },
        Event::PaymentRefunded { payment_id: p1, order_id: o1, at: at(11) },
        placed(o3, 3, 12),
        started(p3, o3, 13),
        Event::PaymentSucceeded {
            payment_id: p3,
            order_id: o3,
            ticket_id: ticket,
            provider_ref: "pi_3".into(),
            at: at(14),
        },
    ];
    (ticket, events)
}

/// The fold checked against rows written out by hand, and the same wherever the stream is cut
/// into two batches (rows read back from the database in between).
#[tokio::test]
async fn odd_histories_fold_to_the_rows_expected_wherever_batches_are_cut() {
    let world = World::start().await;
    let live = schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let (ticket, events) = odd_history();
    let batch: Vec<Incoming> = events
        .iter()
        .enumerate()
        .map(|(n, event)| Incoming {
            position: u64::try_from(n + 1).unwrap_or(0),
            subject: domain::subjects::listing_event(ticket, event).unwrap_or_else(|| panic!("{event:?}")),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            payload: domain::EventEnvelope::encode(event).unwrap_or_else(|e| panic!("{e}")).into(),
            traceparent: None,
        })
        .collect();
    let projector = world.projector().await;
    let committed = projector.commit(&live, &batch).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(committed.is_some_and(|c| c.parked == 0));
    let pool = &world.db.pool;
    let row = |sql: &'static str| async move {
        sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(
        row("SELECT concat_ws(' ', title, status, holder_order_id, version) FROM read.tickets").await,
        ["Opera SOLD 00000000-0000-0000-0000-000000000003 15"]
    );
    assert_eq!(
        row("SELECT concat_ws(' ', id, status, cancel_reason, payment_id, version) FROM read.orders ORDER BY id").await,
        [
            "00000000-0000-0000-0000-000000000001 CANCELLED EXPIRED 00000000-0000-0000-0000-00000000000b 9",
            "00000000-0000-0000-0000-000000000003 COMPLETE 00000000-0000-0000-0000-00000000000d 3",
        ],
        "no row for the order never placed"
    );
    assert_eq!(
        row("SELECT concat_ws(' ', id, status, provider_ref, refund_due, coalesce(failure_reason, '-')) FROM read.payments ORDER BY id")
            .await,
        [
            "00000000-0000-0000-0000-00000000000b REFUNDED pi_1 f -",
            "00000000-0000-0000-0000-00000000000d SUCCEEDED pi_3 f -",
        ],
        "no row for the payment never started"
    );
    assert_eq!(row("SELECT count(*)::text FROM read.ticket_history").await, ["15"]);
    let whole = dump(pool).await;
    for cut in 1..batch.len() {
        let generation = schema::create_next(pool).await.unwrap_or_else(|e| panic!("{e:#}"));
        read_from(pool, &generation).await;
        for part in [&batch[..cut], &batch[cut..]] {
            let committed = projector.commit(&generation, part).await.unwrap_or_else(|e| panic!("{e:#}"));
            assert!(committed.is_some_and(|c| c.parked == 0), "cut at {cut}");
        }
        assert_same(&whole, &dump(pool).await);
    }
}

/// Every read model of an event says what the domain's fold of the show's stream says: each
/// ticket type's held count, each section's available count, each seat's status and order, each
/// order's status and items.
#[tokio::test]
async fn every_event_row_says_what_the_shows_state_says() {
    use domain::stored::text;
    let mut world = World::start().await;
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    let show_id = world.event_workload().await;
    // Before the holds expire, then after.
    for round in 0..2 {
        if round == 1 {
            // Every order projected first: a hold not projected yet is not an open one to wait for.
            wait_projected(&world.db.pool, world.head().await).await;
            holds_expired(&world.db.pool).await;
            world.quiesce().await;
        } else {
            let head = world.head().await;
            wait_projected(&world.db.pool, head).await;
        }
        let loaded = world
            .service
            .store()
            .load::<domain::Show>(&domain::subjects::show(show_id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let show = loaded.state;
        let info = show.info.clone().unwrap_or_else(|| panic!("created"));
        let event: (String, i32) = sqlx::query_as("SELECT title, version FROM read.events WHERE id = $1")
            .bind(show_id.0)
            .fetch_one(&world.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event, (info.title.as_str().to_owned(), i32::try_from(loaded.history.len()).unwrap_or(0)));
        let held: Vec<(i32, i32)> =
            sqlx::query_as("SELECT held, sold FROM read.ticket_types WHERE event_id = $1 ORDER BY idx")
                .bind(show_id.0)
                .fetch_all(&world.db.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<(i32, i32)> = show
            .ticket_types
            .iter()
            .map(|t| (i32::try_from(t.held).unwrap_or(0), i32::try_from(t.sold).unwrap_or(0)))
            .collect();
        assert_eq!(held, expected, "round {round}");
        let available: Vec<i32> =
            sqlx::query_scalar("SELECT available FROM read.sections WHERE event_id = $1 ORDER BY idx")
                .bind(show_id.0)
                .fetch_all(&world.db.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            available,
            show.sections.iter().map(|s| i32::try_from(s.available).unwrap_or(0)).collect::<Vec<_>>()
        );
        let seats: Vec<(i32, i32, String, Option<uuid::Uuid>)> = sqlx::query_as(
            "SELECT row, number, status, order_id FROM read.seats WHERE event_id = $1 ORDER BY section_idx, row, number",
        )
        .bind(show_id.0)
        .fetch_all(&world.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let section = &show.sections[0];
        assert_eq!(seats.len(), section.seats.len());
        for (index, (status, (row, number, stored, order))) in section.seats.iter().zip(&seats).enumerate() {
            let seat = section.section.seat_at(index);
            assert_eq!((i32::from(seat.row), i32::from(seat.number)), (*row, *number));
            assert_eq!(text(status, "s").ok().as_deref(), Some(stored.as_str()), "{seat} round {round}");
            let holder = show
                .orders
                .values()
                .find(|o| o.status != domain::OrderStatus::Cancelled && o.placed.seats.iter().any(|l| l.seat == seat))
                .map(|o| o.placed.order_id.0);
            assert_eq!(*order, holder, "{seat} round {round}");
        }
        assert!(!show.orders.is_empty());
        let sold: u32 = show.ticket_types.iter().map(|t| t.sold).sum();
        assert!(sold > 0, "a paid order is in the workload: {show:?}");
        for order in show.orders.values() {
            let row: (String, Option<String>, i64, Option<uuid::Uuid>) =
                sqlx::query_as("SELECT status, cancel_reason, amount_cents, event_id FROM read.orders WHERE id = $1")
                    .bind(order.placed.order_id.0)
                    .fetch_one(&world.db.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            let expected = (
                text(&order.status, "s").unwrap_or_default(),
                order.cancel_reason.map(|r| text(&r, "r").unwrap_or_default()),
                order.placed.amount_cents,
                Some(show_id.0),
            );
            assert_eq!(row, expected);
            let items: i64 = sqlx::query_scalar("SELECT count(*) FROM read.order_items WHERE order_id = $1")
                .bind(order.placed.order_id.0)
                .fetch_one(&world.db.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(items, i64::from(order.ticket_count()));
        }
    }
    running.abort();
}

/// Switches the `read` views to `generation`.
async fn read_from(pool: &PgPool, generation: &str) {
    let mut conn = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    schema::switch(&mut conn, generation).await.unwrap_or_else(|e| panic!("{e:#}"));
}

#[tokio::test]
async fn set_based_batches_equal_event_by_event_application() {
    let world = World::start().await;
    world.workload(16).await;
    world.event_workload().await;
    let live = schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = world.service.store().read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    let batch = incoming(&events);
    let projector = world.projector().await;

    // Set-based, the whole stream as one batch.
    projector.commit(&live, &batch).await.unwrap_or_else(|e| panic!("{e:#}"));
    let one_batch = dump(&world.db.pool).await;

    // Set-based in batches of 5, so rows are read back from earlier batches.
    let small = schema::create_next(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    read_from(&world.db.pool, &small).await;
    for chunk in batch.chunks(5) {
        let committed = projector.commit(&small, chunk).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(committed.is_some_and(|c| c.parked == 0));
    }
    assert_same(&one_batch, &dump(&world.db.pool).await);

    // Every event alone, each a batch of one that reads its rows back from the database.
    let reference = schema::create_next(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut tx = world.db.pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(&format!("SET LOCAL search_path TO {reference}"))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut changes = projector::models::Changes::default();
    for stored in &events {
        let applied = projector::models::Applied {
            position: i64::try_from(stored.sequence).unwrap_or(0),
            subject: &stored.subject,
            recorded_at: stored.recorded_at,
            event: &stored.event,
        };
        projector::models::apply(&mut tx, &[applied], &mut changes).await.unwrap_or_else(|e| panic!("{e}"));
    }
    sqlx::query("UPDATE checkpoint SET position = $1")
        .bind(i64::try_from(events.len()).unwrap_or(0))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    read_from(&world.db.pool, &reference).await;
    let per_event = dump(&world.db.pool).await;
    assert!(per_event.iter().any(|(table, rows)| table == "orders" && rows.lines().count() >= 12), "{per_event:?}");
    assert_same(&one_batch, &per_event);
}

#[tokio::test]
async fn applying_the_same_batch_twice_changes_nothing() {
    let world = World::start().await;
    world.workload(8).await;
    schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = world.service.store().read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    let batch = incoming(&events);
    let projector = world.projector().await;
    let first = projector.commit("projection_1", &batch).await.unwrap_or_else(|e| panic!("{e:#}")).unwrap_or_default();
    assert_eq!(first.applied, u64::try_from(batch.len()).unwrap_or(0));
    let once = dump(&world.db.pool).await;
    let second = projector.commit("projection_1", &batch).await.unwrap_or_else(|e| panic!("{e:#}")).unwrap_or_default();
    assert_eq!(second.applied, 0);
    assert_eq!(once, dump(&world.db.pool).await);
    // Half the batch again, overlapping: still nothing.
    projector.commit("projection_1", &batch[batch.len() / 2..]).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(once, dump(&world.db.pool).await);
}

#[tokio::test]
async fn a_crash_between_commit_and_ack_causes_no_double_effect() {
    let mut world = World::start().await;
    world.workload(10).await;
    schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    // Commit the first half through the consumer path, then "crash": nothing is acknowledged.
    let events = world.service.store().read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    let half = incoming(&events[..events.len() / 2]);
    let crashed = world.projector().await;
    crashed.commit("projection_1", &half).await.unwrap_or_else(|e| panic!("{e:#}"));
    drop(crashed);

    // A new projector starts: it must not apply the first half again.
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    world.quiesce().await;
    running.abort();
    let live = dump(&world.db.pool).await;
    rebuild(&world).await;
    assert_same(&live, &dump(&world.db.pool).await);
}

#[tokio::test]
async fn two_replicas_converge_and_the_standby_takes_over() {
    let mut world = World::start().await;
    let (a, b) = (world.projector().await, world.projector().await);
    let first = tokio::spawn(a.clone().run());
    let second = tokio::spawn(b.clone().run());
    world.workload(12).await;
    wait_projected(&world.db.pool, world.head().await).await;

    // Only the leader applies: find it, kill it, and the standby takes over and keeps projecting.
    let applied = |p: &Projector| p.stats().applied.load(std::sync::atomic::Ordering::Relaxed);
    let (led_a, led_b) = (applied(&a), applied(&b));
    assert!((led_a > 0) != (led_b > 0), "exactly one replica projects: {led_a} and {led_b} events applied");
    let (leader, standby, standby_task) = if led_a > 0 { (first, &b, second) } else { (second, &a, first) };
    leader.abort();
    let _ = leader.await;
    let before = applied(standby);
    world.workload(12).await;
    world.quiesce().await;
    assert!(applied(standby) > before, "the standby never took over");
    let applied = a.stats().applied.load(std::sync::atomic::Ordering::Relaxed)
        + b.stats().applied.load(std::sync::atomic::Ordering::Relaxed);
    let parked = a.stats().parked.load(std::sync::atomic::Ordering::Relaxed)
        + b.stats().parked.load(std::sync::atomic::Ordering::Relaxed);
    // At most once each (an abort during the COMMIT round trip can leave a committed batch
    // uncounted); exactly once is proven by the comparison with a rebuild below.
    assert!(
        applied + parked <= world.head().await,
        "{applied} + {parked} events applied for {} in the stream",
        world.head().await
    );
    standby_task.abort();
    let live = dump(&world.db.pool).await;
    rebuild(&world).await;
    assert_same(&live, &dump(&world.db.pool).await);
}

#[tokio::test]
async fn a_poison_event_is_parked_and_the_rest_continues() {
    let world = World::start().await;
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    let seller = world.actor().await;
    // A message on an event subject that no version of the platform can read.
    let ticket = TicketId(uuid::Uuid::new_v4());
    let js = async_nats::jetstream::new(world.nats.client.clone());
    let poison = js
        .publish(
            world.settings.wire_subject(&format!("ticketing.ticket.{ticket}.ticket")),
            r#"{"version":9,"type":"TicketListed","data":{}}"#.into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = world
        .send(Request::new(Command::CreateTicket { title: "After the poison".into(), price_cents: 100 }).by(seller))
        .await;
    assert!(matches!(after, Reply::Ok(_)));
    wait_projected(&world.db.pool, world.head().await).await;

    let parked: Vec<(i64, String)> = sqlx::query_as("SELECT position, error FROM read.parked_events")
        .fetch_all(&world.db.pool)
        .await
        .unwrap_or_default();
    assert_eq!(parked.len(), 1);
    assert_eq!(u64::try_from(parked[0].0).unwrap_or(0), poison.sequence);
    assert!(parked[0].1.contains("newer than this build understands"), "{}", parked[0].1);
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM read.tickets").fetch_all(&world.db.pool).await.unwrap_or_default();
    assert_eq!(titles, ["After the poison"]);
    assert_eq!(projector.stats().parked.load(std::sync::atomic::Ordering::Relaxed), 1);
    running.abort();
}

#[tokio::test]
async fn a_commit_notifies_its_position_and_what_changed() {
    let world = World::start().await;
    let projector = world.projector().await;
    schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut listener = sqlx::postgres::PgListener::connect_with(&world.db.pool).await.unwrap_or_else(|e| panic!("{e}"));
    listener.listen(command_api::notification::CHANNEL).await.unwrap_or_else(|e| panic!("{e}"));
    let running = tokio::spawn(projector.clone().run());
    let seller = world.actor().await;
    let Reply::Ok(created) =
        world.send(Request::new(Command::CreateTicket { title: "Live".into(), price_cents: 100 }).by(seller)).await
    else {
        panic!()
    };
    let Outcome::Ticket { ticket_id, .. } = created.result else { panic!() };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification"))
            .unwrap_or_else(|e| panic!("{e}"));
        let body = command_api::Notification::decode(notification.payload()).unwrap_or_else(|e| panic!("{e}"));
        let position = body.position;
        if body.tickets.contains(&ticket_id) {
            assert!(position >= created.position, "notified at {position}, write at {}", created.position);
            // By the time the notification arrives the row is committed: another connection sees it.
            let title: String = sqlx::query_scalar("SELECT title FROM read.tickets WHERE id = $1")
                .bind(ticket_id.0)
                .fetch_one(&world.db.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(title, "Live");
            break;
        }
        assert!(Instant::now() < deadline);
    }
    running.abort();
}

#[tokio::test]
async fn a_rebuild_under_live_traffic_switches_readers_without_losing_events() {
    let mut world = World::start().await;
    let projector = world.projector().await;
    let running = tokio::spawn(projector.clone().run());
    world.workload(10).await;
    wait_projected(&world.db.pool, world.head().await).await;
    // Traffic continues while the rebuild runs and switches.
    let (report, ()) = tokio::join!(rebuild(&world), world.workload(10));
    assert_eq!(report.schema, "projection_2");
    world.quiesce().await;
    let live = dump(&world.db.pool).await;
    running.abort();
    rebuild(&world).await;
    assert_same(&live, &dump(&world.db.pool).await);
}

#[tokio::test]
async fn a_batch_that_does_not_continue_from_the_checkpoint_is_refused_and_changes_nothing() {
    let mut world = World::start().await;
    world.workload(4).await;
    world.stop_commands().await;
    let live = schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = world.service.store().read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    let batch = incoming(&events);
    let projector = world.projector().await;
    projector.commit(&live, &batch[..3]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let before = dump(&world.db.pool).await;

    // A position is missing, at the start of the batch or inside it: nothing of it is applied.
    for (gapped, missing) in [(batch[4..8].to_vec(), 3), ([&batch[..4], &batch[5..8]].concat(), 4)] {
        let error = projector.commit(&live, &gapped).await.err().unwrap_or_else(|| panic!("a gap was applied"));
        let projector::ProjectorError::Gap(gap) = error else { panic!("not a gap: {error}") };
        assert_eq!(gap.expected, batch[missing].position, "{gap}");
        assert_eq!(projected(&world.db.pool).await, batch[2].position, "the checkpoint did not move");
        assert_same(&before, &dump(&world.db.pool).await);
    }
    projector.commit(&live, &batch[3..]).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(projected(&world.db.pool).await, batch[batch.len() - 1].position);
}

#[tokio::test]
async fn a_rebuild_never_announces_a_position_that_readers_cannot_see_yet() {
    let mut world = World::start().await;
    world.workload(12).await;
    world.stop_commands().await;
    // The live generation is behind: half of the stream.
    let live = schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = world.service.store().read("ticketing.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    let batch = incoming(&events);
    let projector = world.projector().await;
    projector.commit(&live, &batch[..batch.len() / 2]).await.unwrap_or_else(|e| panic!("{e:#}"));

    let mut listener = sqlx::postgres::PgListener::connect_with(&world.db.pool).await.unwrap_or_else(|e| panic!("{e}"));
    listener.listen(command_api::notification::CHANNEL).await.unwrap_or_else(|e| panic!("{e}"));
    let client = testkit::connect(&world.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    // Small batches: many commits while replaying into a generation nobody reads yet.
    let rebuilding = projector::rebuild::rebuild(&world.db.pool, client, &world.settings, 5, false);
    let watching = async {
        let mut announced = Vec::new();
        while let Ok(Ok(notification)) = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await {
            let position =
                command_api::Notification::decode(notification.payload()).unwrap_or_else(|e| panic!("{e}")).position;
            // Read-your-writes trusts this: what readers see must already include it.
            let visible = projected(&world.db.pool).await;
            announced.push((position, visible));
        }
        announced
    };
    let (report, announced) = tokio::join!(rebuilding, watching);
    report.unwrap_or_else(|e| panic!("{e:#}"));
    for (position, visible) in &announced {
        assert!(visible >= position, "announced {position} while readers saw {visible}: {announced:?}");
    }
    assert!(announced.len() <= 2, "the replay announced its batches: {announced:?}");
}

/// Appends `tickets` listings with a hold and a cancellation each, straight to the store.
async fn bulk(world: &World, tickets: usize) {
    use domain::testing::at;
    use domain::{AccountId, CancelReason, Currency, Event, OrderId, Price, Title, subjects};
    use event_store::{Append, Guard};
    let store = world.service.store();
    let writes = (0..tickets).map(|_| async move {
        let (ticket, order) = (TicketId(uuid::Uuid::new_v4()), OrderId(uuid::Uuid::new_v4()));
        let price = Price::from_cents(2500).unwrap_or_else(|e| panic!("{e}"));
        let events = [
            Event::TicketListed {
                ticket_id: ticket,
                seller: AccountId(uuid::Uuid::nil()),
                title: Title::parse("Bulk").unwrap_or_else(|e| panic!("{e}")),
                price_cents: price,
                currency: Currency::Usd,
                at: at(0),
            },
            Event::OrderPlaced {
                order_id: order,
                ticket_id: ticket,
                buyer: AccountId(uuid::Uuid::from_u128(1)),
                seller: AccountId(uuid::Uuid::nil()),
                amount_cents: price,
                currency: Currency::Usd,
                idempotency_key: None,
                expires_at: at(900),
                at: at(1),
            },
            Event::OrderCancelled {
                order_id: order,
                ticket_id: ticket,
                reason: CancelReason::User,
                by: None,
                at: at(2),
            },
        ];
        let mut version = 0;
        for event in &events {
            let subject = subjects::listing_event(ticket, event).unwrap_or_default();
            let guard = Guard::boundary(subjects::listing(ticket), version);
            version = store
                .append(Append { subject, event, guard, msg_id: uuid::Uuid::new_v4().to_string() })
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .sequence;
        }
    });
    use futures::StreamExt as _;
    futures::stream::iter(writes).buffer_unordered(32).collect::<Vec<()>>().await;
}

struct ProjectorProcess(tokio::process::Child);

impl ProjectorProcess {
    fn start(world: &World) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_projector"))
            .env("DATABASE_URL", &world.db.url)
            .env("NATS_URL", &world.nats.url)
            .env("STREAM_NAME", &world.settings.name)
            .env("SUBJECT_ROOT", &world.settings.subject_root)
            .env("PROJECTOR_BATCH_MAX", "50")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the projector: {e}"));
        Self(child)
    }

    async fn kill(mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

#[tokio::test]
async fn a_projector_killed_with_sigkill_mid_stream_resumes_without_double_effects() {
    let mut world = World::start().await;
    schema::ensure_live(&world.db.pool).await.unwrap_or_else(|e| panic!("{e:#}"));
    bulk(&world, 600).await;
    world.stop_commands().await;
    let head = world.head().await;

    let first = ProjectorProcess::start(&world);
    // Kill it once it is part-way through the stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while projected(&world.db.pool).await == 0 {
        assert!(Instant::now() < deadline, "the projector never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().await;
    let at_kill = projected(&world.db.pool).await;
    assert!(at_kill < head, "the kill came after the last batch ({at_kill} of {head}): nothing was left to resume");

    let second = ProjectorProcess::start(&world);
    wait_projected(&world.db.pool, head).await;
    second.kill().await;
    let live = dump(&world.db.pool).await;
    rebuild(&world).await;
    assert_same(&live, &dump(&world.db.pool).await);
}

/// Migration 0003 scales every order's position by 1024 (orders placed together share a
/// message) without colliding on the unique index: before the fix, an order at 5 became 5120
/// while another still held 5120, and the projector could not start on an old database.
#[tokio::test]
async fn the_order_position_migration_scales_old_rows_without_colliding() {
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut conn = db.pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "CREATE SCHEMA projection_9",
        "SET search_path TO projection_9",
        include_str!("../migrations/0001_read_models.sql"),
        include_str!("../migrations/0002_payment_state.sql"),
    ] {
        sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for position in [5_i64, 5120] {
        sqlx::query(
            "INSERT INTO orders (id, ticket_id, buyer_id, seller_id, amount_cents, currency, status, expires_at,
                                 version, created_at, updated_at, created_position, position)
             VALUES ($1, $1, $1, $1, 100, 'USD', 'CREATED', now(), 1, now(), now(), $2, $2)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(position)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    sqlx::raw_sql(include_str!("../migrations/0003_events.sql"))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("migration 0003 on old rows: {e}"));
    let positions: Vec<i64> = sqlx::query_scalar("SELECT created_position FROM orders ORDER BY 1")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(positions, [5 * 1024, 5120 * 1024]);
}

/// A defect found in review: a projector that took over (or restarted) with nothing new to project
/// counted itself at position 0, behind the whole stream, so its watchdog called it wedged a
/// minute later and its orchestrator restarted it, again and again. It starts where its
/// checkpoint is.
#[tokio::test]
async fn a_projector_that_takes_over_a_caught_up_projection_knows_where_it_stands() {
    let mut world = World::start().await;
    let first = world.projector().await;
    let running = tokio::spawn(first.clone().run());
    world.workload(2).await;
    world.quiesce().await;
    running.abort();
    let _ = running.await;
    let head = world.head().await;
    assert!(head > 0);

    // A fresh one (the standby taking over): nothing new arrives.
    let second = world.projector().await;
    let stats = second.stats().clone();
    let running = tokio::spawn(second.run());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stats.leading.load(std::sync::atomic::Ordering::Relaxed)
        || stats.position.load(std::sync::atomic::Ordering::Relaxed) == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new projector did not take the lead at its checkpoint (position {})",
            stats.position.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stats.position.load(std::sync::atomic::Ordering::Relaxed), head, "caught up, not at 0");
    running.abort();
}
