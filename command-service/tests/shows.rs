//! Events (shows) on the command side, against real NATS JetStream: capacity and seats under
//! thousands of simultaneous buyers through two replicas, all-or-nothing orders, expiry and
//! cancellation of multi-item holds, idempotency keys, and the refusals PRODUCT.md names.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use command_service::api::{
    Command, Failure, OrderItemInput, Outcome, Reply, Request, SectionInput, Success, TicketTypeInput,
};
use common::System;
use domain::{
    Actor, CancelReason, ErrorCode, Event, OrderId, OrderStatus, SeatStatus, Show, ShowId, TicketTypeId, subjects,
};
use event_store::{Append, Guard};
use futures::future::join_all;

/// Accounts registered straight in the stream (no password hashing): buyers for the races.
async fn buyers(system: &System, n: usize) -> Vec<Actor> {
    let store = system.service.store();
    join_all((0..n).map(|i| async move {
        let id = domain::AccountId(uuid::Uuid::new_v4());
        let email =
            domain::Email::parse(&format!("buyer{i}-{}@example.com", id.0.simple())).unwrap_or_else(|e| panic!("{e}"));
        let event = Event::AccountRegistered {
            account_id: id,
            email,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            at: time::OffsetDateTime::now_utc(),
        };
        let append =
            Append { subject: subjects::account(id), event: &event, guard: Guard::subject(0), msg_id: id.to_string() };
        store.append(append).await.unwrap_or_else(|e| panic!("{e}"));
        Actor::user(id)
    }))
    .await
}

fn general(name: &str, price_cents: i64, capacity: i64) -> TicketTypeInput {
    TicketTypeInput { name: name.into(), price_cents, capacity }
}

fn section(name: &str, price_cents: i64, rows: i64, seats_per_row: i64) -> SectionInput {
    SectionInput { name: name.into(), price_cents, rows, seats_per_row }
}

fn create_event(ticket_types: Vec<TicketTypeInput>, sections: Vec<SectionInput>) -> Command {
    Command::CreateEvent {
        title: "Rock Arena".into(),
        venue: "Town Hall".into(),
        starts_at: time::OffsetDateTime::now_utc() + time::Duration::days(30),
        ticket_types,
        sections,
    }
}

async fn event(system: &System, organizer: Actor, types: Vec<TicketTypeInput>, sections: Vec<SectionInput>) -> ShowId {
    match system.ok(Request::new(create_event(types, sections)).by(organizer)).await.result {
        Outcome::Event { event_id } => event_id,
        other => panic!("createEvent answered {other:?}"),
    }
}

fn order_on(event_id: ShowId, items: &[(TicketTypeId, i64)], seats: &[&str]) -> Command {
    Command::CreateEventOrder {
        event_id,
        items: items
            .iter()
            .map(|(ticket_type_id, quantity)| OrderItemInput { ticket_type_id: *ticket_type_id, quantity: *quantity })
            .collect(),
        seats: seats.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn placed(success: &Success) -> (OrderId, OrderStatus, i64) {
    match &success.result {
        Outcome::EventOrder { order_id, status, amount_cents, .. } => (*order_id, *status, *amount_cents),
        other => panic!("createEventOrder answered {other:?}"),
    }
}

/// The show as the stream has it (replayed from every event, not this replica's state).
async fn stored(system: &System, show: ShowId) -> (Show, Vec<Event>) {
    let loaded = system.service.store().load::<Show>(&subjects::show(show)).await.unwrap_or_else(|e| panic!("{e}"));
    (loaded.state, loaded.history.into_iter().map(|e| e.event).collect())
}

/// Each seat and the open or complete orders that hold it, from the stream.
fn seat_holders(show: &Show) -> HashMap<String, Vec<OrderId>> {
    let mut holders: HashMap<String, Vec<OrderId>> = HashMap::new();
    for order in show.orders.values().filter(|o| o.status != OrderStatus::Cancelled) {
        for line in &order.placed.seats {
            holders.entry(line.seat.to_string()).or_default().push(order.placed.order_id);
        }
    }
    holders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_buyers_through_two_replicas_hold_a_five_hundred_ticket_type_exactly_and_no_more() {
    let system = System::start_with(|c| c.max_active_holds = 5).await;
    let (_stop, _task, _second) = system.replica().await;
    let organizer = system.user("organizer").await;
    let show = event(&system, organizer, vec![general("Standing", 2_500, 500)], vec![]).await;
    let ga = TicketTypeId::of(show, 0);
    let people = buyers(&system, 2_000).await;

    let started = Instant::now();
    let system = &system;
    let replies = join_all(people.iter().enumerate().map(|(i, buyer)| {
        let quantity = i64::try_from(i % 4 + 1).unwrap_or(1);
        let request = Request::new(order_on(show, &[(ga, quantity)], &[])).by(*buyer);
        async move { (quantity, system.send(request).await) }
    }))
    .await;
    let took = started.elapsed();

    let mut held = 0;
    let mut smallest_refused = i64::MAX;
    for (quantity, reply) in &replies {
        match reply {
            Reply::Ok(success) => {
                let (_, status, amount) = placed(success);
                assert_eq!((status, amount), (OrderStatus::Created, 2_500 * quantity));
                held += quantity;
            }
            Reply::Error(failure) => {
                assert_eq!(failure.code, ErrorCode::Conflict, "{failure:?}");
                assert_eq!(failure.unavailable, vec![ga.to_string()], "{failure:?}");
                smallest_refused = smallest_refused.min(*quantity);
            }
        }
    }
    let (state, _) = stored(system, show).await;
    let stock = &state.ticket_types[0];
    assert_eq!(i64::from(stock.held), held, "the stream holds what was answered");
    assert!(held <= 500, "{held} held of 500");
    // Nothing was ever given back, so each refusal saw fewer left than it asked for, and the end
    // has fewer left than any refusal asked for: with refusals of one ticket, none is left.
    assert!(
        i64::from(stock.available()) < smallest_refused,
        "{} left, a refusal asked {smallest_refused}",
        stock.available()
    );
    assert_eq!(stock.available(), 0, "sold out exactly");
    let orders = state.orders.len();
    eprintln!("2,000 buyers: {orders} orders holding {held} tickets in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_racing_for_a_hundred_overlapping_seat_pairs_never_share_a_seat() {
    let system = System::start().await;
    let (_stop, _task, _second) = system.replica().await;
    let organizer = system.user("organizer").await;
    let show = event(&system, organizer, vec![], vec![section("A", 9_000, 1, 101)]).await;
    let people = buyers(&system, 1_000).await;

    let system = &system;
    let replies = join_all(people.iter().enumerate().map(|(i, buyer)| {
        let first = i % 100 + 1;
        let seats = [format!("A-1-{first}"), format!("A-1-{}", first + 1)];
        let request =
            Request::new(Command::CreateEventOrder { event_id: show, items: vec![], seats: seats.to_vec() }).by(*buyer);
        async move { (seats, system.send(request).await) }
    }))
    .await;

    let mut won: HashMap<String, usize> = HashMap::new();
    for (seats, reply) in &replies {
        match reply {
            Reply::Ok(success) => {
                assert_eq!(placed(success).2, 18_000);
                for seat in seats {
                    *won.entry(seat.clone()).or_default() += 1;
                }
            }
            Reply::Error(failure) => {
                assert_eq!(failure.code, ErrorCode::Conflict, "{failure:?}");
                assert!(!failure.unavailable.is_empty(), "{failure:?}");
                assert!(failure.unavailable.iter().all(|s| seats.contains(s)), "{failure:?} names what it asked for");
            }
        }
    }
    assert!(won.values().all(|n| *n == 1), "a seat answered to two buyers: {won:?}");
    let (state, _) = stored(system, show).await;
    let holders = seat_holders(&state);
    assert!(holders.values().all(|h| h.len() == 1), "a seat in two orders: {holders:?}");
    assert_eq!(holders.len(), won.len(), "the stream holds what was answered");
    // At least every other pair went (each winner blocks at most its two neighbours).
    assert!(won.len() >= 68, "only {} seats held", won.len());
    for (seat, status) in
        state.sections[0].seats.iter().enumerate().map(|(i, s)| (state.sections[0].section.seat_at(i), s))
    {
        assert_eq!(*status == SeatStatus::Reserved, holders.contains_key(&seat.to_string()), "{seat}");
    }
}

#[tokio::test]
async fn an_order_is_all_or_nothing_and_names_everything_that_is_gone() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let (first, second) = (system.user("first").await, system.user("second").await);
    let show = event(
        &system,
        organizer,
        vec![general("Standing", 2_500, 3), general("VIP", 10_000, 1)],
        vec![section("A", 9_000, 2, 3)],
    )
    .await;
    let (ga, vip) = (TicketTypeId::of(show, 0), TicketTypeId::of(show, 1));

    let success = system.ok(Request::new(order_on(show, &[(ga, 2), (vip, 1)], &["A-1-1", "A-2-3"])).by(first)).await;
    let (_, status, amount) = placed(&success);
    assert_eq!((status, amount), (OrderStatus::Created, 2 * 2_500 + 10_000 + 2 * 9_000));
    let before = stored(&system, show).await.1.len();

    let failure = system.fail(Request::new(order_on(show, &[(ga, 1), (vip, 1)], &["A-1-1", "A-1-2"])).by(second)).await;
    assert_eq!(failure.code, ErrorCode::Conflict);
    assert_eq!(failure.unavailable, vec!["A-1-1".to_owned(), vip.to_string()]);
    assert_eq!(stored(&system, show).await.1.len(), before, "nothing was held");
    assert!(system.account(second.id).await.state.hold_slots.is_empty(), "no slot was taken");

    // What is left can be had.
    system.ok(Request::new(order_on(show, &[(ga, 1)], &["A-1-2"])).by(second)).await;
    let (state, _) = stored(&system, show).await;
    assert_eq!((state.ticket_types[0].available(), state.ticket_types[1].available()), (0, 0));
    assert_eq!(state.sections[0].available, 3);
}

#[tokio::test]
async fn bad_orders_are_refused_with_the_code_and_field_and_write_nothing() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let buyer = system.user("buyer").await;
    let show = event(&system, organizer, vec![general("Standing", 2_500, 50)], vec![section("A", 9_000, 2, 3)]).await;
    let ga = TicketTypeId::of(show, 0);
    let unknown_type = TicketTypeId::of(ShowId(uuid::Uuid::new_v4()), 0);
    let cases: Vec<(Command, Actor, ErrorCode, Option<&str>)> = vec![
        (order_on(show, &[], &[]), buyer, ErrorCode::BadUserInput, Some("seats")),
        (order_on(show, &[(ga, 11)], &[]), buyer, ErrorCode::BadUserInput, Some("items")),
        (order_on(show, &[(ga, 9)], &["A-1-1", "A-1-2"]), buyer, ErrorCode::BadUserInput, Some("items")),
        (order_on(show, &[(ga, 0)], &[]), buyer, ErrorCode::BadUserInput, Some("items")),
        (order_on(show, &[], &["A-1-1", "A-1-1"]), buyer, ErrorCode::BadUserInput, Some("seats")),
        (order_on(show, &[(unknown_type, 1)], &[]), buyer, ErrorCode::NotFound, None),
        (order_on(show, &[], &["A-3-1"]), buyer, ErrorCode::NotFound, None),
        (order_on(show, &[], &["nonsense"]), buyer, ErrorCode::NotFound, None),
        (order_on(ShowId(uuid::Uuid::new_v4()), &[(ga, 1)], &[]), buyer, ErrorCode::NotFound, None),
        (order_on(show, &[(ga, 1)], &[]), organizer, ErrorCode::Forbidden, None),
    ];
    for (command, actor, code, field) in cases {
        let failure = system.fail(Request::new(command.clone()).by(actor)).await;
        assert_eq!((failure.code, failure.field.as_deref()), (code, field), "{command:?}: {failure:?}");
    }
    let unsigned = system.fail(Request::new(order_on(show, &[(ga, 1)], &[]))).await;
    assert_eq!(unsigned.code, ErrorCode::Unauthenticated);
    let (state, history) = stored(&system, show).await;
    assert_eq!((history.len(), state.orders.len()), (1, 0), "only the creation is stored");
    assert!(system.account(buyer.id).await.state.hold_slots.is_empty());

    // A bad event names its field as a path, and writes nothing either.
    let failure = system
        .fail(Request::new(create_event(vec![general("A", 100, 5), general("B", 100, 0)], vec![])).by(organizer))
        .await;
    assert_eq!((failure.code, failure.field.as_deref()), (ErrorCode::BadUserInput, Some("ticketTypes.1.capacity")));
    let failure = system.fail(Request::new(create_event(vec![], vec![section("A", 100, 101, 1)])).by(organizer)).await;
    assert_eq!(failure.field.as_deref(), Some("sections.0.rows"));
}

#[tokio::test]
async fn the_same_key_returns_the_first_order_and_the_same_key_with_other_items_is_a_conflict() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let buyer = system.user("buyer").await;
    let show = event(&system, organizer, vec![general("Standing", 2_500, 50)], vec![section("A", 9_000, 2, 3)]).await;
    let ga = TicketTypeId::of(show, 0);
    let request = || Request::new(order_on(show, &[(ga, 2)], &["A-1-1"])).by(buyer).with_key("k-1");

    let answers = join_all((0..5).map(|_| system.send(request()))).await;
    let orders: Vec<OrderId> = answers
        .iter()
        .map(|r| match r {
            Reply::Ok(success) => placed(success).0,
            Reply::Error(failure) => panic!("{failure:?}"),
        })
        .collect();
    assert!(orders.iter().all(|o| *o == orders[0]), "{orders:?}");
    let (state, _) = stored(&system, show).await;
    assert_eq!((state.orders.len(), state.ticket_types[0].available()), (1, 48), "one order, held once");
    assert_eq!(system.account(buyer.id).await.state.hold_slots.len(), 1, "one slot");

    let other = system.fail(Request::new(order_on(show, &[(ga, 3)], &["A-1-1"])).by(buyer).with_key("k-1")).await;
    assert_eq!((other.code, other.field.as_deref()), (ErrorCode::Conflict, Some("idempotencyKey")));
    assert_eq!(stored(&system, show).await.0.orders.len(), 1, "nothing more written");

    // Once the order is closed (its slot given back), the same request again is the order as it
    // is, and still writes nothing: no second hold slot, no new event anywhere.
    let cancel = Command::CancelOrder { order_id: orders[0], ticket_id: None, event_id: Some(show) };
    system.ok(Request::new(cancel).by(buyer)).await;
    assert!(system.account(buyer.id).await.state.hold_slots.is_empty());
    let (account_events, show_events) =
        (system.account(buyer.id).await.history.len(), stored(&system, show).await.1.len());
    let again = system.ok(request()).await;
    assert_eq!((placed(&again).0, placed(&again).1), (orders[0], OrderStatus::Cancelled));
    assert_eq!(system.account(buyer.id).await.history.len(), account_events, "no slot claimed for a replay");
    assert_eq!(stored(&system, show).await.1.len(), show_events);
}

#[tokio::test]
async fn expiry_of_a_multi_item_hold_frees_every_item_and_the_slot() {
    let system = System::start_with(|c| c.order_hold_seconds = 1).await;
    let organizer = system.user("organizer").await;
    let buyer = system.user("buyer").await;
    let show = event(
        &system,
        organizer,
        vec![general("Standing", 2_500, 4), general("VIP", 10_000, 2)],
        vec![section("A", 9_000, 1, 4)],
    )
    .await;
    let (ga, vip) = (TicketTypeId::of(show, 0), TicketTypeId::of(show, 1));
    let success = system.ok(Request::new(order_on(show, &[(ga, 4), (vip, 2)], &["A-1-1", "A-1-4"])).by(buyer)).await;
    let (order, ..) = placed(&success);
    let Outcome::EventOrder { expires_at, .. } = success.result else { panic!() };

    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let (state, _) = stored(&system, show).await;
        if state.orders[&order].status == OrderStatus::Cancelled {
            break state;
        }
        assert!(Instant::now() < deadline, "the hold never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state.orders[&order].cancel_reason, Some(CancelReason::Expired));
    let lateness = time::OffsetDateTime::now_utc() - expires_at;
    assert!(lateness < time::Duration::seconds(3), "expired {lateness} after its time");
    assert_eq!((state.ticket_types[0].available(), state.ticket_types[1].available()), (4, 2));
    assert_eq!(state.sections[0].available, 4);
    let slots_freed = Instant::now() + Duration::from_secs(5);
    while !system.account(buyer.id).await.state.hold_slots.is_empty() {
        assert!(Instant::now() < slots_freed, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything can be had again.
    let again = buyers(&system, 1).await[0];
    system.ok(Request::new(order_on(show, &[(ga, 4), (vip, 2)], &["A-1-1", "A-1-4"])).by(again)).await;
}

#[tokio::test]
async fn the_buyer_or_an_admin_cancels_and_everything_is_freed_at_once() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let (buyer, stranger, admin) = (system.user("buyer").await, system.user("stranger").await, system.admin().await);
    let show = event(&system, organizer, vec![general("Standing", 2_500, 4)], vec![section("A", 9_000, 1, 4)]).await;
    let ga = TicketTypeId::of(show, 0);
    let cancel = |order_id, hint: Option<ShowId>, actor| {
        Request::new(Command::CancelOrder { order_id, ticket_id: None, event_id: hint }).by(actor)
    };

    let (mine, ..) = placed(&system.ok(Request::new(order_on(show, &[(ga, 3)], &["A-1-2"])).by(buyer)).await);
    assert_eq!(system.code(cancel(mine, Some(show), stranger)).await, ErrorCode::Forbidden);
    // Without a hint the order is found by its hold slot.
    let done = system.ok(cancel(mine, None, buyer)).await;
    let Outcome::EventOrder { status, cancel_reason, .. } = done.result else { panic!("{done:?}") };
    assert_eq!((status, cancel_reason), (OrderStatus::Cancelled, Some(CancelReason::User)));
    let (state, _) = stored(&system, show).await;
    assert_eq!((state.ticket_types[0].available(), state.sections[0].available), (4, 4));
    assert!(system.account(buyer.id).await.state.hold_slots.is_empty());
    // Again: returned unchanged, nothing written; found by its own subject now.
    let before = stored(&system, show).await.1.len();
    system.ok(cancel(mine, None, buyer)).await;
    assert_eq!(stored(&system, show).await.1.len(), before);

    let (theirs, ..) = placed(&system.ok(Request::new(order_on(show, &[(ga, 4)], &["A-1-1"])).by(buyer)).await);
    let done = system.ok(cancel(theirs, Some(show), admin)).await;
    let Outcome::EventOrder { cancel_reason, .. } = done.result else { panic!("{done:?}") };
    assert_eq!(cancel_reason, Some(CancelReason::Admin));
    let unknown = OrderId(uuid::Uuid::new_v4());
    assert_eq!(system.code(cancel(unknown, None, admin)).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn one_event_order_takes_one_hold_slot_whatever_its_size() {
    let system = System::start_with(|c| c.max_active_holds = 2).await;
    let organizer = system.user("organizer").await;
    let buyer = system.user("buyer").await;
    let show = event(&system, organizer, vec![general("Standing", 2_500, 100)], vec![]).await;
    let ga = TicketTypeId::of(show, 0);
    system.ok(Request::new(order_on(show, &[(ga, 10)], &[])).by(buyer)).await;
    system.ok(Request::new(order_on(show, &[(ga, 10)], &[])).by(buyer)).await;
    let failure: Failure = system.fail(Request::new(order_on(show, &[(ga, 1)], &[])).by(buyer)).await;
    assert_eq!(failure.code, ErrorCode::Conflict, "{failure:?}");
    assert_eq!(stored(&system, show).await.0.ticket_types[0].available(), 80);
}

#[tokio::test]
async fn the_organiser_or_an_admin_updates_an_event_and_nobody_else() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let (stranger, admin) = (system.user("stranger").await, system.admin().await);
    let show = event(&system, organizer, vec![general("Standing", 2_500, 10)], vec![]).await;
    let update =
        |title: &str| Command::UpdateEvent { event_id: show, title: Some(title.into()), venue: None, starts_at: None };
    assert_eq!(system.code(Request::new(update("Mine")).by(stranger)).await, ErrorCode::Forbidden);
    system.ok(Request::new(update("  Jazz Night ")).by(organizer)).await;
    system.ok(Request::new(update("Jazz Night II")).by(admin)).await;
    let (state, _) = stored(&system, show).await;
    assert_eq!(state.info.map(|i| i.title.as_str().to_owned()).as_deref(), Some("Jazz Night II"));
    let past = Command::UpdateEvent {
        event_id: show,
        title: None,
        venue: None,
        starts_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
    };
    let failure = system.fail(Request::new(past).by(organizer)).await;
    assert_eq!((failure.code, failure.field.as_deref()), (ErrorCode::BadUserInput, Some("startsAt")));
    let unknown = Command::UpdateEvent {
        event_id: ShowId(uuid::Uuid::new_v4()),
        title: Some("x".into()),
        venue: None,
        starts_at: None,
    };
    assert_eq!(system.code(Request::new(unknown).by(organizer)).await, ErrorCode::NotFound);
}

fn payment_of(success: &Success) -> (domain::PaymentId, domain::PaymentStatus, Option<String>, i64) {
    match &success.result {
        Outcome::Payment { payment_id, status, provider_ref, amount_cents, .. } => {
            (*payment_id, *status, provider_ref.clone(), *amount_cents)
        }
        other => panic!("payOrder answered {other:?}"),
    }
}

/// An event order's webhook: the order's id only in its metadata, as PRODUCT.md's format has it.
fn webhook(id: &str, kind: &str, provider_ref: &str, order: OrderId, amount: i64) -> String {
    serde_json::json!({
        "id": id,
        "type": kind,
        "data": { "object": { "id": provider_ref, "amount": amount, "currency": "usd", "metadata": { "order_id": order.to_string() } } }
    })
    .to_string()
}

#[tokio::test]
async fn paying_an_event_order_sells_every_item_once_and_a_declined_card_may_try_again() {
    let system = System::start().await;
    let organizer = system.user("organizer").await;
    let buyer = system.user("buyer").await;
    let show = event(
        &system,
        organizer,
        vec![general("Standing", 2_500, 5), general("VIP", 10_000, 2)],
        vec![section("A", 9_000, 1, 3)],
    )
    .await;
    let (ga, vip) = (TicketTypeId::of(show, 0), TicketTypeId::of(show, 1));
    let (order, ..) =
        placed(&system.ok(Request::new(order_on(show, &[(ga, 2), (vip, 2)], &["A-1-2"])).by(buyer)).await);
    let pay = |token: &str| Command::PayOrder { order_id: order, ticket_id: None, event_id: None, token: token.into() };

    let failure = system.fail(Request::new(pay("tok_chargeDeclined")).by(buyer)).await;
    assert_eq!(failure.code, ErrorCode::PaymentDeclined);
    assert_eq!(stored(&system, show).await.0.orders[&order].status, OrderStatus::Created, "the buyer may retry");
    let stranger = system.user("stranger").await;
    assert_eq!(system.code(Request::new(pay("tok_visa")).by(stranger)).await, ErrorCode::Forbidden);

    let (payments, charges) = (10, system.provider.charges());
    let answers =
        join_all((0..payments).map(|_| system.send(Request::new(pay("tok_visa")).by(buyer).with_key("pay-1")))).await;
    for answer in &answers {
        let Reply::Ok(success) = answer else { panic!("{answer:?}") };
        let (_, status, _, amount) = payment_of(success);
        assert_eq!((status, amount), (domain::PaymentStatus::Succeeded, 2 * 2_500 + 2 * 10_000 + 9_000));
    }
    assert_eq!(system.provider.charges(), charges + 1, "ten requests with one key charge once");
    let (state, _) = stored(&system, show).await;
    assert_eq!(state.orders[&order].status, OrderStatus::Complete);
    assert_eq!((state.ticket_types[0].sold, state.ticket_types[0].held, state.ticket_types[1].available()), (2, 0, 0));
    assert_eq!(state.seat_status(&"A-1-2".parse().unwrap_or_else(|e| panic!("{e}"))), Some(SeatStatus::Sold));
    assert!(system.account(buyer.id).await.state.hold_slots.is_empty(), "a paid order gives its slot back");
    // Paid: it cannot be cancelled, and never expires.
    let cancel = Command::CancelOrder { order_id: order, ticket_id: None, event_id: Some(show) };
    assert_eq!(system.code(Request::new(cancel).by(buyer)).await, ErrorCode::Conflict);
    assert_eq!(system.code(Request::new(pay("tok_visa")).by(buyer)).await, ErrorCode::Conflict);
}

#[tokio::test]
async fn an_asynchronous_payment_of_an_event_order_completes_by_webhook_and_late_money_goes_back() {
    let system = System::start_with(|c| c.order_hold_seconds = 2).await;
    let organizer = system.user("organizer").await;
    let (buyer, late) = (system.user("buyer").await, system.user("late").await);
    let show = event(&system, organizer, vec![general("Standing", 2_500, 5)], vec![section("A", 9_000, 1, 3)]).await;
    let ga = TicketTypeId::of(show, 0);
    let pay = |order_id| Command::PayOrder { order_id, ticket_id: None, event_id: None, token: "tok_async".into() };

    // Settled by its webhook while the hold is open.
    let (order, ..) = placed(&system.ok(Request::new(order_on(show, &[(ga, 1)], &["A-1-1"])).by(buyer)).await);
    let (payment, status, provider_ref, amount) = payment_of(&system.ok(Request::new(pay(order)).by(buyer)).await);
    assert_eq!(status, domain::PaymentStatus::Pending);
    assert_eq!(stored(&system, show).await.0.orders[&order].status, OrderStatus::AwaitingPayment);
    let provider_ref = provider_ref.unwrap_or_default();
    // A webhook with another amount is refused.
    let wrong = webhook("evt_wrong", "payment_intent.succeeded", &provider_ref, order, amount - 1);
    assert_eq!(system.webhook(&wrong).await, 400);
    let body = webhook("evt_ok", "payment_intent.succeeded", &provider_ref, order, amount);
    assert_eq!(system.webhook(&body).await, 200);
    assert_eq!(system.webhook(&body).await, 200, "a repeat is acknowledged");
    let (state, _) = stored(&system, show).await;
    assert_eq!(state.orders[&order].status, OrderStatus::Complete);
    assert_eq!(state.payments[&payment].status, domain::PaymentStatus::Succeeded);
    assert_eq!(state.ticket_types[0].sold, 1);

    // Money after the hold expired: refunded, the order stays cancelled, its items free.
    let (order, ..) = placed(&system.ok(Request::new(order_on(show, &[(ga, 2)], &["A-1-2"])).by(late)).await);
    let (payment, _, provider_ref, amount) = payment_of(&system.ok(Request::new(pay(order)).by(late)).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored(&system, show).await.0.orders[&order].status != OrderStatus::Cancelled {
        assert!(Instant::now() < deadline, "the hold never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = webhook("evt_late", "payment_intent.succeeded", &provider_ref.unwrap_or_default(), order, amount);
    assert_eq!(system.webhook(&body).await, 200);
    let (state, _) = stored(&system, show).await;
    assert_eq!(state.orders[&order].status, OrderStatus::Cancelled);
    assert_eq!(state.payments[&payment].status, domain::PaymentStatus::Refunded, "the late money went back");
    assert_eq!((state.ticket_types[0].sold, state.ticket_types[0].available()), (1, 4));
    assert_eq!(state.seat_status(&"A-1-2".parse().unwrap_or_else(|e| panic!("{e}"))), Some(SeatStatus::Available));
}
