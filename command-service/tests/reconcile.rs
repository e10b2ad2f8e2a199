//! Payments whose outcome is unknown (a provider that times out after charging, a crash between
//! the charge and its settlement) and refunds that fail: settled by reconciliation, never charged
//! twice, never kept without a complete order.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use command_service::Service;
use command_service::api::{Command, Outcome, Request};
use command_service::payments::fake::FakeProvider;
use command_service::payments::{ChargeRequest, ChargeResult, Lookup, LookupRequest, PaymentProvider, ProviderError};
use common::{System, held, pay, webhook_body};
use domain::{Actor, ErrorCode, OrderStatus, PaymentStatus, TicketStatus};
use futures::future::BoxFuture;

#[tokio::test]
async fn a_charge_whose_answer_was_lost_stays_pending_then_completes_once() {
    let system = System::start_with(|c| c.payment_reconcile_after_seconds = 1).await;
    let (buyer, ticket, order) = held(&system).await;
    let answered = system.ok(Request::new(pay(order, "tok_timeout")).by(buyer)).await;
    let Outcome::Payment { status, payment_id, .. } = answered.result else { panic!("{answered:?}") };
    assert_eq!(status, PaymentStatus::Pending, "an unknown outcome is not a failure");
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders[&order].status, OrderStatus::AwaitingPayment);
    // Paying again with another key cannot start a second charge.
    assert_eq!(
        system.code(Request::new(pay(order, "tok_visa")).by(buyer).with_key("again")).await,
        ErrorCode::Conflict
    );

    let listing = system
        .wait_for_listing(ticket, Duration::from_secs(8), |l| l.orders[&order].status == OrderStatus::Complete)
        .await;
    assert_eq!(listing.payments[&payment_id].status, PaymentStatus::Succeeded);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Sold));
    assert_eq!((system.provider.charges(), system.provider.refunds()), (1, 0));
    assert_eq!(listing.payments.len(), 1);
}

#[tokio::test]
async fn a_lost_answer_for_a_hold_that_then_expired_is_refunded_never_kept() {
    let system = System::start_with(|c| {
        c.order_hold_seconds = 1;
        c.payment_reconcile_after_seconds = 2;
    })
    .await;
    let (buyer, ticket, order) = held(&system).await;
    system.ok(Request::new(pay(order, "tok_timeout")).by(buyer)).await;
    let listing = system
        .wait_for_listing(ticket, Duration::from_secs(10), |l| {
            l.payments.values().any(|p| p.status == PaymentStatus::Refunded)
        })
        .await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Cancelled);
    assert_eq!(listing.ticket.map(|t| t.status), Some(TicketStatus::Available));
    assert_eq!((system.provider.charges(), system.provider.refunds()), (1, 1));
}

#[tokio::test]
async fn a_payment_started_by_a_process_that_died_before_charging_is_failed_and_may_be_retried() {
    // The charge never reached the provider: the reconciler finds nothing under its key.
    let mut system = System::start_with(|c| c.payment_reconcile_after_seconds = 1).await;
    let (buyer, ticket, order) = held(&system).await;
    let stalled = FakeProvider::with_latency(Duration::from_secs(30));
    let client = testkit::connect(&system.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let dying = Service::connect(system.config.clone(), client, Some(Arc::new(stalled) as Arc<dyn PaymentProvider>))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let request = serde_json::to_vec(&Request::new(pay(order, "tok_visa")).by(buyer)).unwrap_or_default();
    let attempt = tokio::spawn(async move { dying.answer("payOrder", &request).await });
    system
        .wait_for_listing(ticket, Duration::from_secs(5), |l| l.orders[&order].status == OrderStatus::AwaitingPayment)
        .await;
    attempt.abort(); // killed mid-charge
    system.restart().await;

    let listing = system
        .wait_for_listing(ticket, Duration::from_secs(8), |l| l.orders[&order].status == OrderStatus::Created)
        .await;
    assert!(listing.payments.values().all(|p| p.status == PaymentStatus::Failed), "{listing:#?}");
    system.ok(Request::new(pay(order, "tok_visa")).by(buyer)).await;
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::Complete);
    assert_eq!(system.provider.charges(), 1);
}

/// A fake whose refunds fail a few times first.
struct FlakyRefunds {
    inner: FakeProvider,
    failures_left: AtomicUsize,
    refund_attempts: AtomicUsize,
}

impl PaymentProvider for FlakyRefunds {
    fn accepts_token(&self, token: &str) -> bool {
        self.inner.accepts_token(token)
    }

    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeResult, ProviderError>> {
        self.inner.charge(request)
    }

    fn refund(&self, provider_ref: String, idempotency_key: String) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.refund_attempts.fetch_add(1, Ordering::SeqCst);
        let fail = self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if fail {
            return Box::pin(async { Err(ProviderError::Unavailable("refunds are down".into())) });
        }
        self.inner.refund(provider_ref, idempotency_key)
    }

    fn lookup(&self, request: LookupRequest) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        self.inner.lookup(request)
    }
}

#[tokio::test]
async fn a_refund_that_fails_after_a_late_payment_is_retried_until_it_is_made() {
    let mut system = System::start_with(|c| {
        c.order_hold_seconds = 1;
        c.payment_reconcile_after_seconds = 1;
    })
    .await;
    system.stop();
    let flaky = Arc::new(FlakyRefunds {
        inner: FakeProvider::default(),
        failures_left: AtomicUsize::new(2),
        refund_attempts: AtomicUsize::new(0),
    });
    let client = testkit::connect(&system.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let service = Service::connect(system.config.clone(), client, Some(flaky.clone() as Arc<dyn PaymentProvider>))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let requests = service.subscribe().await.unwrap_or_else(|e| panic!("{e:#}"));
    let serving = tokio::spawn(service.clone().serve_subscription(requests));
    let timers = tokio::spawn(service.clone().run_expiry());

    let (buyer, ticket, order) = held(&system).await;
    let pending = system.ok(Request::new(pay(order, "tok_async")).by(buyer)).await;
    let Outcome::Payment { provider_ref: Some(provider_ref), .. } = pending.result else { panic!("{pending:?}") };
    system
        .wait_for_listing(ticket, Duration::from_secs(5), |l| l.orders[&order].status == OrderStatus::Cancelled)
        .await;
    // The money arrives after the hold expired; the refund fails, and keeps being retried.
    let body = webhook_body("evt_late", "payment_intent.succeeded", &provider_ref, order);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = command_service::payments::webhook::sign(common::WEBHOOK_SECRET, now, &body);
    // The refund fails here: the webhook is answered with an error (the provider would retry).
    let _ = system.send(Request::new(Command::PaymentWebhook { body, signature: Some(signature) })).await;
    let listing = system
        .wait_for_listing(ticket, Duration::from_secs(10), |l| {
            l.payments.values().any(|p| p.status == PaymentStatus::Refunded)
        })
        .await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Cancelled);
    assert!(flaky.refund_attempts.load(Ordering::SeqCst) >= 3, "retried after failing");
    assert_eq!(flaky.inner.refunds(), 1);
    serving.abort();
    timers.abort();
}

#[tokio::test]
async fn the_fake_providers_ledger_works_on_a_three_node_cluster() {
    let cluster = testkit::NatsCluster::start(3).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut config = command_service::config::Config::with_nats_url(&cluster.url());
    config.stream_replicas = 3;
    // Two replicas start together on the fresh cluster, as in a deployment; the second serves.
    let start = || async {
        let addrs = event_store::server_addrs(&cluster.url()).unwrap_or_else(|e| panic!("{e:#}"));
        let client = async_nats::connect(addrs).await.unwrap_or_else(|e| panic!("{e}"));
        Service::connect(config.clone(), client, None).await.unwrap_or_else(|e| panic!("{e:#}"))
    };
    let (_first, service) = futures::future::join(start(), start()).await;
    let ask = |request: Request| {
        let service = service.clone();
        async move {
            let payload = serde_json::to_vec(&request).unwrap_or_default();
            service.answer(request.command.name(), &payload).await
        }
    };
    let session = |reply| match reply {
        command_service::api::Reply::Ok(ok) => match ok.result {
            Outcome::Session { account_id, .. } => Actor::user(account_id),
            other => panic!("{other:?}"),
        },
        command_service::api::Reply::Error(f) => panic!("{f:?}"),
    };
    let seller = session(
        ask(Request::new(Command::SignUp {
            email: "s@example.com".into(),
            password: "correct horse".into(),
            client_addr: None,
        }))
        .await,
    );
    let buyer = session(
        ask(Request::new(Command::SignUp {
            email: "b@example.com".into(),
            password: "correct horse".into(),
            client_addr: None,
        }))
        .await,
    );
    let command_service::api::Reply::Ok(listed) =
        ask(Request::new(Command::CreateTicket { title: "Opera".into(), price_cents: 100 }).by(seller)).await
    else {
        panic!()
    };
    let Outcome::Ticket { ticket_id, .. } = listed.result else { panic!() };
    let command_service::api::Reply::Ok(held) = ask(Request::new(Command::CreateOrder { ticket_id }).by(buyer)).await
    else {
        panic!()
    };
    let Outcome::Order { order_id, .. } = held.result else { panic!() };
    let paid = ask(Request::new(pay(order_id, "tok_visa")).by(buyer)).await;
    assert!(
        matches!(&paid, command_service::api::Reply::Ok(ok) if matches!(ok.result, Outcome::Payment { status: PaymentStatus::Succeeded, .. })),
        "{paid:?}"
    );
}

#[tokio::test]
async fn a_charge_still_on_its_way_when_reconciliation_found_nothing_is_refused_not_taken() {
    // The provider is slow: reconciliation asks (and finds nothing) before the charge arrives.
    let system = System::start_with_provider(
        |c| c.payment_reconcile_after_seconds = 1,
        FakeProvider::with_latency(Duration::from_secs(3)),
    )
    .await;
    let (buyer, ticket, order) = held(&system).await;
    let slow = system.send(Request::new(pay(order, "tok_visa")).by(buyer)).await;
    // The slow charge was refused by the provider: it had recorded "not charged" for its key.
    assert!(matches!(&slow, command_service::api::Reply::Error(f) if f.code == ErrorCode::PaymentDeclined), "{slow:?}");
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Created);
    assert!(listing.payments.values().all(|p| p.status == PaymentStatus::Failed));
    assert_eq!(system.provider.charges(), 0, "nothing was taken; the buyer may pay again");
}
