//! The Stripe provider against a local stub of the PaymentIntents HTTP API.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use command_service::api::{Command, Outcome, Reply, Request};
use command_service::config::ProviderKind;
use common::{System, webhook_body};
use domain::{ErrorCode, OrderStatus, PaymentStatus};
use futures::future::join_all;
use serde_json::{Value, json};

/// One HTTP request the stub saw: path, headers, form.
type Seen = (String, HeaderMap, HashMap<String, String>);

/// What the stub saw: one entry per HTTP request.
#[derive(Default)]
struct Stub {
    requests: Mutex<Vec<Seen>>,
    /// Like Stripe, the first response per idempotency key is replayed.
    answers: Mutex<HashMap<String, (StatusCode, Value)>>,
}

async fn payment_intents(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    stub.requests.lock().unwrap_or_else(|e| e.into_inner()).push(("payment_intents".into(), headers, form.clone()));
    let stall = form.get("payment_method").map(String::as_str) == Some("pm_card_stall");
    let (status, body) = {
        let mut answers = stub.answers.lock().unwrap_or_else(|e| e.into_inner());
        let n = answers.len();
        let metadata =
            json!({"payment_id": form.get("metadata[payment_id]"), "order_id": form.get("metadata[order_id]")});
        answers
            .entry(key)
            .or_insert_with(|| match form.get("payment_method").map(String::as_str) {
                // Charged, but the answer comes after the client gave up.
                Some("pm_card_stall") => {
                    (StatusCode::OK, json!({"id": format!("pi_{n}"), "status": "succeeded", "metadata": metadata}))
                }
                Some("pm_card_visa") => (StatusCode::OK, json!({"id": format!("pi_{n}"), "status": "succeeded"})),
                // Stripe itself failing: whether a charge was made is unknown.
                Some("pm_card_serverError") => {
                    (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": {"type": "api_error", "message": "boom"}}))
                }
            Some("pm_card_async") => (StatusCode::OK, json!({"id": format!("pi_{n}"), "status": "processing"})),
            Some("pm_card_chargeDeclined") => (
                StatusCode::PAYMENT_REQUIRED,
                json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"}}),
            ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}}),
                ),
            })
            .clone()
    };
    if stall {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    (status, Json(body))
}

/// `GET /v1/payment_intents/search?query=metadata['payment_id']:'<id>'`, over the intents made.
async fn search_intents(
    State(stub): State<Arc<Stub>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Json<Value> {
    stub.requests.lock().unwrap_or_else(|e| e.into_inner()).push(("search".into(), HeaderMap::new(), query.clone()));
    let wanted = query.get("query").and_then(|q| q.split('\'').nth(3)).unwrap_or_default().to_owned();
    let answers = stub.answers.lock().unwrap_or_else(|e| e.into_inner());
    let data: Vec<Value> = answers
        .values()
        .filter(|(status, body)| status.is_success() && body["metadata"]["payment_id"] == wanted.as_str())
        .map(|(_, body)| body.clone())
        .collect();
    Json(json!({"object": "search_result", "data": data}))
}

async fn refunds(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    stub.requests.lock().unwrap_or_else(|e| e.into_inner()).push(("refunds".into(), headers, form));
    Json(json!({"id": "re_1", "status": "succeeded"}))
}

async fn stub() -> (Arc<Stub>, String) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/v1/payment_intents", post(payment_intents))
        .route("/v1/payment_intents/search", axum::routing::get(search_intents))
        .route("/v1/refunds", post(refunds))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (stub, url)
}

async fn system(url: &str, hold_seconds: u64) -> System {
    System::start_configured(|c| {
        c.payment_provider = ProviderKind::Stripe;
        c.stripe_api_key = Some("sk_test_123".into());
        c.stripe_api_base = url.to_owned();
        c.order_hold_seconds = hold_seconds;
    })
    .await
}

/// Stripe that charges and then stalls past the client's timeout.
async fn stalling_system(url: &str, hold_seconds: u64) -> System {
    System::start_configured(|c| {
        c.payment_provider = ProviderKind::Stripe;
        c.stripe_api_key = Some("sk_test_123".into());
        c.stripe_api_base = url.to_owned();
        c.order_hold_seconds = hold_seconds;
        c.stripe_timeout_ms = 300;
        c.payment_reconcile_after_seconds = 1;
    })
    .await
}

fn intents_made(stub: &Stub) -> usize {
    stub.answers.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|(s, _)| s.is_success()).count()
}

fn refunds_made(stub: &Stub) -> usize {
    stub.requests.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|(path, ..)| path == "refunds").count()
}

#[tokio::test]
async fn a_charge_that_stalls_past_the_timeout_ends_with_one_charge_kept() {
    let (stub, url) = stub().await;
    let system = stalling_system(&url, 900).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 2500).await;
    let order = system.order(buyer, ticket).await;
    let answered = system.ok(Request::new(pay(order, "pm_card_stall")).by(buyer)).await;
    assert!(matches!(answered.result, Outcome::Payment { status: PaymentStatus::Pending, .. }), "{answered:?}");
    // The buyer tries again with a new key: refused, no second charge.
    assert_eq!(
        system.code(Request::new(pay(order, "pm_card_visa")).by(buyer).with_key("retry")).await,
        ErrorCode::Conflict
    );
    let listing = system
        .wait_for_listing(ticket, std::time::Duration::from_secs(10), |l| {
            l.orders[&order].status == OrderStatus::Complete
        })
        .await;
    assert!(listing.payments.values().all(|p| p.status == PaymentStatus::Succeeded && p.provider_ref.is_some()));
    assert_eq!((intents_made(&stub), refunds_made(&stub)), (1, 0), "exactly one charge, not refunded");
}

#[tokio::test]
async fn a_stalled_charge_for_a_hold_that_expired_meanwhile_ends_with_one_charge_refunded() {
    let (stub, url) = stub().await;
    let system = stalling_system(&url, 1).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 2500).await;
    let order = system.order(buyer, ticket).await;
    system.ok(Request::new(pay(order, "pm_card_stall")).by(buyer)).await;
    let listing = system
        .wait_for_listing(ticket, std::time::Duration::from_secs(10), |l| {
            l.payments.values().any(|p| p.status == PaymentStatus::Refunded)
        })
        .await;
    assert_eq!(listing.orders[&order].status, OrderStatus::Cancelled);
    assert_eq!((intents_made(&stub), refunds_made(&stub)), (1, 1), "exactly one charge, refunded");
}

fn pay(order_id: domain::OrderId, token: &str) -> Command {
    Command::PayOrder { order_id, ticket_id: None, event_id: None, token: token.into() }
}

#[tokio::test]
async fn a_charge_is_one_idempotent_authenticated_payment_intent() {
    let (stub, url) = stub().await;
    let system = system(&url, 900).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 2500).await;
    let order = system.order(buyer, ticket).await;

    let replies =
        join_all((0..5).map(|_| system.send(Request::new(pay(order, "pm_card_visa")).by(buyer).with_key("k1")))).await;
    for reply in &replies {
        assert!(
            matches!(reply, Reply::Ok(s) if matches!(s.result, Outcome::Payment { status: PaymentStatus::Succeeded, .. })),
            "{reply:?}"
        );
    }
    let requests = stub.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let intents: Vec<_> = requests.iter().filter(|(path, ..)| path == "payment_intents").collect();
    // Concurrent retries of one key wait for the first attempt instead of calling again.
    assert_eq!(intents.len(), 1, "one HTTP call for one key");
    let (_, headers, form) = intents[0];
    let payment_id = domain::PaymentId::for_idempotency_key(order, "k1");
    assert_eq!(headers.get("idempotency-key").and_then(|v| v.to_str().ok()), Some(payment_id.to_string().as_str()));
    assert_eq!(headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer sk_test_123"));
    assert_eq!(form.get("amount").map(String::as_str), Some("2500"));
    assert_eq!(form.get("currency").map(String::as_str), Some("usd"));
    assert_eq!(form.get("confirm").map(String::as_str), Some("true"));
    assert_eq!(form.get("metadata[order_id]"), Some(&order.to_string()));
    assert_eq!(form.get("metadata[ticket_id]"), Some(&ticket.to_string()), "webhooks find the listing directly");
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::Complete);
}

#[tokio::test]
async fn declines_pending_charges_and_unknown_methods_map_to_the_api() {
    let (_stub, url) = stub().await;
    let system = system(&url, 900).await;
    let seller = system.user("seller").await;
    let buyer = system.user("buyer").await;

    let ticket = system.ticket(seller, 100).await;
    let order = system.order(buyer, ticket).await;
    assert_eq!(
        system.code(Request::new(pay(order, "pm_card_chargeDeclined")).by(buyer)).await,
        ErrorCode::PaymentDeclined
    );
    let missing = system.fail(Request::new(pay(order, "pm_nope")).by(buyer)).await;
    assert_eq!((missing.code, missing.field.as_deref()), (ErrorCode::BadUserInput, Some("token")));
    let pending = system.ok(Request::new(pay(order, "pm_card_async")).by(buyer)).await;
    assert!(matches!(pending.result, Outcome::Payment { status: PaymentStatus::Pending, .. }), "{pending:?}");
    assert_eq!(system.listing(ticket).await.orders[&order].status, OrderStatus::AwaitingPayment);
}

#[tokio::test]
async fn a_provider_5xx_leaves_the_payment_pending_and_the_order_awaiting_payment() {
    let (_stub, url) = stub().await;
    let system = system(&url, 900).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 100).await;
    let order = system.order(buyer, ticket).await;
    let answered = system.ok(Request::new(pay(order, "pm_card_serverError")).by(buyer)).await;
    let Outcome::Payment { status, provider_ref, .. } = &answered.result else { panic!("{answered:?}") };
    assert_eq!((*status, provider_ref.as_deref()), (PaymentStatus::Pending, None), "unknown, not failed");
    let listing = system.listing(ticket).await;
    assert_eq!(listing.orders[&order].status, OrderStatus::AwaitingPayment);
    assert_eq!(listing.payments.values().map(|p| p.status).collect::<Vec<_>>(), [PaymentStatus::Pending]);
    // Another attempt, with another key, cannot start a second charge while this one is unknown.
    assert_eq!(
        system.code(Request::new(pay(order, "pm_card_visa")).by(buyer).with_key("another")).await,
        ErrorCode::Conflict
    );
}

#[tokio::test]
async fn late_money_is_refunded_through_the_refunds_api() {
    let (stub, url) = stub().await;
    let system = system(&url, 1).await;
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    // The webhook bodies carry 25.00: the amount of the payment.
    let ticket = system.ticket(seller, 2500).await;
    let order = system.order(buyer, ticket).await;
    let pending = system.ok(Request::new(pay(order, "pm_card_async")).by(buyer)).await;
    let Outcome::Payment { provider_ref: Some(provider_ref), payment_id, .. } = pending.result else {
        panic!("{pending:?}")
    };
    system
        .wait_for_listing(ticket, std::time::Duration::from_secs(5), |l| {
            l.orders[&order].status == OrderStatus::Cancelled
        })
        .await;

    assert_eq!(system.webhook(&webhook_body("evt_late", "payment_intent.succeeded", &provider_ref, order)).await, 200);
    let requests = stub.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let refunds: Vec<_> = requests.iter().filter(|(path, ..)| path == "refunds").collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].2.get("payment_intent"), Some(&provider_ref));
    assert_eq!(
        refunds[0].1.get("idempotency-key").and_then(|v| v.to_str().ok()),
        Some(format!("refund-{payment_id}").as_str())
    );
    assert_eq!(system.listing(ticket).await.payments[&payment_id].status, PaymentStatus::Refunded);
}
