//! The event store against a real JetStream server.

use std::time::Duration;

use domain::testing::{account, at};
use domain::{
    Account, Currency, Email, Event, Listing, OrderId, OrderStatus, Price, TicketId, TicketStatus, Title, subjects,
};
use event_store::{Append, AppendError, EventStore, Guard, StoreError, StreamSettings};
use futures::future::join_all;
use uuid::Uuid;

async fn store() -> anyhow::Result<(testkit::TestNats, EventStore)> {
    let nats = testkit::nats().await?;
    let settings = StreamSettings::isolated(nats.stream.clone(), nats.root.clone());
    let store = EventStore::connect(nats.client.clone(), &settings).await?;
    Ok((nats, store))
}

fn listed(ticket: TicketId) -> Event {
    Event::TicketListed {
        ticket_id: ticket,
        seller: account(1),
        title: Title::parse("Opera night").unwrap_or_else(|e| panic!("{e}")),
        price_cents: Price::from_cents(2500).unwrap_or_else(|e| panic!("{e}")),
        currency: Currency::Usd,
        at: at(0),
    }
}

fn placed(ticket: TicketId, order: OrderId, buyer: u128) -> Event {
    Event::OrderPlaced {
        order_id: order,
        ticket_id: ticket,
        buyer: account(buyer),
        seller: account(1),
        amount_cents: Price::from_cents(2500).unwrap_or_else(|e| panic!("{e}")),
        currency: Currency::Usd,
        idempotency_key: None,
        expires_at: at(900),
        at: at(1),
    }
}

fn append_to_listing<'a>(ticket: TicketId, event: &'a Event, version: u64, msg_id: &str) -> Append<'a> {
    Append {
        subject: subjects::listing_event(ticket, event).unwrap_or_default(),
        event,
        guard: Guard::boundary(subjects::listing(ticket), version),
        msg_id: msg_id.to_owned(),
    }
}

fn new_ticket() -> TicketId {
    TicketId(Uuid::new_v4())
}

#[tokio::test]
async fn appended_events_load_back_as_the_aggregate_with_its_version() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let ticket = new_ticket();
    let order = OrderId(Uuid::new_v4());

    let empty = store.load::<Listing>(&subjects::listing(ticket)).await?;
    assert_eq!((empty.last_sequence, empty.state.ticket.is_none()), (0, true));

    let first = store.append(append_to_listing(ticket, &listed(ticket), 0, "list-1")).await?;
    let hold = placed(ticket, order, 2);
    let second = store.append(append_to_listing(ticket, &hold, first.sequence, "hold-1")).await?;
    assert!(second.sequence > first.sequence);
    assert!(!first.replayed && !second.replayed);

    let loaded = store.load::<Listing>(&subjects::listing(ticket)).await?;
    assert_eq!(loaded.last_sequence, second.sequence);
    assert_eq!(loaded.history.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), vec![listed(ticket), hold]);
    assert_eq!(loaded.history[1].subject, format!("ticketing.ticket.{ticket}.order.{order}"));
    assert_eq!(loaded.state.ticket.as_ref().map(|t| t.status), Some(TicketStatus::Reserved));
    assert_eq!(loaded.state.orders[&order].status, OrderStatus::Created);

    // Other aggregates are not in this boundary.
    let other = store.load::<Listing>(&subjects::listing(new_ticket())).await?;
    assert_eq!(other.last_sequence, 0);
    Ok(())
}

#[tokio::test]
async fn a_long_history_loads_completely_across_batches() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let who = account(u128::from_be_bytes(*Uuid::new_v4().as_bytes()));
    let email = Email::parse("many@example.com").unwrap_or_else(|e| panic!("{e}"));
    let registered = Event::AccountRegistered { account_id: who, email, password_hash: "h".into(), at: at(0) };
    let mut version = store
        .append(Append {
            subject: subjects::account(who),
            event: &registered,
            guard: Guard::subject(0),
            msg_id: "r".into(),
        })
        .await?
        .sequence;
    for n in 0..1200u32 {
        let event = Event::SessionRevoked {
            account_id: who,
            session_id: domain::SessionId(Uuid::new_v4()),
            expires_at: at(100),
            at: at(i64::from(n)),
        };
        let guard = Guard::subject(version);
        version = store
            .append(Append { subject: subjects::account(who), event: &event, guard, msg_id: format!("s{n}") })
            .await?
            .sequence;
    }
    let loaded = store.load::<Account>(&subjects::account(who)).await?;
    assert_eq!(loaded.history.len(), 1201);
    assert_eq!(loaded.last_sequence, version);
    assert_eq!(loaded.state.revoked_sessions.len(), 1200);
    Ok(())
}

#[tokio::test]
async fn of_fifty_concurrent_holds_on_one_version_exactly_one_is_stored() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let ticket = new_ticket();
    let version = store.append(append_to_listing(ticket, &listed(ticket), 0, "list")).await?.sequence;

    let holds: Vec<(OrderId, Event)> = (0..50u128)
        .map(|n| {
            let order = OrderId(Uuid::new_v4());
            (order, placed(ticket, order, 100 + n))
        })
        .collect();
    let results = join_all(holds.iter().map(|(order, event)| {
        let store = store.clone();
        async move { store.append(append_to_listing(ticket, event, version, &order.to_string())).await }
    }))
    .await;

    let won = results.iter().filter(|r| r.is_ok()).count();
    let conflicts =
        results.iter().filter(|r| matches!(r, Err(AppendError::Conflict { expected }) if *expected == version)).count();
    assert_eq!((won, conflicts), (1, 49), "{results:?}");

    let loaded = store.load::<Listing>(&subjects::listing(ticket)).await?;
    assert_eq!(loaded.history.len(), 2, "exactly one hold is stored");
    assert_eq!(loaded.state.orders.len(), 1);
    Ok(())
}

#[tokio::test]
async fn of_fifty_concurrent_appends_to_one_subject_exactly_one_is_stored() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let who = account(u128::from_be_bytes(*Uuid::new_v4().as_bytes()));
    let events: Vec<Event> = (0..50)
        .map(|n| Event::AccountRegistered {
            account_id: who,
            email: Email::parse(&format!("racer{n}@example.com")).unwrap_or_else(|e| panic!("{e}")),
            password_hash: format!("hash{n}"),
            at: at(0),
        })
        .collect();
    let results = join_all(events.iter().enumerate().map(|(n, event)| {
        let store = store.clone();
        async move {
            store
                .append(Append {
                    subject: subjects::account(who),
                    event,
                    guard: Guard::subject(0),
                    msg_id: format!("reg-{n}"),
                })
                .await
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(AppendError::Conflict { .. }))).count(), 49);
    assert_eq!(store.load::<Account>(&subjects::account(who)).await?.history.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_retried_append_is_stored_once_and_reported_as_success() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let ticket = new_ticket();
    let listed = listed(ticket);
    let first = store.append(append_to_listing(ticket, &listed, 0, "list-once")).await?;

    // The acknowledgement was lost: the same decision is sent again, unchanged.
    let retry = store.append(append_to_listing(ticket, &listed, 0, "list-once")).await?;
    assert_eq!((retry.sequence, retry.replayed), (first.sequence, true));

    // Someone else appended meanwhile; a late retry still finds its own write.
    let order = OrderId(Uuid::new_v4());
    let hold = placed(ticket, order, 2);
    store.append(append_to_listing(ticket, &hold, first.sequence, "hold")).await?;
    let late_retry = store.append(append_to_listing(ticket, &listed, 0, "list-once")).await?;
    assert_eq!((late_retry.sequence, late_retry.replayed), (first.sequence, true));

    // A different decision on the stale version is a real conflict, not a replay.
    let stale = placed(ticket, OrderId(Uuid::new_v4()), 3);
    assert!(matches!(
        store.append(append_to_listing(ticket, &stale, first.sequence, "other")).await,
        Err(AppendError::Conflict { .. })
    ));
    assert_eq!(store.load::<Listing>(&subjects::listing(ticket)).await?.history.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_stream_with_the_wrong_settings_is_refused_with_the_setting_named() -> anyhow::Result<()> {
    let nats = testkit::nats().await?;
    let settings = StreamSettings::isolated(nats.stream.clone(), nats.root.clone());
    let mut wrong = settings.config();
    wrong["max_age"] = serde_json::json!(600_000_000_000u64);
    let created =
        nats.client.request(format!("$JS.API.STREAM.CREATE.{}", settings.name), wrong.to_string().into()).await?;
    assert!(!String::from_utf8_lossy(&created.payload).contains("\"error\""));

    let refused = EventStore::connect(nats.client.clone(), &settings).await;
    match refused {
        Err(StoreError::StreamMismatch { setting, .. }) => assert_eq!(setting, "max_age"),
        other => panic!("expected a stream mismatch, got {other:?}"),
    }

    let mut three_replicas = settings.clone();
    three_replicas.name = format!("{}X", settings.name);
    three_replicas.subject_root = format!("{}x", settings.subject_root);
    three_replicas.replicas = 3;
    assert!(
        EventStore::connect(nats.client.clone(), &three_replicas).await.is_err(),
        "a single server cannot hold 3 replicas"
    );
    Ok(())
}

#[tokio::test]
async fn connecting_twice_accepts_the_stream_it_created() -> anyhow::Result<()> {
    let nats = testkit::nats().await?;
    let settings = StreamSettings::isolated(nats.stream.clone(), nats.root.clone());
    EventStore::connect(nats.client.clone(), &settings).await?;
    EventStore::connect(nats.client.clone(), &settings).await?;
    Ok(())
}

#[tokio::test]
async fn a_message_schedule_fires_on_its_target_and_survives_a_server_crash() -> anyhow::Result<()> {
    let (mut nats, store) = store().await?;
    let ticket = new_ticket();
    let order = OrderId(Uuid::new_v4());
    let fire_at = time::OffsetDateTime::now_utc() + Duration::from_millis(2500);
    store
        .schedule(
            &subjects::expiry_schedule(order),
            &subjects::expiry_firing(ticket, order),
            fire_at,
            bytes::Bytes::from_static(b"{\"order\":1}"),
            &format!("expiry-{order}"),
        )
        .await?;

    // Crash the server before the schedule is due (when the test owns it).
    if let Some(server) = nats.server.as_mut() {
        server.restart().await?;
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let fired = loop {
        match store.read_timers(&subjects::expiry_firing(ticket, order)).await {
            Ok(found) if !found.is_empty() => break found,
            _ if std::time::Instant::now() > deadline => panic!("the schedule never fired"),
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    };
    assert_eq!(fired.len(), 1);
    assert_eq!(&fired[0].payload[..], b"{\"order\":1}");
    assert!(fired[0].time >= fire_at - Duration::from_millis(1), "fired early at {}", fired[0].time);
    Ok(())
}

/// A wide boundary is caught up in one ordered read up to the last sequence the leader knows of
/// (`last_sequence` of a wildcard), from any position; an empty one has 0 and reads nothing.
#[tokio::test]
async fn a_boundary_reads_complete_up_to_the_leaders_last_sequence_from_any_position() -> anyhow::Result<()> {
    let (_nats, store) = store().await?;
    let (ticket, other) = (new_ticket(), new_ticket());
    assert_eq!(store.last_sequence(&subjects::listing(ticket)).await?, 0);
    assert!(store.read_complete(&subjects::listing(ticket), 1).await?.is_empty());
    let first = store.append(append_to_listing(ticket, &listed(ticket), 0, "a")).await?.sequence;
    // Another boundary's messages in between are not part of it.
    store.append(append_to_listing(other, &listed(other), 0, "b")).await?;
    let mut last = first;
    for n in 0..600_u128 {
        let event = placed(ticket, OrderId(Uuid::from_u128(n + 1)), n);
        last = store.append(append_to_listing(ticket, &event, last, &format!("p{n}"))).await?.sequence;
    }
    assert_eq!(store.last_sequence(&subjects::listing(ticket)).await?, last, "a wildcard's last message");
    let all = store.read_complete(&subjects::listing(ticket), 1).await?;
    assert_eq!(all.len(), 601, "across direct-get batches");
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence), "oldest first");
    let tail = store.read_complete(&subjects::listing(ticket), all[599].sequence).await?;
    assert_eq!(tail.iter().map(|e| e.sequence).collect::<Vec<_>>(), [all[599].sequence, last]);
    assert!(store.read_complete(&subjects::listing(ticket), last + 1).await?.is_empty());
    Ok(())
}
