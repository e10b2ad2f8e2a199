//! Tickets and orders through the NATS command API.

mod common;

use std::time::Duration;

use command_service::Refused;
use command_service::api::{Command, Outcome, Reply, Request};
use common::System;
use domain::{CancelReason, ErrorCode, Event, OrderError, OrderStatus, TicketId, TicketStatus};
use futures::future::join_all;

fn create_ticket(title: &str, price_cents: i64) -> Command {
    Command::CreateTicket { title: title.into(), price_cents }
}

fn update(ticket_id: TicketId, title: Option<&str>, price_cents: Option<i64>) -> Command {
    Command::UpdateTicket { ticket_id, title: title.map(str::to_owned), price_cents }
}

#[tokio::test]
async fn creating_a_ticket_validates_title_and_price_and_needs_a_signed_in_seller() {
    let system = System::start().await;
    let seller = system.user("seller").await;
    let ok = system.ok(Request::new(create_ticket("  Opera night  ", 2500)).by(seller)).await;
    let Outcome::Ticket { ticket_id, status } = ok.result else { panic!("{ok:?}") };
    assert_eq!(status, TicketStatus::Available);
    let listing = system.listing(ticket_id).await;
    let ticket = listing.ticket.unwrap_or_else(|| panic!("no ticket"));
    assert_eq!((ticket.title.as_str(), ticket.price.cents(), ticket.seller), ("Opera night", 2500, seller.id));

    for (title, price, field) in [
        ("", 100, "title"),
        (&*"x".repeat(121), 100, "title"),
        ("ok", 0, "priceCents"),
        ("ok", 10_000_001, "priceCents"),
    ] {
        let failure = system.fail(Request::new(create_ticket(title, price)).by(seller)).await;
        assert_eq!((failure.code, failure.field.as_deref()), (ErrorCode::BadUserInput, Some(field)));
    }
    assert_eq!(system.code(Request::new(create_ticket("Anonymous", 100))).await, ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn only_the_seller_or_an_admin_may_edit_and_only_while_available() {
    let system = System::start().await;
    let (seller, other, buyer, admin) =
        (system.user("seller").await, system.user("other").await, system.user("buyer").await, system.admin().await);
    let ticket = system.ticket(seller, 2500).await;

    system.ok(Request::new(update(ticket, Some("Opera, row 5"), None)).by(seller)).await;
    system.ok(Request::new(update(ticket, None, Some(3000))).by(admin)).await;
    assert_eq!(system.code(Request::new(update(ticket, Some("Mine"), None)).by(other)).await, ErrorCode::Forbidden);
    let bad = system.fail(Request::new(update(ticket, Some(" "), None)).by(seller)).await;
    assert_eq!((bad.code, bad.field.as_deref()), (ErrorCode::BadUserInput, Some("title")));
    let unknown = TicketId(uuid::Uuid::new_v4());
    assert_eq!(system.code(Request::new(update(unknown, Some("x"), None)).by(admin)).await, ErrorCode::NotFound);

    let listing = system.listing(ticket).await;
    let edited = listing.ticket.unwrap_or_else(|| panic!("no ticket"));
    assert_eq!((edited.title.as_str(), edited.price.cents()), ("Opera, row 5", 3000));

    system.order(buyer, ticket).await;
    assert_eq!(system.code(Request::new(update(ticket, Some("Too late"), None)).by(seller)).await, ErrorCode::Conflict);
    assert_eq!(system.code(Request::new(update(ticket, Some("Too late"), None)).by(admin)).await, ErrorCode::Conflict);
}

#[tokio::test]
async fn an_order_holds_the_ticket_at_its_price_until_the_hold_expires() {
    let system = System::start().await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 4200).await;
    let before = time::OffsetDateTime::now_utc();
    let ok = system.ok(Request::new(Command::CreateOrder { ticket_id: ticket }).by(buyer)).await;
    let Outcome::Order { order_id, status, expires_at, .. } = ok.result else { panic!("{ok:?}") };
    assert_eq!(status, OrderStatus::Created);
    let hold = expires_at - before;
    assert!(hold >= time::Duration::seconds(900) && hold < time::Duration::seconds(902), "hold {hold}");

    let listing = system.listing(ticket).await;
    assert_eq!(listing.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Reserved, Some(order_id))));
    assert_eq!(listing.orders[&order_id].amount.cents(), 4200);
    assert_eq!(ok.position, system.loaded_listing(ticket).await.last_sequence);
}

#[tokio::test]
async fn ordering_refusals_unknown_own_taken_and_anonymous() {
    let system = System::start().await;
    let (seller, buyer, late) = (system.user("seller").await, system.user("buyer").await, system.user("late").await);
    let ticket = system.ticket(seller, 100).await;
    let unknown = TicketId(uuid::Uuid::new_v4());
    assert_eq!(
        system.code(Request::new(Command::CreateOrder { ticket_id: unknown }).by(buyer)).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        system.code(Request::new(Command::CreateOrder { ticket_id: ticket }).by(seller)).await,
        ErrorCode::Forbidden
    );
    assert_eq!(system.code(Request::new(Command::CreateOrder { ticket_id: ticket })).await, ErrorCode::Unauthenticated);
    system.order(buyer, ticket).await;
    assert_eq!(
        system.code(Request::new(Command::CreateOrder { ticket_id: ticket }).by(late)).await,
        ErrorCode::Conflict
    );

    // In process, each refusal names the domain's rule, not only its code.
    let order = |ticket_id| Request::new(Command::CreateOrder { ticket_id });
    let rules = [
        (order(unknown).by(buyer), Refused::from(OrderError::TicketNotFound)),
        (order(ticket).by(seller), Refused::from(OrderError::OwnTicket)),
        (order(ticket), Refused::SignInRequired),
        (order(ticket).by(late), Refused::from(OrderError::TicketUnavailable)),
    ];
    for (request, rule) in rules {
        assert_eq!(system.refused(request).await, rule);
    }
    assert_eq!(
        system.refused(order(ticket).by(late).with_key("")).await,
        Refused::IdempotencyKeyLength,
        "checked before the domain is asked"
    );
}

#[tokio::test]
async fn of_two_hundred_simultaneous_buyers_for_one_ticket_exactly_one_wins() {
    let system = System::start().await;
    let seller = system.user("seller").await;
    let ticket = system.ticket(seller, 9900).await;
    let buyers = join_all((0..200).map(|_| system.user("buyer"))).await;

    let replies = join_all(
        buyers.iter().map(|buyer| system.send(Request::new(Command::CreateOrder { ticket_id: ticket }).by(*buyer))),
    )
    .await;
    let winners = replies.iter().filter(|r| matches!(r, Reply::Ok(_))).count();
    let conflicts = replies.iter().filter(|r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict)).count();
    assert_eq!(
        (winners, conflicts),
        (1, 199),
        "{:?}",
        replies.iter().find(|r| !matches!(r, Reply::Ok(_) | Reply::Error(_)))
    );

    let history = system.loaded_listing(ticket).await;
    let holds = history.history.iter().filter(|e| matches!(e.event, Event::OrderPlaced { .. })).count();
    assert_eq!(holds, 1, "exactly one hold is stored");
    // Every loser got its slot back.
    let store = system.service.store();
    let slots: usize = join_all(
        buyers.iter().map(|b| async move { store.load::<domain::Account>(&domain::subjects::account(b.id)).await }),
    )
    .await
    .into_iter()
    .map(|a| a.map(|a| a.state.hold_slots.len()).unwrap_or(0))
    .sum();
    assert_eq!(slots, 1, "only the winner keeps a hold slot");
}

#[tokio::test]
async fn the_per_buyer_hold_limit_holds_under_concurrency() {
    let system = System::start_with(|c| c.max_active_holds = 5).await;
    let (seller, buyer) = (system.user("seller").await, system.user("scalper").await);
    let tickets = join_all((0..20).map(|_| system.ticket(seller, 100))).await;
    let replies =
        join_all(tickets.iter().map(|t| system.send(Request::new(Command::CreateOrder { ticket_id: *t }).by(buyer))))
            .await;
    let won = replies.iter().filter(|r| matches!(r, Reply::Ok(_))).count();
    let refused = replies.iter().filter(|r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict)).count();
    assert_eq!((won, refused), (5, 15));

    // Cancelling one frees a slot for another ticket.
    let held: Vec<(domain::OrderId, TicketId)> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Ok(success) => match success.result {
                Outcome::Order { order_id, ticket_id, .. } => Some((order_id, ticket_id)),
                _ => None,
            },
            Reply::Error(_) => None,
        })
        .collect();
    let free =
        tickets.iter().copied().find(|t| held.iter().all(|(_, h)| h != t)).unwrap_or_else(|| panic!("no free ticket"));
    assert_eq!(
        system.code(Request::new(Command::CreateOrder { ticket_id: free }).by(buyer)).await,
        ErrorCode::Conflict
    );
    let (order_id, _) = held[0];
    system.ok(Request::new(Command::CancelOrder { order_id, ticket_id: None, event_id: None }).by(buyer)).await;
    system.ok(Request::new(Command::CreateOrder { ticket_id: free }).by(buyer)).await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_order() {
    let system = System::start().await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 100).await;
    let first = system.ok(Request::new(Command::CreateOrder { ticket_id: ticket }).by(buyer).with_key("order-1")).await;
    let again = system.ok(Request::new(Command::CreateOrder { ticket_id: ticket }).by(buyer).with_key("order-1")).await;
    assert_eq!(first.result, again.result);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders.len(), 1);
    let account = system.account(buyer.id).await;
    assert_eq!(account.state.hold_slots.len(), 1);
}

#[tokio::test]
async fn cancelling_releases_the_ticket_with_the_right_reason_and_is_idempotent() {
    let system = System::start().await;
    let (seller, buyer, other, admin) =
        (system.user("seller").await, system.user("buyer").await, system.user("other").await, system.admin().await);
    let ticket = system.ticket(seller, 100).await;
    let order_id = system.order(buyer, ticket).await;

    let cancel = |actor| Request::new(Command::CancelOrder { order_id, ticket_id: None, event_id: None }).by(actor);
    assert_eq!(system.code(cancel(other)).await, ErrorCode::Forbidden);
    let done = system.ok(cancel(buyer)).await;
    assert!(matches!(
        done.result,
        Outcome::Order { status: OrderStatus::Cancelled, cancel_reason: Some(CancelReason::User), .. }
    ));
    let again = system.ok(cancel(buyer)).await;
    assert_eq!(again.result, done.result, "cancelling a cancelled order returns it unchanged");
    assert_eq!(system.listing(ticket).await.ticket.map(|t| t.status), Some(TicketStatus::Available));

    let second = system.order(other, ticket).await;
    let by_admin = system
        .ok(Request::new(Command::CancelOrder { order_id: second, ticket_id: Some(ticket), event_id: None }).by(admin))
        .await;
    assert!(matches!(by_admin.result, Outcome::Order { cancel_reason: Some(CancelReason::Admin), .. }));

    let unknown = domain::OrderId(uuid::Uuid::new_v4());
    assert_eq!(
        system
            .code(Request::new(Command::CancelOrder { order_id: unknown, ticket_id: None, event_id: None }).by(admin))
            .await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn a_complete_order_cannot_be_cancelled() {
    let system = System::start().await;
    let (seller, buyer, admin) = (system.user("seller").await, system.user("buyer").await, system.admin().await);
    let ticket = system.ticket(seller, 100).await;
    let order_id = system.order(buyer, ticket).await;
    system
        .ok(Request::new(Command::PayOrder { order_id, ticket_id: None, event_id: None, token: "tok_visa".into() })
            .by(buyer))
        .await;
    assert_eq!(
        system.code(Request::new(Command::CancelOrder { order_id, ticket_id: None, event_id: None }).by(admin)).await,
        ErrorCode::Conflict
    );
    system
        .wait_for_listing(ticket, Duration::from_secs(1), |l| {
            l.ticket.as_ref().is_some_and(|t| t.status == TicketStatus::Sold)
        })
        .await;
}
