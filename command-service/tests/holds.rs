//! Holds at the edges: idempotency keys reused and retried, early firings, slots that must keep
//! counting until their hold is closed, and all of it with two replicas.

mod common;

use std::time::{Duration, Instant};

use command_service::api::{Command, Failure, Outcome, Reply, Request};
use command_service::{CommandError, Refused};
use common::System;
use domain::{
    CancelReason, ErrorCode, Event, ListingError, OrderId, OrderStatus, PaymentError, TicketId, TicketStatus, subjects,
};
use futures::future::join_all;

fn create_order(ticket_id: TicketId) -> Command {
    Command::CreateOrder { ticket_id }
}

fn key_conflict(failure: &Failure) -> bool {
    failure.code == ErrorCode::Conflict && failure.field.as_deref() == Some("idempotencyKey")
}

/// When the order was cancelled by its expiry, from the stream.
async fn expired_at(system: &System, ticket: TicketId, order: OrderId) -> Option<time::OffsetDateTime> {
    system.loaded_listing(ticket).await.history.iter().find_map(|e| match &e.event {
        Event::OrderCancelled { order_id, reason: CancelReason::Expired, .. } if *order_id == order => {
            Some(e.recorded_at)
        }
        _ => None,
    })
}

async fn wait_for_slots(system: &System, buyer: domain::AccountId, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let slots = system.account(buyer).await.state.hold_slots.len();
        if slots == count {
            return;
        }
        assert!(Instant::now() < deadline, "the buyer holds {slots} slots, not {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_key_on_a_second_ticket_is_a_conflict_on_the_key_and_holds_nothing() {
    let system = System::start_with(|c| c.order_hold_seconds = 2).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let (t1, t2) = (system.ticket(seller, 100).await, system.ticket(seller, 200).await);
    let first = system.ok(Request::new(create_order(t1)).by(buyer).with_key("k")).await;
    let Outcome::Order { order_id, expires_at, .. } = first.result else { panic!("{first:?}") };

    let failure = system.fail(Request::new(create_order(t2)).by(buyer).with_key("k")).await;
    assert!(key_conflict(&failure), "{failure:?}");
    assert!(system.listing(t2).await.orders.is_empty(), "nothing written for the second ticket");
    assert_eq!(system.account(buyer.id).await.state.hold_slots.len(), 1);

    // The same request again is the first result; the first hold expires on time.
    let again = system.ok(Request::new(create_order(t1)).by(buyer).with_key("k")).await;
    assert_eq!(again.result, first.result);
    system.wait_for_listing(t1, Duration::from_secs(6), |l| l.orders[&order_id].status == OrderStatus::Cancelled).await;
    let at = expired_at(&system, t1, order_id).await.unwrap_or_else(|| panic!("not expired"));
    assert!(at >= expires_at && at - expires_at <= time::Duration::seconds(2), "expired at {at}, due {expires_at}");
    wait_for_slots(&system, buyer.id, 0, Duration::from_secs(3)).await;
}

/// Asks one particular service instance (not the queue group), as a replica would be asked.
async fn direct(service: &command_service::Service, request: Request) -> Reply {
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    service.answer(request.command.name(), &payload).await
}

#[tokio::test]
async fn a_retry_with_the_same_key_after_a_lost_race_expires_at_its_own_time() {
    let system = System::start_with(|c| c.order_hold_seconds = 3).await;
    // A second replica, asked directly: its cached listing goes stale when the first one writes.
    let client = testkit::connect(&system.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let stale = command_service::Service::connect(system.config.clone(), client, None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let (seller, first, buyer) = (system.user("seller").await, system.user("first").await, system.user("buyer").await);
    let listed =
        direct(&stale, Request::new(Command::CreateTicket { title: "Opera".into(), price_cents: 100 }).by(seller))
            .await;
    let Reply::Ok(listed) = listed else { panic!("{listed:?}") };
    let Outcome::Ticket { ticket_id: ticket, .. } = listed.result else { panic!("{listed:?}") };
    let taken = system.order(first, ticket).await;

    // The buyer's replica still sees the ticket available: it claims a slot, then loses the race.
    let lost = direct(&stale, Request::new(create_order(ticket)).by(buyer).with_key("page-1")).await;
    assert!(matches!(&lost, Reply::Error(f) if f.code == ErrorCode::Conflict), "{lost:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    system
        .ok(Request::new(Command::CancelOrder { order_id: taken, ticket_id: Some(ticket), event_id: None }).by(first))
        .await;
    let retry = system.ok(Request::new(create_order(ticket)).by(buyer).with_key("page-1")).await;
    let Outcome::Order { order_id, expires_at, .. } = retry.result else { panic!("{retry:?}") };

    // Past the lost attempt's expiry time the hold is still open; at its own time it expires.
    system
        .wait_for_listing(ticket, Duration::from_secs(8), |l| l.orders[&order_id].status == OrderStatus::Cancelled)
        .await;
    let at = expired_at(&system, ticket, order_id).await.unwrap_or_else(|| panic!("not expired"));
    assert!(at >= expires_at, "expired early: {at} < {expires_at}");
    assert!(at - expires_at <= time::Duration::seconds(2), "expired {} late", at - expires_at);
    assert_eq!(system.listing(ticket).await.ticket.map(|t| t.status), Some(TicketStatus::Available));
    wait_for_slots(&system, buyer.id, 0, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn an_early_firing_neither_expires_the_hold_nor_frees_its_slot() {
    let system = System::start_with(|c| c.order_hold_seconds = 3).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 100).await;
    let ok = system.ok(Request::new(create_order(ticket)).by(buyer)).await;
    let Outcome::Order { order_id, expires_at, .. } = ok.result else { panic!("{ok:?}") };

    // A firing that claims the hold is due already (a stale schedule, a clock ahead).
    let due = serde_json::json!({
        "ticket_id": ticket, "order_id": order_id, "buyer": buyer.id,
        "expires_at": "2020-01-01T00:00:00Z",
    });
    let subject = system.service.store().settings().wire_subject(&subjects::expiry_firing(ticket, order_id));
    let js = async_nats::jetstream::new(system.nats.client.clone());
    let ack = js.publish(subject, due.to_string().into()).await.unwrap_or_else(|e| panic!("{e}"));
    let firing = ack.await.unwrap_or_else(|e| panic!("{e}")).sequence;

    // The early firing is delivered well before the hold's own one can exist (that one is only
    // published at `expires_at`)...
    let timers = js.get_stream(system.service.store().settings().timers_name()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut expiry = timers
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("command-service-expiry")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    while expiry.info().await.unwrap_or_else(|e| panic!("{e}")).delivered.stream_sequence < firing {
        let left = expires_at - time::OffsetDateTime::now_utc();
        assert!(left > time::Duration::milliseconds(500), "the early firing was not delivered before the hold's own");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and from then until the hold's own expiry, the hold stays open and its slot keeps
    // counting. (The slot is read first: an expiry gives it back only after cancelling, so a slot
    // gone while the order still reads open would have left early.)
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let slots = system.account(buyer.id).await.state.hold_slots.len();
        if system.listing(ticket).await.orders[&order_id].status == OrderStatus::Cancelled {
            break;
        }
        assert_eq!(slots, 1, "the slot still counts while the hold is open");
        assert!(Instant::now() < deadline, "the hold never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at = expired_at(&system, ticket, order_id).await.unwrap_or_else(|| panic!("not expired"));
    assert!(at >= expires_at, "expired early: {at} < {expires_at}");
    wait_for_slots(&system, buyer.id, 0, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_pay_key_reused_with_another_token_or_order_is_a_conflict_and_charges_nothing() {
    let system = System::start().await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let (t1, t2) = (system.ticket(seller, 100).await, system.ticket(seller, 200).await);
    let (o1, o2) = (system.order(buyer, t1).await, system.order(buyer, t2).await);
    let pay = |order_id, token: &str| {
        Request::new(Command::PayOrder { order_id, ticket_id: None, event_id: None, token: token.into() })
            .by(buyer)
            .with_key("pay-1")
    };
    let declined = system.fail(pay(o1, "tok_chargeDeclined")).await;
    assert_eq!(declined.code, ErrorCode::PaymentDeclined);
    assert!(declined.position.is_some(), "the declined payment was written: {declined:?}");
    assert!(key_conflict(&system.fail(pay(o1, "tok_visa")).await), "same key, other token");
    assert!(key_conflict(&system.fail(pay(o2, "tok_chargeDeclined")).await), "same key, other order");
    assert_eq!(system.fail(pay(o1, "tok_chargeDeclined")).await.code, ErrorCode::PaymentDeclined, "first result");
    // In process, the same answers name their rules, and the declined one where it was written.
    assert_eq!(system.refused(pay(o1, "tok_visa")).await, Refused::IdempotencyKeyReused);
    match system.service.handle(pay(o1, "tok_chargeDeclined")).await {
        Err(CommandError::Refused {
            why: Refused::Listing(ListingError::Payment(PaymentError::Declined)),
            written_at,
        }) => {
            assert_eq!(written_at, Some(system.loaded_listing(t1).await.last_sequence));
        }
        other => panic!("a replayed decline is the domain's Declined, got {other:?}"),
    }
    assert!(system.listing(t2).await.payments.is_empty());
    assert_eq!(system.listing(t1).await.payments.len(), 1);
    // A key used for a hold names that hold only.
    assert!(key_conflict(&system.fail(Request::new(create_order(t1)).by(buyer).with_key("pay-1")).await));
}

#[tokio::test]
async fn one_key_raced_over_two_tickets_and_two_replicas_names_one_hold() {
    let system = System::start_with(|c| c.order_hold_seconds = 3).await;
    let (stop, replica, _) = system.replica().await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let (t1, t2) = (system.ticket(seller, 100).await, system.ticket(seller, 200).await);
    let requests = (0..40).map(|i| {
        let ticket = if i % 2 == 0 { t1 } else { t2 };
        system.send(Request::new(create_order(ticket)).by(buyer).with_key("raced"))
    });
    let replies = join_all(requests).await;
    let mut orders: Vec<(OrderId, TicketId)> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Ok(ok) => match ok.result {
                Outcome::Order { order_id, ticket_id, .. } => Some((order_id, ticket_id)),
                _ => None,
            },
            Reply::Error(f) => {
                assert!(key_conflict(f), "{f:?}");
                None
            }
        })
        .collect();
    orders.dedup();
    assert_eq!(orders.len(), 1, "one order for every success: {orders:?}");
    let (order_id, ticket) = orders[0];
    let other = if ticket == t1 { t2 } else { t1 };
    assert!(system.listing(other).await.orders.is_empty());
    assert_eq!(system.listing(ticket).await.orders.len(), 1);
    assert_eq!(system.account(buyer.id).await.state.hold_slots.len(), 1);
    system
        .wait_for_listing(ticket, Duration::from_secs(8), |l| l.orders[&order_id].status == OrderStatus::Cancelled)
        .await;
    wait_for_slots(&system, buyer.id, 0, Duration::from_secs(3)).await;
    let _ = stop.send(());
    let _ = replica.await;
}

#[tokio::test]
async fn a_hold_placed_right_before_its_process_dies_is_still_armed_and_expires() {
    // The in-process service claims and holds, and is stopped at once (as a crash would); the
    // expiry is armed from the stored claim by whichever instance runs next.
    let mut system = System::start_with(|c| c.order_hold_seconds = 2).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 100).await;
    let order_id = system.order(buyer, ticket).await;
    system.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(system.listing(ticket).await.orders[&order_id].status, OrderStatus::Created, "nobody expired it");
    system.restart().await;
    system
        .wait_for_listing(ticket, Duration::from_secs(5), |l| l.orders[&order_id].status == OrderStatus::Cancelled)
        .await;
    wait_for_slots(&system, buyer.id, 0, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn buyers_racing_for_a_held_ticket_share_its_loads_and_see_it_freed_at_once() {
    let system = System::start().await;
    let (seller, holder, racer) =
        (system.user("seller").await, system.user("holder").await, system.user("racer").await);
    let ticket = system.ticket(seller, 100).await;
    let held = system.ok(Request::new(create_order(ticket)).by(holder)).await;
    let Outcome::Order { order_id, .. } = held.result else { panic!("{held:?}") };

    // 300 holds of a held ticket at once: every one refused, from far fewer reads of the stream.
    let (asked, reads) = system.service.listing_loads();
    let racing = (0..300).map(|_| system.service.handle(Request::new(create_order(ticket)).by(racer)));
    for refused in join_all(racing).await {
        match refused {
            Err(CommandError::Refused { why, .. }) => {
                assert_eq!(why, Refused::from(domain::OrderError::TicketUnavailable));
            }
            other => panic!("a hold of a held ticket: {other:?}"),
        }
    }
    let (asked, reads) = (system.service.listing_loads().0 - asked, system.service.listing_loads().1 - reads);
    assert_eq!(asked, 300, "every refusal came from a fresh load");
    assert!(reads <= 2, "300 loads arriving together made {reads} reads");
    assert_eq!(system.account(racer.id).await.state.hold_slots.len(), 0, "refused before any slot was claimed");

    // Freed through another replica (this one's cached state still says held): holds that ask
    // after the cancellation answered see it, while the seller's own holds (refused from fresh
    // loads) keep this replica loading the listing. (That no load is answered by a read begun
    // before it is shown deterministically by the unit test in `shared_loads.rs`.)
    let (stop, replica_task, replica) = system.replica().await;
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spam = tokio::spawn({
        let (service, busy) = (system.service.clone(), std::sync::Arc::clone(&busy));
        async move {
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                let own = (0..8).map(|_| service.handle(Request::new(create_order(ticket)).by(seller)));
                for refused in join_all(own).await {
                    assert!(refused.is_err(), "a seller held their own ticket");
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancel = Request::new(Command::CancelOrder { order_id, ticket_id: Some(ticket), event_id: None }).by(holder);
    replica.handle(cancel).await.unwrap_or_else(|e| panic!("cancel: {e}"));
    let after = (0..20).map(|_| system.service.handle(Request::new(create_order(ticket)).by(racer)));
    let won = join_all(after).await.into_iter().filter(Result::is_ok).count();
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    spam.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(won, 1, "holds asked after the ticket was freed were refused from an older read");
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders.values().filter(|o| o.status == OrderStatus::Created).count(), 1, "{listing:?}");
    let _ = stop.send(());
    let _ = replica_task.await;
}
