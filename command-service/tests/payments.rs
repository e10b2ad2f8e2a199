//! Payments and webhooks through the NATS command API, with the fake provider.

mod common;

use std::time::Duration;

use command_service::api::{Command, Outcome, Reply, Request};
use common::{System, held, pay, webhook_body};
use domain::{CancelReason, ErrorCode, Event, OrderId, OrderStatus, PaymentStatus, TicketStatus};
use futures::future::join_all;

fn payment_of(outcome: &Outcome) -> (domain::PaymentId, PaymentStatus, Option<String>) {
    match outcome {
        Outcome::Payment { payment_id, status, provider_ref, .. } => (*payment_id, *status, provider_ref.clone()),
        other => panic!("not a payment: {other:?}"),
    }
}

#[tokio::test]
async fn a_visa_payment_completes_the_order_and_sells_the_ticket_once() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let paid = system.ok(Request::new(pay(order, "tok_visa")).by(buyer)).await;
    let (payment_id, status, provider_ref) = payment_of(&paid.result);
    assert_eq!(status, PaymentStatus::Succeeded);
    assert!(provider_ref.is_some());

    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Complete);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Sold));
    assert_eq!(listing.payments[&payment_id].amount_cents, 2500);
    assert_eq!(system.code(Request::new(pay(order, "tok_visa")).by(buyer)).await, ErrorCode::Conflict);
    assert_eq!(system.provider.charges(), 1);
    // A completed order frees the buyer's hold slot.
    let account = system.account(buyer.id).await;
    assert!(account.state.hold_slots.is_empty());
}

#[tokio::test]
async fn a_declined_card_changes_nothing_and_the_buyer_may_retry() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    assert_eq!(system.code(Request::new(pay(order, "tok_chargeDeclined")).by(buyer)).await, ErrorCode::PaymentDeclined);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Created);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Reserved));
    assert_eq!(system.provider.charges(), 0);
    system.ok(Request::new(pay(order, "tok_visa")).by(buyer)).await;
}

#[tokio::test]
async fn paying_is_for_the_buyer_of_an_open_order_with_a_known_token() {
    let system = System::start().await;
    let (buyer, _, order) = held(&system).await;
    let (stranger, admin) = (system.user("stranger").await, system.admin().await);
    assert_eq!(system.code(Request::new(pay(order, "tok_visa")).by(stranger)).await, ErrorCode::Forbidden);
    assert_eq!(system.code(Request::new(pay(order, "tok_visa")).by(admin)).await, ErrorCode::Forbidden);
    let bad = system.fail(Request::new(pay(order, "tok_unknown")).by(buyer)).await;
    assert_eq!((bad.code, bad.field.as_deref()), (ErrorCode::BadUserInput, Some("token")));
    assert_eq!(system.code(Request::new(pay(order, "tok_visa"))).await, ErrorCode::Unauthenticated);
    let unknown = OrderId(uuid::Uuid::new_v4());
    assert_eq!(system.code(Request::new(pay(unknown, "tok_visa")).by(buyer)).await, ErrorCode::NotFound);

    system.ok(Request::new(Command::CancelOrder { order_id: order, ticket_id: None, event_id: None }).by(buyer)).await;
    assert_eq!(system.code(Request::new(pay(order, "tok_visa")).by(buyer)).await, ErrorCode::Conflict);
    assert_eq!(system.provider.charges(), 0);
}

#[tokio::test]
async fn fifty_simultaneous_payments_for_one_order_charge_once() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let replies = join_all((0..50).map(|_| system.send(Request::new(pay(order, "tok_visa")).by(buyer)))).await;
    let succeeded = replies.iter().filter(|r| matches!(r, Reply::Ok(_))).count();
    let refused = replies.iter().filter(|r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict)).count();
    assert_eq!((succeeded, refused), (1, 49), "{replies:?}");
    assert_eq!(system.provider.charges(), 1);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments.len(), 1);
    assert_eq!(listing.orders[&order].status, OrderStatus::Complete);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_result_and_never_charges_twice() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let replies =
        join_all((0..10).map(|_| system.send(Request::new(pay(order, "tok_visa")).by(buyer).with_key("pay-1")))).await;
    let results: Vec<_> = replies
        .iter()
        .map(|r| match r {
            Reply::Ok(s) => payment_of(&s.result).0,
            Reply::Error(f) => panic!("{f:?}"),
        })
        .collect();
    assert!(results.iter().all(|id| *id == results[0]), "one payment for one key");
    assert_eq!(system.provider.charges(), 1);
    assert_eq!(system.listing(ticket).await.payments.len(), 1);

    // A declined first attempt stays declined under its key; the key names that request only
    // (another token under it is a conflict on the key, PRODUCT.md).
    let (buyer2, _, order2) = held(&system).await;
    assert_eq!(
        system.code(Request::new(pay(order2, "tok_chargeDeclined")).by(buyer2).with_key("k")).await,
        ErrorCode::PaymentDeclined
    );
    assert_eq!(
        system.code(Request::new(pay(order2, "tok_chargeDeclined")).by(buyer2).with_key("k")).await,
        ErrorCode::PaymentDeclined
    );
    let reused = system.fail(Request::new(pay(order2, "tok_visa")).by(buyer2).with_key("k")).await;
    assert_eq!((reused.code, reused.field.as_deref()), (ErrorCode::Conflict, Some("idempotencyKey")));
    system.ok(Request::new(pay(order2, "tok_visa")).by(buyer2).with_key("k2")).await;
}

#[tokio::test]
async fn an_asynchronous_payment_awaits_its_webhook_then_completes() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let pending = system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await;
    let (payment_id, status, provider_ref) = payment_of(&pending.result);
    assert_eq!(status, PaymentStatus::Pending);
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::AwaitingPayment);

    let provider_ref = provider_ref.unwrap_or_default();
    let body = webhook_body("evt_ok_1", "payment_intent.succeeded", &provider_ref, order);
    assert_eq!(system.webhook(&body).await, 200);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments[&payment_id].status, PaymentStatus::Succeeded);
    assert_eq!(listing.orders[&order].status, OrderStatus::Complete);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Sold));

    // The same event again: 200 and no second effect.
    let before = system.loaded_listing(ticket).await.last_sequence;
    assert_eq!(system.webhook(&body).await, 200);
    let after = system.loaded_listing(ticket).await.last_sequence;
    assert_eq!(before, after);

    // A refund from the provider is recorded.
    let refund = webhook_body("evt_refund_1", "charge.refunded", &provider_ref, order);
    assert_eq!(system.webhook(&refund).await, 200);
    assert_eq!(system.listing(ticket).await.payments[&payment_id].status, PaymentStatus::Refunded);
}

#[tokio::test]
async fn a_failed_asynchronous_payment_reopens_the_hold() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let (payment_id, _, provider_ref) =
        payment_of(&system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await.result);
    let body = webhook_body("evt_fail_1", "payment_intent.payment_failed", &provider_ref.unwrap_or_default(), order);
    assert_eq!(system.webhook(&body).await, 200);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments[&payment_id].status, PaymentStatus::Failed);
    assert_eq!(listing.orders[&order].status, OrderStatus::Created);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Reserved));
}

#[tokio::test]
async fn a_payment_failed_after_the_hold_closed_leaves_the_order_cancelled() {
    let failed = |id: &str, provider_ref: Option<String>, order| {
        webhook_body(id, "payment_intent.payment_failed", &provider_ref.unwrap_or_default(), order)
    };
    // Closed by the buyer while the bank was still deciding (a hold long enough not to expire).
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let (cancelled_payment, _, provider_ref) =
        payment_of(&system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await.result);
    system
        .ok(Request::new(Command::CancelOrder { order_id: order, ticket_id: Some(ticket), event_id: None }).by(buyer))
        .await;
    assert_eq!(system.webhook(&failed("evt_fail_cancelled", provider_ref, order)).await, 200);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments[&cancelled_payment].status, PaymentStatus::Failed);
    assert_eq!(
        (listing.orders[&order].status, listing.orders[&order].cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::User))
    );
    assert_eq!(listing.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Available, None)));

    // Closed by its expiry.
    let system = System::start_with(|c| c.order_hold_seconds = 2).await;
    let (buyer, ticket, order) = held(&system).await;
    let (expired_payment, _, provider_ref) =
        payment_of(&system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await.result);
    system
        .wait_for_listing(ticket, Duration::from_secs(8), |l| l.orders[&order].status == OrderStatus::Cancelled)
        .await;
    assert_eq!(system.webhook(&failed("evt_fail_expired", provider_ref, order)).await, 200);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments[&expired_payment].status, PaymentStatus::Failed);
    assert_eq!(
        (listing.orders[&order].status, listing.orders[&order].cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::Expired))
    );
    assert_eq!(listing.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Available, None)));
}

#[tokio::test]
async fn forged_stale_and_unsigned_webhooks_are_refused_without_effect() {
    let system = System::start().await;
    let (buyer, ticket, order) = held(&system).await;
    let (_, _, provider_ref) = payment_of(&system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await.result);
    let body = webhook_body("evt_forged", "payment_intent.succeeded", &provider_ref.unwrap_or_default(), order);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let forged = command_service::payments::webhook::sign("not-the-secret", now, &body);
    assert_eq!(system.webhook_signed(&body, Some(forged)).await, 400);
    let stale = command_service::payments::webhook::sign(common::WEBHOOK_SECRET, now - 301, &body);
    assert_eq!(system.webhook_signed(&body, Some(stale)).await, 400);
    assert_eq!(system.webhook_signed(&body, None).await, 400);
    let tampered = command_service::payments::webhook::sign(common::WEBHOOK_SECRET, now, &body);
    assert_eq!(system.webhook_signed(&body.replace("2500", "1"), Some(tampered)).await, 400);
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::AwaitingPayment);

    // The refused event id was not remembered: the real delivery still works.
    assert_eq!(system.webhook(&body).await, 200);
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::Complete);
}

#[tokio::test]
async fn money_arriving_after_the_hold_expired_is_refunded_automatically() {
    let system = System::start_with(|c| c.order_hold_seconds = 1).await;
    let (buyer, ticket, order) = held(&system).await;
    let (payment_id, _, provider_ref) =
        payment_of(&system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await.result);
    system
        .wait_for_listing(ticket, Duration::from_secs(5), |l| l.orders[&order].status == OrderStatus::Cancelled)
        .await;
    // Someone else holds the ticket now.
    let newcomer = system.user("newcomer").await;
    let new_order = system.order(newcomer, ticket).await;

    let body = webhook_body("evt_late", "payment_intent.succeeded", &provider_ref.unwrap_or_default(), order);
    assert_eq!(system.webhook(&body).await, 200);
    let listing = system.listing(ticket).await;
    assert_eq!(listing.payments[&payment_id].status, PaymentStatus::Refunded);
    assert_eq!(listing.orders[&order].status, OrderStatus::Cancelled);
    assert_eq!(listing.orders[&order].cancel_reason, Some(CancelReason::Expired));
    assert_eq!(listing.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Reserved, Some(new_order))));
    assert_eq!(system.provider.refunds(), 1);
}

/// Pays a batch of orders right at their expiry: each ends paid and sold, or cancelled with any
/// money refunded; never both, never neither.
#[tokio::test]
async fn paying_against_expiry_ends_paid_or_refunded_never_both_never_neither() {
    // A provider that takes 150 ms: some payments start before the expiry and settle after it.
    let provider = command_service::payments::fake::FakeProvider::with_latency(Duration::from_millis(150));
    let system = System::start_with_provider(|c| c.order_hold_seconds = 2, provider).await;
    let seller = system.user("seller").await;
    let mut cases = Vec::new();
    for _ in 0..16 {
        let buyer = system.user("racer").await;
        let ticket = system.ticket(seller, 1000).await;
        cases.push((buyer, ticket));
    }
    let system = &system;
    let orders = join_all(cases.iter().map(|(buyer, ticket)| async move {
        let ok = system.ok(Request::new(Command::CreateOrder { ticket_id: *ticket }).by(*buyer)).await;
        match ok.result {
            Outcome::Order { order_id, expires_at, .. } => (order_id, expires_at),
            other => panic!("{other:?}"),
        }
    }))
    .await;
    // Fire each payment from 240 ms before its expiry to 60 ms after it.
    let replies =
        join_all(cases.iter().zip(&orders).enumerate().map(|(n, ((buyer, _), (order, expires_at)))| async move {
            let offset = time::Duration::milliseconds(i64::try_from(n).unwrap_or(0) * 20 - 240);
            let wait = (*expires_at + offset) - time::OffsetDateTime::now_utc();
            if wait.is_positive() {
                tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
            }
            system.send(Request::new(pay(*order, "tok_visa")).by(*buyer)).await
        }))
        .await;

    let mut paid = 0;
    let mut expired = 0;
    for ((_, ticket), ((order, _), reply)) in cases.iter().zip(orders.iter().zip(&replies)) {
        let listing = system.wait_for_listing(*ticket, Duration::from_secs(6), |l| !l.orders[order].is_open()).await;
        let status = listing.orders[order].status;
        let payments: Vec<_> = listing.payments.values().collect();
        match status {
            OrderStatus::Complete => {
                paid += 1;
                assert_eq!(listing.ticket.as_ref().map(|t| t.status), Some(TicketStatus::Sold));
                assert!(payments.iter().all(|p| p.status == PaymentStatus::Succeeded));
                assert!(matches!(reply, Reply::Ok(_)), "{reply:?}");
            }
            OrderStatus::Cancelled => {
                expired += 1;
                assert_eq!(listing.ticket.as_ref().map(|t| t.status), Some(TicketStatus::Available));
                // Any money taken went back, and the buyer was told the hold is gone.
                assert!(
                    payments.iter().all(|p| matches!(p.status, PaymentStatus::Refunded | PaymentStatus::Failed)),
                    "{payments:?}"
                );
                assert!(matches!(reply, Reply::Error(f) if f.code == ErrorCode::Conflict), "{reply:?}");
            }
            other => panic!("order left {other:?}"),
        }
    }
    assert_eq!(paid + expired, 16);
    assert_eq!(
        system.provider.charges(),
        paid + system.provider.refunds(),
        "every charge completed an order or was refunded"
    );
    eprintln!("pay against expiry: {paid} paid, {expired} expired, {} refunded", system.provider.refunds());
}

#[tokio::test]
async fn a_webhook_for_an_unknown_order_is_acknowledged_and_ignored() {
    let system = System::start().await;
    let body = webhook_body("evt_unknown", "payment_intent.succeeded", "pi_x", OrderId(uuid::Uuid::new_v4()));
    assert_eq!(system.webhook(&body).await, 200);
    let other = serde_json::json!({"id": "evt_other", "type": "customer.created", "data": {"object": {"id": "cus_1"}}})
        .to_string();
    assert_eq!(system.webhook(&other).await, 200);
    assert_eq!(
        system
            .webhook_signed(
                "not json",
                Some(command_service::payments::webhook::sign(
                    common::WEBHOOK_SECRET,
                    time::OffsetDateTime::now_utc().unix_timestamp(),
                    "not json"
                ))
            )
            .await,
        400
    );
    let events = system.service.store().read("ticketing.ticket.*.>", 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(events.iter().all(|e| !matches!(e.event, Event::PaymentSucceeded { .. })));
}
