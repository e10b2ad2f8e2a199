//! The gateway over HTTP against the real system: NATS, command-service, projector, PostgreSQL.

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{Client, SECRET, Stack, code, stack, stack_full, stack_with};

/// Lists a ticket "T" at $1.00 as `seller`; its id.
async fn list_ticket(stack: &Stack, mut seller: Client) -> String {
    let r = seller.gql(stack, "mutation { createTicket(title: \"T\", priceCents: 100) { id } }", json!({})).await;
    r["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned()
}

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id email roles } }";

#[tokio::test]
async fn a_sale_end_to_end_with_read_your_writes() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    let me = seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    assert_eq!(me["data"]["signUp"]["roles"], json!(["USER"]));
    assert_eq!(me["data"]["signUp"]["email"], "seller@example.com", "you see your own email");
    assert!(seller.cookie.is_some());
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;

    let created = seller
        .gql(
            &stack,
            "mutation { createTicket(title: \"Opera\", priceCents: 2500) { id status version seller { email } } }",
            json!({}),
        )
        .await;
    let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(created["data"]["createTicket"]["status"], "AVAILABLE");
    assert_eq!(created["data"]["createTicket"]["seller"]["email"], "seller@example.com");

    // Read-your-writes: the list shows it immediately.
    let list =
        buyer.gql(&stack, "{ tickets(first: 5) { nodes { id } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    assert_eq!(list["data"]["tickets"]["nodes"][0]["id"], ticket.as_str());

    let order = buyer
        .gql(
            &stack,
            "mutation($t: ID!) { createOrder(ticketId: $t) { id status expiresAt ticket { status } } }",
            json!({"t": ticket}),
        )
        .await;
    assert_eq!(order["data"]["createOrder"]["status"], "CREATED");
    assert_eq!(order["data"]["createOrder"]["ticket"]["status"], "RESERVED");
    let order_id = order["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();

    // Other users' emails are private; an admin sees them.
    let seller_seen =
        buyer.gql(&stack, "query($t: ID!) { ticket(id: $t) { seller { email roles } } }", json!({"t": ticket})).await;
    assert_eq!(seller_seen["data"]["ticket"]["seller"]["email"], Value::Null);
    let mut admin = Client::default();
    let boss = admin.gql(&stack, SIGN_UP, json!({"e": "boss@example.com"})).await;
    assert_eq!(boss["data"]["signUp"]["roles"], json!(["USER", "ADMIN"]));
    let admin_seen =
        admin.gql(&stack, "query($t: ID!) { ticket(id: $t) { seller { email } } }", json!({"t": ticket})).await;
    assert_eq!(admin_seen["data"]["ticket"]["seller"]["email"], "seller@example.com");

    // The seller sees the history; the buyer may not.
    let history = seller
        .gql(&stack, "query($t: ID!) { ticket(id: $t) { history { type version } } }", json!({"t": ticket}))
        .await;
    assert_eq!(history["data"]["ticket"]["history"][1]["type"], "OrderPlaced");
    let denied =
        buyer.gql(&stack, "query($t: ID!) { ticket(id: $t) { history { type } } }", json!({"t": ticket})).await;
    assert_eq!(code(&denied), "FORBIDDEN");
    // Only the buyer (or an admin) reads the order.
    assert_eq!(
        code(&seller.gql(&stack, "query($o: ID!) { order(id: $o) { id } }", json!({"o": order_id})).await),
        "FORBIDDEN"
    );

    let declined = buyer
        .gql(
            &stack,
            "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_chargeDeclined\") { id } }",
            json!({"o": order_id}),
        )
        .await;
    assert_eq!(code(&declined), "PAYMENT_DECLINED");
    let paid = buyer.gql(&stack, "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { status amountCents order { status ticket { status } } } }", json!({"o": order_id})).await;
    assert_eq!(paid["data"]["payOrder"]["status"], "SUCCEEDED");
    assert_eq!(paid["data"]["payOrder"]["amountCents"], 2500);
    assert_eq!(paid["data"]["payOrder"]["order"]["status"], "COMPLETE");
    assert_eq!(paid["data"]["payOrder"]["order"]["ticket"]["status"], "SOLD");
    let mine = buyer.gql(&stack, "{ myOrders { nodes { id status payment { status } } } }", json!({})).await;
    assert_eq!(mine["data"]["myOrders"]["nodes"][0]["status"], "COMPLETE");

    let metrics = stack
        .app
        .clone()
        .oneshot(HttpRequest::get("/metrics").body(Body::empty()).unwrap_or_default())
        .await
        .unwrap_or_else(|e| match e {});
    let text = String::from_utf8(axum::body::to_bytes(metrics.into_body(), 1 << 20).await.unwrap_or_default().to_vec())
        .unwrap_or_default();
    assert!(text.contains("ticketing_commands_total{outcome=\"ok\"} 6"), "{text}");
    assert!(text.contains("ticketing_commands_total{outcome=\"refused\"} 1"), "{text}");
    // A slot release may still be on its way to the projector: the lag is small, not always 0.
    let lag: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ticketing_projection_lag_events "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lag metric in {text}"));
    assert!(lag <= 2, "{text}");
}

#[tokio::test]
async fn one_idempotency_key_names_one_hold_and_that_hold_expires() {
    let stack = stack_with(2, |_| {}).await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;
    let create = "mutation { createTicket(title: \"Opera\", priceCents: 2500) { id } }";
    let t1 = seller.gql(&stack, create, json!({})).await["data"]["createTicket"]["id"].clone();
    let t2 = seller.gql(&stack, create, json!({})).await["data"]["createTicket"]["id"].clone();
    let hold = "mutation($t: ID!) { createOrder(ticketId: $t, idempotencyKey: \"k\") { id status } }";

    let first = buyer.gql(&stack, hold, json!({"t": t1})).await;
    let order = first["data"]["createOrder"]["id"].clone();
    assert_eq!(first["data"]["createOrder"]["status"], "CREATED", "{first}");
    let reused = buyer.gql(&stack, hold, json!({"t": t2})).await;
    assert_eq!(code(&reused), "CONFLICT", "{reused}");
    assert_eq!(reused["errors"][0]["extensions"]["field"], "idempotencyKey");
    let status = "query($t: ID!) { ticket(id: $t) { status } }";
    assert_eq!(buyer.gql(&stack, status, json!({"t": t2})).await["data"]["ticket"]["status"], "AVAILABLE");
    let again = buyer.gql(&stack, hold, json!({"t": t1})).await;
    assert_eq!(again["data"]["createOrder"]["id"], order, "the same request answers the first order");

    // The one hold expires on time and frees its ticket.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let seen = buyer
            .gql(&stack, "query($o: ID!) { order(id: $o) { status ticket { status } } }", json!({"o": order}))
            .await;
        if seen["data"]["order"]["status"] == "CANCELLED" {
            assert_eq!(seen["data"]["order"]["ticket"]["status"], "AVAILABLE");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the hold never expired: {seen}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(buyer.gql(&stack, status, json!({"t": t2})).await["data"]["ticket"]["status"], "AVAILABLE");
}

#[tokio::test]
async fn a_stored_event_that_todays_rules_refuse_still_loads_decides_projects_and_shows() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    let me = seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    let seller_id = me["data"]["signUp"]["id"].as_str().unwrap_or_default().to_owned();
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;

    // Listed when titles could hold a tab (today's rules refuse control characters).
    let ticket = uuid::Uuid::new_v4();
    let stored = json!({"version": 1, "type": "TicketListed", "data": {
        "ticket_id": ticket, "seller": seller_id, "title": "Opera\tnight", "price_cents": 2500,
        "currency": "USD", "at": "2026-01-01T12:00:00Z"}});
    let subject = stack.store.settings().wire_subject(&format!("ticketing.ticket.{ticket}.ticket"));
    let js = async_nats::jetstream::new(stack.store.client().clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Ticketing-Event", "TicketListed");
    let ack =
        js.publish_with_headers(subject, headers, stored.to_string().into()).await.unwrap_or_else(|e| panic!("{e}"));
    ack.await.unwrap_or_else(|e| panic!("{e}"));

    let query = "query($t: ID!) { ticket(id: $t) { title status priceCents } }";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let seen = buyer.gql(&stack, query, json!({"t": ticket})).await;
        if !seen["data"]["ticket"].is_null() {
            assert_eq!(seen["data"]["ticket"]["title"], "Opera\tnight", "{seen}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stored listing was never projected: {seen}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The command side loads and decides on it too.
    let order = buyer
        .gql(
            &stack,
            "mutation($t: ID!) { createOrder(ticketId: $t) { status ticket { status } } }",
            json!({"t": ticket}),
        )
        .await;
    assert_eq!(order["data"]["createOrder"]["status"], "CREATED", "{order}");
    assert_eq!(order["data"]["createOrder"]["ticket"]["status"], "RESERVED");
}

#[tokio::test]
async fn a_subscriber_that_lagged_behind_the_notifications_still_gets_the_final_state() {
    use futures::StreamExt;
    let stack = stack().await;
    let mut seller = Client::default();
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    let created =
        seller.gql(&stack, "mutation { createTicket(title: \"Opera\", priceCents: 2500) { id } }", json!({})).await;
    let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();

    let subscription = format!("subscription {{ ticketChanged(id: \"{ticket}\") {{ id title }} }}");
    let schema = stack.state.schema.clone();
    let mut stream = schema.execute_stream(async_graphql::Request::new(subscription).data(stack.state.clone()));
    // The first poll starts following; nothing has changed yet.
    assert!(tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await.is_err());

    // The ticket's last change, then far more commits than the subscriber's buffer holds, all
    // about other rows, before it reads again.
    let mut watcher = stack.state.changes.subscribe();
    let update = "mutation($t: ID!) { updateTicket(id: $t, title: \"Opera, final\") { title } }";
    assert_eq!(seller.gql(&stack, update, json!({"t": ticket})).await["data"]["updateTicket"]["title"], "Opera, final");
    // Its notification is passed on to subscribers just after the mutation returns: wait until a
    // receiver of our own has seen it, so the subscriber has it queued too.
    let ticket_id: uuid::Uuid = ticket.parse().unwrap_or_else(|e| panic!("{e}"));
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(changed) = watcher.recv().await {
            if changed.tickets.contains(&ticket_id) {
                return;
            }
        }
    });
    waited.await.unwrap_or_else(|_| panic!("the update's notification never reached the subscribers"));
    for n in 0..5000_u64 {
        let other = query_service::Changed::new(n, vec![uuid::Uuid::new_v4()], vec![]);
        let _ = stack.state.changes.send(std::sync::Arc::new(other));
    }
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap_or_else(|_| panic!("the subscriber never got the ticket's final state"))
        .unwrap_or_else(|| panic!("the subscription ended"));
    let data = next.data.into_json().unwrap_or_default();
    assert_eq!(data["ticketChanged"]["title"], "Opera, final", "{data}");
}

#[tokio::test]
async fn a_declined_charge_is_visible_as_soon_as_the_error_is_answered() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;
    for round in 0..5 {
        let created =
            seller.gql(&stack, "mutation { createTicket(title: \"Opera\", priceCents: 2500) { id } }", json!({})).await;
        let ticket = created["data"]["createTicket"]["id"].clone();
        let order =
            buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
        let order = order["data"]["createOrder"]["id"].clone();
        let pay = "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_chargeDeclined\") { id } }";
        assert_eq!(code(&buyer.gql(&stack, pay, json!({"o": order})).await), "PAYMENT_DECLINED");
        // The page reloads the order right after the error: it shows the declined payment.
        let seen = buyer
            .gql(&stack, "query($o: ID!) { order(id: $o) { status payment { status } } }", json!({"o": order}))
            .await;
        assert_eq!(seen["data"]["order"]["status"], "CREATED", "round {round}: {seen}");
        assert_eq!(seen["data"]["order"]["payment"]["status"], "FAILED", "round {round}: {seen}");
    }
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_pending_not_failed_then_completes_once() {
    let stack = stack_full(900, |c| c.payment_reconcile_after_seconds = 1, |_| {}).await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;
    let created =
        seller.gql(&stack, "mutation { createTicket(title: \"Opera\", priceCents: 2500) { id } }", json!({})).await;
    let ticket = created["data"]["createTicket"]["id"].clone();
    let order = buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    let order = order["data"]["createOrder"]["id"].clone();

    let pay = "mutation($o: ID!, $tok: String!, $k: String) { payOrder(orderId: $o, token: $tok, idempotencyKey: $k) { status } }";
    let lost = buyer.gql(&stack, pay, json!({"o": order, "tok": "tok_timeout", "k": "first"})).await;
    assert_eq!(lost["data"]["payOrder"]["status"], "PENDING", "{lost}");
    let seen = buyer.gql(&stack, "query($o: ID!) { order(id: $o) { status } }", json!({"o": order})).await;
    assert_eq!(seen["data"]["order"]["status"], "AWAITING_PAYMENT");
    // Paying again with a new key (what the web app does) cannot charge a second time.
    let again = buyer.gql(&stack, pay, json!({"o": order, "tok": "tok_visa", "k": "second"})).await;
    assert_eq!(code(&again), "CONFLICT", "{again}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = buyer
            .gql(
                &stack,
                "query($o: ID!) { order(id: $o) { status payment { status } ticket { status } } }",
                json!({"o": order}),
            )
            .await;
        if seen["data"]["order"]["status"] == "COMPLETE" {
            assert_eq!(seen["data"]["order"]["payment"]["status"], "SUCCEEDED");
            assert_eq!(seen["data"]["order"]["ticket"]["status"], "SOLD");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reconciled: {seen}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_write_that_succeeded_is_answered_even_when_the_projector_is_far_behind() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;
    stack.stop_projector();
    // Past the read-your-writes bound, the stored listing is answered as written, not as an error
    // that would invite a duplicate.
    let created = seller
        .gql(
            &stack,
            "mutation { createTicket(title: \"  Opera  \", priceCents: 2500) { id title priceCents status } }",
            json!({}),
        )
        .await;
    assert_eq!(created["data"]["createTicket"]["title"], "Opera", "{created}");
    assert_eq!(created["data"]["createTicket"]["status"], "AVAILABLE");
    let ticket = created["data"]["createTicket"]["id"].clone();
    let held =
        buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id status } }", json!({"t": ticket})).await;
    assert_eq!(held["data"]["createOrder"]["status"], "CREATED", "{held}");
}

#[tokio::test]
async fn a_list_loads_related_rows_in_one_batch_not_one_query_per_item() {
    let stack = stack().await;
    let mut sellers = Vec::new();
    for n in 0..8 {
        let mut seller = Client::default();
        seller.gql(&stack, SIGN_UP, json!({"e": format!("batch{n}@example.com")})).await;
        seller.gql(&stack, "mutation { createTicket(title: \"B\", priceCents: 100) { id } }", json!({})).await;
        sellers.push(seller);
    }
    let loader_queries = |stack: &Stack| {
        let app = stack.app.clone();
        async move {
            let response = app
                .oneshot(HttpRequest::get("/metrics").body(Body::empty()).unwrap_or_default())
                .await
                .unwrap_or_else(|e| match e {});
            let text = String::from_utf8(
                axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default().to_vec(),
            )
            .unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("ticketing_loader_queries_total "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        }
    };
    // Sellers' roles are shown to admins only: an admin reads them, in one batch.
    let mut admin = Client::default();
    admin.gql(&stack, SIGN_UP, json!({"e": "boss@example.com"})).await;
    let before = loader_queries(&stack).await;
    let list = admin.gql(&stack, "{ tickets(first: 8) { nodes { id seller { id roles } } } }", json!({})).await;
    assert_eq!(list["data"]["tickets"]["nodes"].as_array().map(Vec::len), Some(8));
    assert!(list["data"]["tickets"]["nodes"][0]["seller"]["roles"].is_array(), "{list}");
    assert_eq!(loader_queries(&stack).await - before, 1, "eight sellers, one query");
    // Only their ids: no account is read at all.
    let before = loader_queries(&stack).await;
    let list = Client::default().gql(&stack, "{ tickets(first: 8) { nodes { id seller { id } } } }", json!({})).await;
    let sellers: Vec<&str> = list["data"]["tickets"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["seller"]["id"].as_str())
        .collect();
    assert_eq!(sellers.len(), 8, "{list}");
    assert_eq!(loader_queries(&stack).await - before, 0, "seller ids come from the ticket rows");
}

#[tokio::test]
async fn errors_carry_codes_and_fields() {
    let stack = stack().await;
    let mut anonymous = Client::default();
    let refused =
        anonymous.gql(&stack, "mutation { createTicket(title: \"x\", priceCents: 1) { id } }", json!({})).await;
    assert_eq!(code(&refused), "UNAUTHENTICATED");
    assert_eq!(anonymous.gql(&stack, "{ me { id } }", json!({})).await["data"]["me"], Value::Null);

    let mut seller = Client::default();
    seller.gql(&stack, SIGN_UP, json!({"e": "s@example.com"})).await;
    let bad = seller.gql(&stack, "mutation { createTicket(title: \"  \", priceCents: 100) { id } }", json!({})).await;
    assert_eq!((code(&bad), bad["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("title")));
    let taken = Client::default().gql(&stack, SIGN_UP, json!({"e": "S@example.com"})).await;
    assert_eq!((code(&taken), taken["errors"][0]["extensions"]["field"].as_str()), ("CONFLICT", Some("email")));
    let unknown = seller
        .gql(&stack, "mutation { createOrder(ticketId: \"00000000-0000-0000-0000-000000000000\") { id } }", json!({}))
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND");
    let page = seller.gql(&stack, "{ tickets(first: 1000) { nodes { id } } }", json!({})).await;
    assert_eq!(code(&page), "BAD_USER_INPUT");

    // CONFLICT: a held ticket cannot be held again or edited; a paid order cannot be cancelled.
    let ticket = seller.gql(&stack, "mutation { createTicket(title: \"C\", priceCents: 100) { id } }", json!({})).await;
    let t = json!({"t": ticket["data"]["createTicket"]["id"]});
    let (mut first, mut second) = (Client::default(), Client::default());
    first.gql(&stack, SIGN_UP, json!({"e": "first@example.com"})).await;
    second.gql(&stack, SIGN_UP, json!({"e": "second@example.com"})).await;
    let order = first.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", t.clone()).await;
    assert_eq!(
        code(&second.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", t.clone()).await),
        "CONFLICT"
    );
    assert_eq!(
        code(&seller.gql(&stack, "mutation($t: ID!) { updateTicket(id: $t, title: \"D\") { id } }", t).await),
        "CONFLICT"
    );
    let o = json!({"o": order["data"]["createOrder"]["id"]});
    first.gql(&stack, "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { id } }", o.clone()).await;
    assert_eq!(
        code(&first.gql(&stack, "mutation($o: ID!) { cancelOrder(id: $o) { id } }", o.clone()).await),
        "CONFLICT"
    );
    assert_eq!(
        code(&first.gql(&stack, "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { id } }", o).await),
        "CONFLICT"
    );
}

/// `{ me { email } }` on a gateway's router with a session cookie: the email, or null.
async fn me_on(app: &axum::Router, cookie: &str) -> Value {
    let request = HttpRequest::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, format!("session={cookie}"))
        .body(Body::from(json!({"query": "{ me { email } }"}).to_string()))
        .unwrap_or_default();
    let response = app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    body["data"]["me"]["email"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_checks_arriving_together_share_a_query_and_a_sign_out_elsewhere_is_refused_at_once() {
    let stack = stack().await;
    let other =
        query_service::AppState::new(stack.state.config.clone(), stack.state.pool.clone(), stack.state.nats.clone())
            .await;
    let other_app = query_service::app(other.clone());
    let metric = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);

    // A busy gateway: 400 requests of 40 users (4 of them signed out) at once.
    let mut users = Vec::new();
    for n in 0..40 {
        let mut user = Client::default();
        let email = format!("batched-{n}@example.com");
        user.gql(&stack, SIGN_UP, json!({"e": email})).await;
        let token = user.cookie.clone().unwrap_or_default();
        if n % 10 == 0 {
            assert_eq!(user.gql(&stack, "mutation { signOut }", json!({})).await["data"]["signOut"], true);
        }
        users.push((email, token, n % 10 != 0));
    }
    let (checks, queries) = (metric(&other.sign_outs.counts.reads), metric(&other.sign_outs.counts.queries));
    let mut asked = tokio::task::JoinSet::new();
    for round in 0..10 {
        for (email, token, live) in users.clone() {
            let app = other_app.clone();
            asked.spawn(async move { (round, email, live, me_on(&app, &token).await) });
        }
    }
    while let Some(answer) = asked.join_next().await {
        let (round, email, live, me) = answer.unwrap_or_else(|e| panic!("{e}"));
        let expected = if live { Value::from(email.as_str()) } else { Value::Null };
        assert_eq!(me, expected, "round {round}: {email} (live: {live})");
    }
    let checked = metric(&other.sign_outs.counts.reads) - checks;
    let asked_db = metric(&other.sign_outs.counts.queries) - queries;
    assert_eq!(checked, 400, "every request's session was checked");
    assert!(asked_db < checked, "{checked} checks made {asked_db} queries: none shared");

    // A sign-out through the first gateway is refused by the other one as soon as it answered,
    // while the other one is busy checking other sessions (a query is always in flight there).
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for (_, token, live) in users.iter().filter(|(_, _, live)| *live).take(8).cloned() {
        let (app, busy) = (other_app.clone(), std::sync::Arc::clone(&busy));
        load.spawn(async move {
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(me_on(&app, &token).await.is_null(), !live);
            }
        });
    }
    for n in 0..10 {
        let email = format!("leaves-elsewhere-{n}@example.com");
        let mut user = Client::default();
        user.gql(&stack, SIGN_UP, json!({"e": email})).await;
        let token = user.cookie.clone().unwrap_or_default();
        assert_eq!(me_on(&other_app, &token).await, email.as_str(), "signed in on the other gateway too");
        // Its own session is checked over and over on the other gateway meanwhile, so a check of
        // it is in flight there when the sign-out answers.
        let checking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut own = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (app, checking, token) = (other_app.clone(), std::sync::Arc::clone(&checking), token.clone());
            own.spawn(async move {
                while checking.load(std::sync::atomic::Ordering::Relaxed) {
                    me_on(&app, &token).await;
                }
            });
        }
        assert_eq!(user.gql(&stack, "mutation { signOut }", json!({})).await["data"]["signOut"], true);
        assert_eq!(me_on(&other_app, &token).await, Value::Null, "round {n}: the other gateway still let it in");
        checking.store(false, std::sync::atomic::Ordering::Relaxed);
        while own.join_next().await.is_some() {}
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.unwrap_or_else(|e| panic!("a live session was refused under load: {e}"));
    }

    // `ticket(id)` the same way: reads that arrive together share a query, and a change made
    // through the first gateway is read by the other one as soon as the mutation answered.
    let seller = &mut Client { cookie: Some(users[1].1.clone()) };
    let ticket = seller
        .gql(&stack, "mutation { createTicket(title: \"Rev 0\", priceCents: 100) { id } }", json!({}))
        .await["data"]["createTicket"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let title_on = |app: axum::Router, ticket: String| async move {
        let body = json!({"query": "query($id: ID!) { ticket(id: $id) { title } }", "variables": {"id": ticket}});
        let request = HttpRequest::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap_or_default();
        let response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        body["data"]["ticket"]["title"].as_str().unwrap_or("(none)").to_owned()
    };
    let (reads, queries) = (metric(&other.tickets.counts.reads), metric(&other.tickets.counts.queries));
    let mut asked = tokio::task::JoinSet::new();
    for _ in 0..200 {
        asked.spawn(title_on(other_app.clone(), ticket.clone()));
    }
    while let Some(title) = asked.join_next().await {
        assert_eq!(title.unwrap_or_else(|e| panic!("{e}")), "Rev 0");
    }
    let (read, asked_db) =
        (metric(&other.tickets.counts.reads) - reads, metric(&other.tickets.counts.queries) - queries);
    assert_eq!(read, 200, "every ticket(id) went through the batched read");
    assert!(asked_db < read, "{read} reads made {asked_db} queries: none shared");

    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, busy, ticket) = (other_app.clone(), std::sync::Arc::clone(&busy), ticket.clone());
        load.spawn(async move {
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(title_on(app.clone(), ticket.clone()).await.starts_with("Rev "));
            }
        });
    }
    for n in 1..=10 {
        let update = "mutation($id: ID!, $t: String!) { updateTicket(id: $id, title: $t) { title } }";
        let title = format!("Rev {n}");
        let answer = seller.gql(&stack, update, json!({"id": ticket, "t": title})).await;
        assert_eq!(answer["data"]["updateTicket"]["title"], title.as_str(), "{answer}");
        assert_eq!(title_on(other_app.clone(), ticket.clone()).await, title, "the other gateway read an old row");
    }
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.unwrap_or_else(|e| panic!("a read under load failed: {e}"));
    }
}

#[tokio::test]
async fn signing_out_revokes_the_token_and_tampered_tokens_are_anonymous() {
    let stack = stack().await;
    let mut user = Client::default();
    user.gql(&stack, SIGN_UP, json!({"e": "leaver@example.com"})).await;
    let token = user.cookie.clone().unwrap_or_default();
    assert_eq!(user.gql(&stack, "{ me { email } }", json!({})).await["data"]["me"]["email"], "leaver@example.com");

    let mut tampered = Client { cookie: Some(format!("{token}x")) };
    assert_eq!(tampered.gql(&stack, "{ me { email } }", json!({})).await["data"]["me"], Value::Null);

    assert_eq!(user.gql(&stack, "mutation { signOut }", json!({})).await["data"]["signOut"], true);
    assert_eq!(user.cookie, None, "the cookie is cleared");
    let mut replayed = Client { cookie: Some(token) };
    assert_eq!(
        replayed.gql(&stack, "{ me { email } }", json!({})).await["data"]["me"],
        Value::Null,
        "a revoked token no longer works"
    );

    // A token signed with the right key but already expired is refused too.
    let expired = query_service::session::Sessions::new(SECRET, -10, false)
        .issue(
            domain::AccountId(uuid::Uuid::new_v4()),
            domain::SessionId(uuid::Uuid::new_v4()),
            "x@example.com",
            vec![command_service::api::Role::Admin],
        )
        .map(|(token, _)| token)
        .unwrap_or_default();
    let mut stale = Client { cookie: Some(expired) };
    assert_eq!(code(&stale.gql(&stack, "{ myOrders { nodes { id } } }", json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn sign_in_is_throttled_per_client_address_over_http() {
    let stack = stack().await;
    Client::default().gql(&stack, SIGN_UP, json!({"e": "target@example.com"})).await;
    let attempt = |addr: &str, email: &str, password: &str| {
        let query = format!("mutation {{ signIn(email: \"{email}\", password: \"{password}\") {{ id }} }}");
        let mut request = HttpRequest::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"query": query}).to_string()))
            .unwrap_or_default();
        let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{e}"));
        request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        let app = stack.app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            serde_json::from_slice::<Value>(&bytes).unwrap_or_default()
        }
    };
    for n in 0..20 {
        let body = attempt("203.0.113.9:4000", &format!("probe{n}@example.com"), "guess").await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    assert_eq!(code(&attempt("203.0.113.9:4001", "target@example.com", "correct horse").await), "RATE_LIMITED");
    let elsewhere = attempt("198.51.100.2:4000", "target@example.com", "correct horse").await;
    assert!(elsewhere["errors"].is_null(), "{elsewhere}");
}

#[tokio::test]
async fn protection_json_only_origin_checks_and_depth_limit() {
    let stack = stack().await;
    let mut user = Client::default();
    user.gql(&stack, SIGN_UP, json!({"e": "careful@example.com"})).await;

    let form = HttpRequest::post("/graphql")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("query={me{id}}"))
        .unwrap_or_default();
    let response = stack.app.clone().oneshot(form).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let body = json!({"query": "{ me { id } }"}).to_string();
    let (status, _) = user.post(&stack, body.clone(), Some("https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = user.post(&stack, body.clone(), Some("https://tickets.example")).await;
    assert_eq!(status, StatusCode::OK);
    // The web app the gateway serves itself: its Origin names the Host it called.
    let cookie = format!("session={}", user.cookie.clone().unwrap_or_default());
    for (origin, expected) in
        [("http://gateway.test:8080", StatusCode::OK), ("http://evil.test:8080", StatusCode::FORBIDDEN)]
    {
        let request = HttpRequest::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::HOST, "gateway.test:8080")
            .header(header::ORIGIN, origin)
            .header(header::COOKIE, &cookie)
            .body(Body::from(body.clone()))
            .unwrap_or_default();
        let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), expected, "{origin}");
    }

    let deep = format!(
        "{{ myOrders {{ nodes {{ {} id {} }} }} }}",
        "payment { order { ticket { seller { id } } } payment { order {".repeat(3),
        "} } }".repeat(3)
    );
    let response = user.gql(&stack, &deep, json!({})).await;
    assert!(response["errors"][0]["message"].as_str().unwrap_or("").to_lowercase().contains("nested"), "{response}");
}

mod live {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn serve(stack: &Stack) -> std::net::SocketAddr {
        common::serve(stack).await
    }

    async fn connect(addr: std::net::SocketAddr, cookie: Option<&str>, origin: Option<&str>) -> Result<Socket, String> {
        let mut request = format!("ws://{addr}/graphql").into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().map_err(|_| "header")?);
        if let Some(cookie) = cookie {
            request.headers_mut().insert("Cookie", format!("session={cookie}").parse().map_err(|_| "header")?);
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", origin.parse().map_err(|_| "header")?);
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
        socket.send(Message::text(json!({"type": "connection_init"}).to_string())).await.map_err(|e| e.to_string())?;
        let ack = next(&mut socket).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        Ok(socket)
    }

    /// The next text message, whatever its type.
    async fn next_text(socket: &mut Socket) -> Value {
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
                .await
                .unwrap_or_else(|_| panic!("no message within 10 s"))
                .unwrap_or_else(|| panic!("socket closed"))
                .unwrap_or_else(|e| panic!("{e}"));
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap_or_default();
            }
        }
    }

    /// The next message that is not a ping or a pong.
    async fn next(socket: &mut Socket) -> Value {
        loop {
            let value = next_text(socket).await;
            if value["type"] != "ping" && value["type"] != "pong" {
                return value;
            }
        }
    }

    /// A ping answered: the socket is up and everything sent before it was read by the server.
    /// Fails on any other message meanwhile.
    async fn round_trip(socket: &mut Socket) {
        socket.send(Message::text(json!({"type": "ping"}).to_string())).await.unwrap_or_else(|e| panic!("{e}"));
        loop {
            let value = next_text(socket).await;
            match value["type"].as_str() {
                Some("pong") => return,
                Some("ping") => {}
                _ => panic!("expected the pong, got {value}"),
            }
        }
    }

    /// Subscribes, and waits until the gateway has registered the subscription (its receiver of
    /// change notifications exists): from then on no change can be missed. A pong alone does not
    /// prove it: the resolver checks the session and the order before it starts listening.
    async fn subscribe_registered(stack: &Stack, socket: &mut Socket, id: &str, query: &str) {
        round_trip(socket).await;
        let before = stack.state.changes.receiver_count();
        subscribe(socket, id, query).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stack.state.changes.receiver_count() <= before {
            assert!(std::time::Instant::now() < deadline, "the subscription {id} was never registered");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
        let message = json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string();
        socket.send(Message::text(message)).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// The gateway counts open subscriptions (`ticketing_subscriptions`): each kind while it is
    /// registered, none once its socket closes or it is stopped; the benchmark waits on it.
    #[tokio::test]
    async fn open_subscriptions_are_counted_until_their_socket_closes() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let open = || stack.state.metrics.subscriptions.load(std::sync::atomic::Ordering::Relaxed);
        let gauge = || async {
            let metrics = stack
                .app
                .clone()
                .oneshot(HttpRequest::get("/metrics").body(Body::empty()).unwrap_or_default())
                .await
                .unwrap_or_else(|e| match e {});
            let body = axum::body::to_bytes(metrics.into_body(), 1 << 20).await.unwrap_or_default();
            let text = String::from_utf8(body.to_vec()).unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("ticketing_subscriptions "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no subscriptions gauge in {text}"))
        };
        let until = |want: u64| async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while open() != want {
                assert!(std::time::Instant::now() < deadline, "{} subscriptions open, not {want}", open());
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        assert_eq!(gauge().await, 0);
        let mut organizer = Client::default();
        organizer.gql(&stack, SIGN_UP, json!({"e": "gauge-organizer@example.com"})).await;
        let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(5))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let create = "mutation($s: String!) { createEvent(input: {title: \"Counted\", venue: \"Hall\", startsAt: $s,
            ticketTypes: [{name: \"Standing\", priceCents: 100, capacity: 10}]}) { id } }";
        let created = organizer.gql(&stack, create, json!({"s": starts_at})).await;
        let event = created["data"]["createEvent"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();

        let mut first = connect(addr, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        subscribe_registered(&stack, &mut first, "t", "subscription { ticketChanged { id } }").await;
        let query = format!("subscription {{ eventChanged(id: \"{event}\") {{ version }} }}");
        subscribe_registered(&stack, &mut first, "e", &query).await;
        let mut second = connect(addr, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        subscribe_registered(&stack, &mut second, "e", &query).await;
        until(3).await;
        assert_eq!(gauge().await, 3);
        // An unknown event is refused and never counted.
        subscribe(
            &mut second,
            "x",
            &format!("subscription {{ eventChanged(id: \"{}\") {{ version }} }}", uuid::Uuid::new_v4()),
        )
        .await;
        let refused = next(&mut second).await;
        assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{refused}");
        assert_eq!(open(), 3);

        // Stopped by the client, then a socket closed with one still open.
        second
            .send(Message::text(json!({"id": "e", "type": "complete"}).to_string()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        until(2).await;
        drop(first);
        until(0).await;
        assert_eq!(gauge().await, 0);
    }

    /// `eventChanged` coalesces: a burst of holds on one event reaches a subscriber as pushes at
    /// least 100 ms apart (at most 10 a second), and the last push is the state after the burst.
    #[tokio::test]
    async fn event_changed_pushes_at_most_ten_a_second_and_the_last_is_the_latest_state() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let mut organizer = Client::default();
        organizer.gql(&stack, SIGN_UP, json!({"e": "ev-organizer@example.com"})).await;
        let starts_at = (time::OffsetDateTime::now_utc() + time::Duration::days(5))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let create = "mutation($s: String!) { createEvent(input: {title: \"Burst\", venue: \"Hall\", startsAt: $s,
            ticketTypes: [{name: \"Standing\", priceCents: 100, capacity: 100}]}) { id ticketTypes { id } } }";
        let created = organizer.gql(&stack, create, json!({"s": starts_at})).await;
        let event = created["data"]["createEvent"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
        let standing = created["data"]["createEvent"]["ticketTypes"][0]["id"].as_str().unwrap_or_default().to_owned();
        let mut buyers = Vec::new();
        for n in 0..20 {
            let mut buyer = Client::default();
            buyer.gql(&stack, SIGN_UP, json!({"e": format!("ev-buyer{n}@example.com")})).await;
            buyers.push(buyer);
        }

        let mut socket = connect(addr, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        let query = format!("subscription {{ eventChanged(id: \"{event}\") {{ available version }} }}");
        subscribe_registered(&stack, &mut socket, "e1", &query).await;
        let order = "mutation($e: ID!, $t: ID!) { createEventOrder(eventId: $e, items: [{ticketTypeId: $t, quantity: 2}]) { id } }";
        // One hold every 15 ms or so (without coalescing, a push each), read as they come.
        let holds = async {
            let mut burst = Vec::new();
            for buyer in &mut buyers {
                burst.push(buyer.gql(&stack, order, json!({"e": event, "t": standing})).await);
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            burst
        };
        let push_of = |pushed: Value| {
            let changed = &pushed["payload"]["data"]["eventChanged"];
            let (available, version) = (changed["available"].as_i64(), changed["version"].as_i64());
            (std::time::Instant::now(), available.unwrap_or_else(|| panic!("{pushed}")), version.unwrap_or_default())
        };
        let reads = async {
            let mut pushes: Vec<(std::time::Instant, i64, i64)> = Vec::new();
            while pushes.last().is_none_or(|(_, available, _)| *available != 60) {
                pushes.push(push_of(next(&mut socket).await));
            }
            pushes
        };
        let (burst, mut pushes) = tokio::join!(holds, reads);
        assert!(burst.iter().all(|r| r["errors"].is_null()), "{burst:?}");
        // A hold is two events on the event (its stock, then its order), which may be projected
        // in two commits: the push after the last hold's first one may still be followed by one
        // more, until the stream is quiet.
        while let Ok(pushed) = tokio::time::timeout(std::time::Duration::from_millis(400), next(&mut socket)).await {
            pushes.push(push_of(pushed));
        }
        for pair in pushes.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap >= std::time::Duration::from_millis(80), "two pushes {gap:?} apart: {pushes:?}");
            assert!(pair[1].1 <= pair[0].1, "availability went back up: {pushes:?}");
            assert!(pair[1].2 > pair[0].2, "a push that was not newer: {pushes:?}");
        }
        // The last push was the latest state.
        let now =
            organizer.gql(&stack, "query($e: ID!) { event(id: $e) { available version } }", json!({"e": event})).await;
        let last = pushes.last().map(|(_, available, version)| json!({"available": available, "version": version}));
        assert_eq!(Some(now["data"]["event"].clone()), last, "{pushes:?}");
        assert!(pushes.len() < 20, "{} pushes for 20 holds", pushes.len());
    }

    #[tokio::test]
    async fn a_subscription_opened_after_a_mutation_returned_never_shows_an_older_state() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let (mut seller, mut buyer) = (Client::default(), Client::default());
        seller.gql(&stack, SIGN_UP, json!({"e": "ryw-seller@example.com"})).await;
        buyer.gql(&stack, SIGN_UP, json!({"e": "ryw-buyer@example.com"})).await;
        for round in 0..5 {
            let created = seller
                .gql(&stack, "mutation { createTicket(title: \"First\", priceCents: 900) { id } }", json!({}))
                .await;
            let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
            let update = "mutation($t: ID!) { updateTicket(id: $t, title: \"Second\") { version } }";
            let updated = seller.gql(&stack, update, json!({"t": ticket})).await;
            let version = updated["data"]["updateTicket"]["version"].as_i64().unwrap_or_else(|| panic!("{updated}"));

            // Subscribed right after the update returned, then a change by someone else.
            let mut socket = connect(addr, seller.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
            let id = format!("t{round}");
            let query = format!("subscription {{ ticketChanged(id: \"{ticket}\") {{ title status version }} }}");
            subscribe_registered(&stack, &mut socket, &id, &query).await;
            // A notification from before the update reaching it late (as after a reconnect) must
            // not show the older state either.
            let ticket_id: uuid::Uuid = ticket.parse().unwrap_or_else(|e| panic!("{e}"));
            let stale = query_service::Changed::new(1, vec![ticket_id], vec![]);
            let _ = stack.state.changes.send(std::sync::Arc::new(stale));
            buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
            loop {
                let pushed = next(&mut socket).await;
                assert_eq!(pushed["id"].as_str(), Some(id.as_str()), "{pushed}");
                let seen = &pushed["payload"]["data"]["ticketChanged"];
                assert_eq!(seen["title"].as_str(), Some("Second"), "older than the update: {pushed}");
                assert!(seen["version"].as_i64().is_some_and(|v| v >= version), "older than the update: {pushed}");
                if seen["status"] == "RESERVED" {
                    break;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_sellers_subscription_sees_another_clients_hold_and_payment_without_polling() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let (mut seller, mut buyer, mut stranger) = (Client::default(), Client::default(), Client::default());
        seller.gql(&stack, SIGN_UP, json!({"e": "live-seller@example.com"})).await;
        buyer.gql(&stack, SIGN_UP, json!({"e": "live-buyer@example.com"})).await;
        stranger.gql(&stack, SIGN_UP, json!({"e": "live-stranger@example.com"})).await;
        let created = seller
            .gql(&stack, "mutation { createTicket(title: \"Live show\", priceCents: 900) { id } }", json!({}))
            .await;
        let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();

        let mut socket = connect(addr, seller.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
        let query = format!("subscription {{ ticketChanged(id: \"{ticket}\") {{ id status version }} }}");
        subscribe_registered(&stack, &mut socket, "t", &query).await;

        let order =
            buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
        let order_id = order["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
        let held = next(&mut socket).await;
        assert_eq!(
            (held["type"].as_str(), held["payload"]["data"]["ticketChanged"]["status"].as_str()),
            (Some("next"), Some("RESERVED")),
            "{held}"
        );

        // The buyer follows the order; a stranger may not.
        let mut buyer_socket = connect(addr, buyer.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
        let query = format!("subscription {{ orderChanged(id: \"{order_id}\") {{ status }} }}");
        subscribe_registered(&stack, &mut buyer_socket, "o", &query).await;
        let mut stranger_socket =
            connect(addr, stranger.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
        subscribe(
            &mut stranger_socket,
            "o",
            &format!("subscription {{ orderChanged(id: \"{order_id}\") {{ status }} }}"),
        )
        .await;
        let refused = next(&mut stranger_socket).await;
        assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");

        buyer
            .gql(
                &stack,
                "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { id } }",
                json!({"o": order_id}),
            )
            .await;
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("SOLD") {
            let update = next(&mut socket).await;
            seen.push(update["payload"]["data"]["ticketChanged"]["status"].as_str().unwrap_or_default().to_owned());
        }
        assert!(seen.iter().all(|s| s == "RESERVED" || s == "SOLD"), "ticket states pushed: {seen:?}");
        // The buyer's order: the payment under way, then paid, and nothing else (no cancel, no
        // message that is not this subscription's data).
        let mut order_seen = Vec::new();
        while order_seen.last().map(String::as_str) != Some("COMPLETE") {
            let update = next(&mut buyer_socket).await;
            assert_eq!((update["type"].as_str(), update["id"].as_str()), (Some("next"), Some("o")), "{update}");
            order_seen
                .push(update["payload"]["data"]["orderChanged"]["status"].as_str().unwrap_or_default().to_owned());
        }
        assert!(
            order_seen.iter().all(|s| s == "AWAITING_PAYMENT" || s == "COMPLETE"),
            "order states pushed: {order_seen:?}"
        );
    }

    /// An admin may follow anyone's order, and sees its changes.
    #[tokio::test]
    async fn an_admin_follows_a_buyers_order() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let (mut seller, mut buyer, mut admin) = (Client::default(), Client::default(), Client::default());
        seller.gql(&stack, SIGN_UP, json!({"e": "watched-seller@example.com"})).await;
        buyer.gql(&stack, SIGN_UP, json!({"e": "watched-buyer@example.com"})).await;
        admin.gql(&stack, SIGN_UP, json!({"e": "boss@example.com"})).await;
        let ticket = list_ticket(&stack, seller.clone()).await;
        let order =
            buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
        let order_id = order["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();

        let mut socket = connect(addr, admin.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
        let query = format!("subscription {{ orderChanged(id: \"{order_id}\") {{ status cancelReason }} }}");
        subscribe_registered(&stack, &mut socket, "o", &query).await;
        let cancel = "mutation($o: ID!) { cancelOrder(id: $o) { status } }";
        assert_eq!(
            buyer.gql(&stack, cancel, json!({"o": order_id})).await["data"]["cancelOrder"]["status"],
            "CANCELLED"
        );
        let pushed = next(&mut socket).await;
        assert_eq!(
            (pushed["type"].as_str(), &pushed["payload"]["data"]["orderChanged"]),
            (Some("next"), &json!({"status": "CANCELLED", "cancelReason": "USER"})),
            "{pushed}"
        );
    }

    #[tokio::test]
    async fn an_expiry_reaches_the_buyers_order_subscription_and_the_legacy_protocol_works() {
        let stack = stack_with(1, |_| {}).await;
        let addr = serve(&stack).await;
        let (mut seller, mut buyer) = (Client::default(), Client::default());
        seller.gql(&stack, SIGN_UP, json!({"e": "x-seller@example.com"})).await;
        buyer.gql(&stack, SIGN_UP, json!({"e": "x-buyer@example.com"})).await;

        // Legacy `graphql-ws` (subscriptions-transport-ws): connection_init, start, data.
        let mut request = format!("ws://{addr}/graphql").into_client_request().unwrap_or_else(|e| panic!("{e}"));
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap_or_else(|_| panic!("header")));
        let (mut legacy, _) = tokio_tungstenite::connect_async(request).await.unwrap_or_else(|e| panic!("{e}"));
        legacy
            .send(Message::text(json!({"type": "connection_init"}).to_string()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next(&mut legacy).await["type"], "connection_ack");
        let start =
            json!({"id": "all", "type": "start", "payload": {"query": "subscription { ticketChanged { id status } }"}});
        legacy.send(Message::text(start.to_string())).await.unwrap_or_else(|e| panic!("{e}"));

        let created = seller
            .gql(&stack, "mutation { createTicket(title: \"Short hold\", priceCents: 300) { id } }", json!({}))
            .await;
        let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
        let seen = next(&mut legacy).await;
        assert_eq!(
            (seen["type"].as_str(), seen["payload"]["data"]["ticketChanged"]["id"].as_str()),
            (Some("data"), Some(ticket.as_str())),
            "{seen}"
        );

        let order =
            buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
        let order_id = order["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
        let mut socket = connect(addr, buyer.cookie.as_deref(), None).await.unwrap_or_else(|e| panic!("{e}"));
        subscribe(
            &mut socket,
            "o",
            &format!("subscription {{ orderChanged(id: \"{order_id}\") {{ status cancelReason }} }}"),
        )
        .await;
        // The hold lapses after 1 s: the buyer's page hears about it without asking.
        let expired = next(&mut socket).await;
        assert_eq!(expired["payload"]["data"]["orderChanged"]["status"], "CANCELLED", "{expired}");
        assert_eq!(expired["payload"]["data"]["orderChanged"]["cancelReason"], "EXPIRED");
        // Another client, following every ticket, saw the hold and then the release.
        let mut statuses = Vec::new();
        while statuses.last().map(String::as_str) != Some("AVAILABLE") || statuses.len() < 2 {
            let update = next(&mut legacy).await;
            if update["payload"]["data"]["ticketChanged"]["id"] == ticket.as_str() {
                statuses
                    .push(update["payload"]["data"]["ticketChanged"]["status"].as_str().unwrap_or_default().to_owned());
            }
        }
        assert_eq!(statuses, ["RESERVED", "AVAILABLE"]);
    }

    #[tokio::test]
    async fn the_explorer_is_served_only_with_introspection_on() {
        let on = stack().await;
        let page = on
            .app
            .clone()
            .oneshot(HttpRequest::get("/graphql").body(Body::empty()).unwrap_or_default())
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(page.status(), StatusCode::OK);
        let html =
            String::from_utf8(axum::body::to_bytes(page.into_body(), 1 << 20).await.unwrap_or_default().to_vec())
                .unwrap_or_default();
        assert!(
            html.contains("Ticketing GraphQL") && !html.contains("http://") && !html.contains("https://"),
            "self-contained"
        );
        let off = stack_with(900, |c| c.graphql_introspection = false).await;
        let page = off
            .app
            .clone()
            .oneshot(HttpRequest::get("/graphql").body(Body::empty()).unwrap_or_default())
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_websocket_handshake_with_the_cookie_from_a_foreign_origin_is_refused() {
        let stack = stack().await;
        let addr = serve(&stack).await;
        let mut user = Client::default();
        user.gql(&stack, SIGN_UP, json!({"e": "ws@example.com"})).await;
        let refused = connect(addr, user.cookie.as_deref(), Some("https://evil.example")).await;
        assert!(refused.is_err_and(|e| e.contains("403")), "a foreign origin must be refused");
        connect(addr, user.cookie.as_deref(), Some("https://tickets.example")).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test]
async fn cors_introspection_complexity_body_size_and_the_webhook_route() {
    let stack = stack().await;
    // CORS: the allowed origin gets credentials, another gets nothing.
    let preflight = |origin: &str| {
        HttpRequest::options("/graphql")
            .header(header::ORIGIN, origin)
            .header("Access-Control-Request-Method", "POST")
            .body(Body::empty())
            .unwrap_or_default()
    };
    let allowed = stack.app.clone().oneshot(preflight("https://tickets.example")).await.unwrap_or_else(|e| match e {});
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://tickets.example")
    );
    assert_eq!(allowed.headers().get("access-control-allow-credentials").and_then(|v| v.to_str().ok()), Some("true"));
    let other = stack.app.clone().oneshot(preflight("https://evil.example")).await.unwrap_or_else(|e| match e {});
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Introspection is on here; a schema built with it off refuses it.
    let mut anyone = Client::default();
    let on = anyone.gql(&stack, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(on["data"]["__schema"]["queryType"]["name"], "Query");
    let off = query_service::schema(false).execute("{ __schema { queryType { name } } }").await;
    let off = off.data.into_json().unwrap_or_default();
    assert_eq!(off["__schema"], Value::Null, "introspection must reveal nothing: {off}");

    // Alias abuse runs into the complexity limit.
    let aliases: String = (0..400).map(|n| format!("a{n}: tickets(first: 100) {{ nodes {{ id title }} }} ")).collect();
    let heavy = anyone.gql(&stack, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(heavy["errors"][0]["message"].as_str().unwrap_or("").to_lowercase().contains("complex"), "{heavy}");

    // Oversized bodies are refused before parsing.
    let huge = json!({"query": format!("{{ me {{ id }} }} #{}", "x".repeat(query_service::MAX_BODY))}).to_string();
    let (status, _) = anyone.post(&stack, huge, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // The webhook route forwards to the command service: unsigned is 400.
    let webhook = HttpRequest::post("/webhooks/payments").body(Body::from("{}")).unwrap_or_default();
    let response = stack.app.clone().oneshot(webhook).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Who may do what: every operation as anonymous, owner, another user and admin.
#[tokio::test]
async fn authorization_matrix_for_every_operation() {
    let stack = stack().await;
    let mut anon = Client::default();
    let (mut seller, mut buyer, mut other, mut admin) =
        (Client::default(), Client::default(), Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "m-seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "m-buyer@example.com"})).await;
    other.gql(&stack, SIGN_UP, json!({"e": "m-other@example.com"})).await;
    admin.gql(&stack, SIGN_UP, json!({"e": "boss@example.com"})).await;

    let new_ticket = |c: &mut Client| list_ticket(&stack, c.clone());
    let new_order = |c: &mut Client, ticket: String| {
        let mut c = c.clone();
        let stack = &stack;
        async move {
            let r = c.gql(stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
            r["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    // `None` means allowed; `Some(code)` the refusal expected.
    async fn expect(stack: &Stack, who: &mut Client, query: &str, vars: Value, expected: Option<&str>, label: &str) {
        let body = who.gql(stack, query, vars).await;
        match expected {
            None => assert!(body["errors"].is_null(), "{label}: expected success, got {body}"),
            Some(code_expected) => assert_eq!(code(&body), code_expected, "{label}: {body}"),
        }
    }

    let ticket = new_ticket(&mut seller).await;
    let order = new_order(&mut buyer, ticket.clone()).await;
    let t = json!({"t": ticket});
    let o = json!({"o": order});

    // Queries.
    for (who, name) in [(&mut anon, "anonymous"), (&mut buyer, "buyer")] {
        expect(&stack, who, "{ tickets { nodes { id } } }", json!({}), None, &format!("tickets as {name}")).await;
        expect(&stack, who, "query($t: ID!) { ticket(id: $t) { id } }", t.clone(), None, &format!("ticket as {name}"))
            .await;
    }
    expect(
        &stack,
        &mut anon,
        "{ myTickets { nodes { id } } }",
        json!({}),
        Some("UNAUTHENTICATED"),
        "myTickets anonymous",
    )
    .await;
    expect(
        &stack,
        &mut anon,
        "{ myOrders { nodes { id } } }",
        json!({}),
        Some("UNAUTHENTICATED"),
        "myOrders anonymous",
    )
    .await;
    expect(&stack, &mut other, "{ myOrders { nodes { id } } }", json!({}), None, "myOrders other").await;
    let order_q = "query($o: ID!) { order(id: $o) { id } }";
    expect(&stack, &mut anon, order_q, o.clone(), Some("UNAUTHENTICATED"), "order anonymous").await;
    expect(&stack, &mut buyer, order_q, o.clone(), None, "order owner").await;
    expect(&stack, &mut other, order_q, o.clone(), Some("FORBIDDEN"), "order other").await;
    expect(&stack, &mut seller, order_q, o.clone(), Some("FORBIDDEN"), "order seller").await;
    expect(&stack, &mut admin, order_q, o.clone(), None, "order admin").await;
    let history_q = "query($t: ID!) { ticket(id: $t) { history { type } } }";
    expect(&stack, &mut anon, history_q, t.clone(), Some("UNAUTHENTICATED"), "history anonymous").await;
    expect(&stack, &mut seller, history_q, t.clone(), None, "history seller").await;
    expect(&stack, &mut other, history_q, t.clone(), Some("FORBIDDEN"), "history other").await;
    expect(&stack, &mut admin, history_q, t.clone(), None, "history admin").await;

    // Mutations on tickets.
    let create = "mutation { createTicket(title: \"X\", priceCents: 1) { id } }";
    expect(&stack, &mut anon, create, json!({}), Some("UNAUTHENTICATED"), "createTicket anonymous").await;
    let spare = new_ticket(&mut seller).await;
    let update = "mutation($t: ID!) { updateTicket(id: $t, title: \"New\") { id } }";
    let s = json!({"t": spare});
    expect(&stack, &mut anon, update, s.clone(), Some("UNAUTHENTICATED"), "updateTicket anonymous").await;
    expect(&stack, &mut other, update, s.clone(), Some("FORBIDDEN"), "updateTicket other").await;
    expect(&stack, &mut seller, update, s.clone(), None, "updateTicket owner").await;
    expect(&stack, &mut admin, update, s.clone(), None, "updateTicket admin").await;

    // Mutations on orders.
    let create_order = "mutation($t: ID!) { createOrder(ticketId: $t) { id } }";
    expect(&stack, &mut anon, create_order, s.clone(), Some("UNAUTHENTICATED"), "createOrder anonymous").await;
    expect(&stack, &mut seller, create_order, s.clone(), Some("FORBIDDEN"), "createOrder own ticket").await;
    let pay = "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { id } }";
    expect(&stack, &mut anon, pay, o.clone(), Some("UNAUTHENTICATED"), "payOrder anonymous").await;
    expect(&stack, &mut other, pay, o.clone(), Some("FORBIDDEN"), "payOrder other").await;
    expect(&stack, &mut admin, pay, o.clone(), Some("FORBIDDEN"), "payOrder admin").await;
    let cancel = "mutation($o: ID!) { cancelOrder(id: $o) { id status } }";
    expect(&stack, &mut anon, cancel, o.clone(), Some("UNAUTHENTICATED"), "cancelOrder anonymous").await;
    expect(&stack, &mut other, cancel, o.clone(), Some("FORBIDDEN"), "cancelOrder other").await;
    expect(&stack, &mut seller, cancel, o.clone(), Some("FORBIDDEN"), "cancelOrder seller").await;
    expect(&stack, &mut buyer, cancel, o.clone(), None, "cancelOrder owner").await;
    let second = new_order(&mut other, ticket.clone()).await;
    expect(&stack, &mut admin, cancel, json!({"o": second}), None, "cancelOrder admin").await;
    let third = new_order(&mut buyer, ticket.clone()).await;
    expect(&stack, &mut buyer, pay, json!({"o": third}), None, "payOrder owner").await;

    // Signing out without a session is harmless.
    expect(&stack, &mut anon, "mutation { signOut }", json!({}), None, "signOut anonymous").await;
}

/// `viewerCanEdit`, `viewerCanCancel` and `viewerCanPay` answer with the domain's rules, for each
/// viewer and each status, and agree with what the mutations then do. A buyer may cancel an order
/// whose payment is under way (the web app used to offer that only for `CREATED` orders).
#[tokio::test]
async fn viewer_can_fields_follow_the_domains_rules_for_every_viewer_and_status() {
    let stack = stack().await;
    let (mut anon, mut seller, mut buyer, mut other, mut admin) =
        (Client::default(), Client::default(), Client::default(), Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "can-seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "can-buyer@example.com"})).await;
    other.gql(&stack, SIGN_UP, json!({"e": "can-other@example.com"})).await;
    admin.gql(&stack, SIGN_UP, json!({"e": "boss@example.com"})).await;
    async fn can_edit(stack: &Stack, who: &mut Client, ticket: &str) -> (String, bool) {
        let r =
            who.gql(stack, "query($t: ID!) { ticket(id: $t) { status viewerCanEdit } }", json!({"t": ticket})).await;
        assert!(r["errors"].is_null(), "{r}");
        let t = &r["data"]["ticket"];
        (
            t["status"].as_str().unwrap_or_default().to_owned(),
            t["viewerCanEdit"].as_bool().unwrap_or_else(|| panic!("{r}")),
        )
    }
    /// (viewerCanHold, viewerCanReadHistory) of a ticket for `who`.
    async fn can_hold(stack: &Stack, who: &mut Client, ticket: &str) -> (bool, bool) {
        let q = "query($t: ID!) { ticket(id: $t) { viewerCanHold viewerCanReadHistory } }";
        let r = who.gql(stack, q, json!({"t": ticket})).await;
        let t = &r["data"]["ticket"];
        (
            t["viewerCanHold"].as_bool().unwrap_or_else(|| panic!("{r}")),
            t["viewerCanReadHistory"].as_bool().unwrap_or_else(|| panic!("{r}")),
        )
    }
    async fn can_order(stack: &Stack, who: &mut Client, order: &str) -> (String, bool, bool) {
        let q = "query($o: ID!) { order(id: $o) { status viewerCanCancel viewerCanPay } }";
        let r = who.gql(stack, q, json!({"o": order})).await;
        assert!(r["errors"].is_null(), "{r}");
        let o = &r["data"]["order"];
        (
            o["status"].as_str().unwrap_or_default().to_owned(),
            o["viewerCanCancel"].as_bool().unwrap_or_else(|| panic!("{r}")),
            o["viewerCanPay"].as_bool().unwrap_or_else(|| panic!("{r}")),
        )
    }
    let list = |c: &mut Client| list_ticket(&stack, c.clone());
    let hold = |c: &mut Client, ticket: String| {
        let mut c = c.clone();
        let stack = &stack;
        async move {
            let r = c
                .gql(
                    stack,
                    "mutation($t: ID!) { createOrder(ticketId: $t) { id viewerCanCancel viewerCanPay } }",
                    json!({"t": ticket}),
                )
                .await;
            // The mutation's own answer already carries the viewer's permissions.
            assert_eq!(r["data"]["createOrder"]["viewerCanCancel"], json!(true), "{r}");
            assert_eq!(r["data"]["createOrder"]["viewerCanPay"], json!(true), "{r}");
            r["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let pay = "mutation($o: ID!, $k: String!) { payOrder(orderId: $o, token: $k) { status } }";
    let cancel = "mutation($o: ID!) { cancelOrder(id: $o) { status viewerCanCancel viewerCanPay } }";

    // An available ticket: its seller and admins may edit it, nobody else.
    let ticket = list(&mut seller).await;
    assert_eq!(can_edit(&stack, &mut seller, &ticket).await, ("AVAILABLE".into(), true));
    assert_eq!(can_edit(&stack, &mut admin, &ticket).await, ("AVAILABLE".into(), true));
    assert_eq!(can_edit(&stack, &mut other, &ticket).await, ("AVAILABLE".into(), false));
    assert_eq!(can_edit(&stack, &mut anon, &ticket).await, ("AVAILABLE".into(), false));
    // Anyone signed in but the seller may hold it; its seller and admins read its history.
    assert_eq!(can_hold(&stack, &mut seller, &ticket).await, (false, true));
    assert_eq!(can_hold(&stack, &mut admin, &ticket).await, (true, true));
    assert_eq!(can_hold(&stack, &mut other, &ticket).await, (true, false));
    assert_eq!(can_hold(&stack, &mut anon, &ticket).await, (false, false));

    // Held: nobody may edit it (and the mutation agrees); the buyer may pay or cancel, an admin
    // may cancel but never pay.
    let order = hold(&mut buyer, ticket.clone()).await;
    assert_eq!(can_edit(&stack, &mut seller, &ticket).await, ("RESERVED".into(), false));
    assert_eq!(can_edit(&stack, &mut admin, &ticket).await, ("RESERVED".into(), false));
    assert_eq!(can_hold(&stack, &mut other, &ticket).await, (false, false), "held: nobody else may hold it");
    let second =
        other.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    assert_eq!(code(&second), "CONFLICT", "{second}");
    let edit = seller
        .gql(&stack, "mutation($t: ID!) { updateTicket(id: $t, title: \"N\") { id } }", json!({"t": ticket}))
        .await;
    assert_eq!(code(&edit), "CONFLICT", "{edit}");
    assert_eq!(can_order(&stack, &mut buyer, &order).await, ("CREATED".into(), true, true));
    assert_eq!(can_order(&stack, &mut admin, &order).await, ("CREATED".into(), true, false));

    // A payment under way (the fake bank here never settles `tok_async`): no second payment, but
    // the buyer may still cancel, and cancelling works.
    let r = buyer.gql(&stack, pay, json!({"o": order, "k": "tok_async"})).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(can_order(&stack, &mut buyer, &order).await, ("AWAITING_PAYMENT".into(), true, false));
    let again = buyer.gql(&stack, pay, json!({"o": order, "k": "tok_visa"})).await;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let r = buyer.gql(&stack, cancel, json!({"o": order})).await;
    assert_eq!(
        r["data"]["cancelOrder"],
        json!({"status": "CANCELLED", "viewerCanCancel": false, "viewerCanPay": false}),
        "{r}"
    );
    assert_eq!(can_order(&stack, &mut admin, &order).await, ("CANCELLED".into(), false, false));
    assert_eq!(can_edit(&stack, &mut seller, &ticket).await, ("AVAILABLE".into(), true));

    // Paid: the ticket is sold and nothing may change any more.
    let paid = hold(&mut other, ticket.clone()).await;
    let r = other.gql(&stack, pay, json!({"o": paid, "k": "tok_visa"})).await;
    assert_eq!(r["data"]["payOrder"]["status"], json!("SUCCEEDED"), "{r}");
    assert_eq!(can_order(&stack, &mut other, &paid).await, ("COMPLETE".into(), false, false));
    assert_eq!(can_order(&stack, &mut admin, &paid).await, ("COMPLETE".into(), false, false));
    assert_eq!(can_edit(&stack, &mut seller, &ticket).await, ("SOLD".into(), false));
    assert_eq!(can_edit(&stack, &mut admin, &ticket).await, ("SOLD".into(), false));
    assert_eq!(can_hold(&stack, &mut buyer, &ticket).await, (false, false));
    assert_eq!(can_hold(&stack, &mut admin, &ticket).await, (false, true), "the history stays readable");
    let r = admin.gql(&stack, cancel, json!({"o": paid})).await;
    assert_eq!(code(&r), "CONFLICT", "{r}");
}

/// PRODUCT.md's defaults and formats through the API: a session lasts 24 hours, times are RFC
/// 3339, a hold's `expiresAt` is its `createdAt` plus the hold, an unknown ticket is null.
#[tokio::test]
async fn sessions_last_a_day_times_are_rfc3339_and_an_unknown_ticket_is_null() {
    use base64::Engine as _;
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "day-seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "day-buyer@example.com"})).await;
    let token = buyer.cookie.clone().unwrap_or_default();
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    assert_eq!(
        claims["exp"].as_i64().zip(claims["iat"].as_i64()).map(|(exp, iat)| exp - iat),
        Some(86_400),
        "{claims}"
    );

    let rfc3339 = |v: &Value| {
        let text = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
    };
    let listed = seller
        .gql(&stack, "mutation { createTicket(title: \"Day\", priceCents: 100) { id createdAt updatedAt } }", json!({}))
        .await;
    let ticket = &listed["data"]["createTicket"];
    assert!(rfc3339(&ticket["updatedAt"]) >= rfc3339(&ticket["createdAt"]), "{listed}");
    let held = buyer
        .gql(
            &stack,
            "mutation($t: ID!) { createOrder(ticketId: $t) { expiresAt createdAt } }",
            json!({"t": ticket["id"]}),
        )
        .await;
    let order = &held["data"]["createOrder"];
    let hold = rfc3339(&order["expiresAt"]) - rfc3339(&order["createdAt"]);
    // The stack holds for 900 s; the two times come from the command and the projection of it.
    assert!((hold - time::Duration::seconds(900)).abs() < time::Duration::seconds(1), "a hold of {hold}: {held}");

    let unknown = buyer
        .gql(&stack, "query($t: ID!) { ticket(id: $t) { id } }", json!({"t": uuid::Uuid::new_v4().to_string()}))
        .await;
    assert_eq!(unknown, json!({"data": {"ticket": null}}), "an unknown ticket is null, not an error");
}

/// `first`/`after` pages newest first without overlap, and `status` keeps only that status.
#[tokio::test]
async fn pages_follow_each_other_newest_first_and_the_status_filter_keeps_its_status() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "pages-seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "pages-buyer@example.com"})).await;
    let mut listed = Vec::new();
    for _ in 0..5 {
        listed.push(list_ticket(&stack, seller.clone()).await);
    }
    let held =
        buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": listed[1]})).await;
    assert!(held["errors"].is_null(), "{held}");

    let page = "query($f: Int, $a: String, $s: TicketStatus) { tickets(first: $f, after: $a, status: $s) { nodes { id status } pageInfo { hasNextPage endCursor } } }";
    let ids = |r: &Value| -> Vec<String> {
        r["data"]["tickets"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let first = buyer.gql(&stack, page, json!({"f": 2})).await;
    assert_eq!(first["data"]["tickets"]["pageInfo"]["hasNextPage"], json!(true), "{first}");
    let after = first["data"]["tickets"]["pageInfo"]["endCursor"].clone();
    let second = buyer.gql(&stack, page, json!({"f": 2, "a": after})).await;
    let after = second["data"]["tickets"]["pageInfo"]["endCursor"].clone();
    let third = buyer.gql(&stack, page, json!({"f": 2, "a": after})).await;
    assert_eq!(third["data"]["tickets"]["pageInfo"]["hasNextPage"], json!(false), "{third}");
    let all: Vec<String> = [&first, &second, &third].iter().flat_map(|r| ids(r)).collect();
    let newest_first: Vec<String> = listed.iter().rev().cloned().collect();
    assert_eq!(all, newest_first, "three pages of 2, 2 and 1, newest first, no overlap");
    // first: null is the default page.
    assert_eq!(ids(&buyer.gql(&stack, page, json!({"f": null})).await), newest_first);

    let available = buyer.gql(&stack, page, json!({"f": 100, "s": "AVAILABLE"})).await;
    let expected: Vec<String> = newest_first.iter().filter(|id| **id != listed[1]).cloned().collect();
    assert_eq!(ids(&available), expected, "{available}");
    let reserved = buyer.gql(&stack, page, json!({"f": 100, "s": "RESERVED"})).await;
    assert_eq!(ids(&reserved), [listed[1].clone()], "{reserved}");
    assert!(ids(&buyer.gql(&stack, page, json!({"f": 100, "s": "SOLD"})).await).is_empty());
}

#[tokio::test]
async fn the_web_app_is_served_with_a_fallback_to_its_page_and_cache_headers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("assets")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>app</title>")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("assets/app-1.js"), "console.log(1)").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("assets/app-1.js.gz"), b"\x1f\x8b").unwrap_or_else(|e| panic!("{e}"));
    let web_dir = dir.path().to_path_buf();
    let stack = stack_with(900, move |c| c.web_dir = web_dir).await;
    let get = |path: &str, gzip: bool| {
        let mut request = HttpRequest::get(path);
        if gzip {
            request = request.header(header::ACCEPT_ENCODING, "gzip");
        }
        let request = request.body(Body::empty()).unwrap_or_default();
        let app = stack.app.clone();
        async move { app.oneshot(request).await.unwrap_or_else(|e| match e {}) }
    };
    // Pages the server does not render are the template as it is (the rendered ones: pages.rs).
    for path in ["/sell", "/orders/x", "/my/orders?first=2", "/my/tickets"] {
        let response = get(path, false).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "private, no-cache", "{path}");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default().to_owned();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        assert_eq!(&body[..], b"<!doctype html><title>app</title>", "{path}");
    }
    let asset = get("/assets/app-1.js", false).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    let gzipped = get("/assets/app-1.js", true).await;
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(get("/assets/missing.js", false).await.status(), StatusCode::NOT_FOUND);
    // API routes keep theirs.
    assert_eq!(get("/healthz", false).await.status(), StatusCode::OK);
    let explorer = get("/graphql", false).await;
    let body = axum::body::to_bytes(explorer.into_body(), 1 << 20).await.unwrap_or_default();
    assert!(!body.starts_with(b"<!doctype html><title>app</title>"));
    let post = HttpRequest::post("/elsewhere").body(Body::empty()).unwrap_or_default();
    assert_eq!(stack.app.clone().oneshot(post).await.unwrap_or_else(|e| match e {}).status(), StatusCode::NOT_FOUND);

    // Without a built bundle the page says how to build it.
    let unbuilt = stack_with(900, |c| c.web_dir = "/nonexistent/web/dist".into()).await;
    let request = HttpRequest::get("/").body(Body::empty()).unwrap_or_default();
    let response = unbuilt.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
    assert!(String::from_utf8_lossy(&body).contains("scripts/build-web"));
}

/// A lookup by `= ANY($1)` prepared while its table was small keeps a generic plan that scans the
/// whole table as it grows, on a default connection; on the gateway's connections
/// (`db::connect_options`) each execution is planned for the table as it is and uses the index.
#[tokio::test]
async fn lookups_prepared_on_a_small_table_use_its_index_once_it_has_grown() {
    use sqlx::{Connection, Executor};
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    db.pool
        .execute("CREATE TABLE probe (id uuid PRIMARY KEY, filler text) WITH (autovacuum_enabled = false)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Analysed while small, as autovacuum does a fresh table after its first 50 rows.
    db.pool
        .execute("INSERT INTO probe SELECT gen_random_uuid(), 'x' FROM generate_series(1, 20); ANALYZE probe")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plain: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap_or_else(|e| panic!("{e}"));
    let plain = plain.options([("plan_cache_mode", "auto")]);
    let ours = query_service::db::connect_options(&db.url).unwrap_or_else(|e| panic!("{e}"));
    let mut connections = Vec::new();
    for options in [plain, ours] {
        let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap_or_else(|e| panic!("{e}"));
        // Prepared and run often enough, on the small table, for a generic plan to be cached.
        for _ in 0..8 {
            lookup(&mut conn).await;
        }
        flush(&mut conn).await;
        connections.push(conn);
    }
    db.pool
        .execute("INSERT INTO probe SELECT gen_random_uuid(), repeat('x', 100) FROM generate_series(1, 50000)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut scans = Vec::new();
    for conn in &mut connections {
        let before = seq_scans(&db.pool).await;
        lookup(conn).await;
        flush(conn).await;
        scans.push(seq_scans(&db.pool).await - before);
    }
    assert_eq!(scans, [1, 0], "sequential scans of the grown table by one lookup: default, ours");

    async fn lookup(conn: &mut sqlx::PgConnection) {
        let ids = vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
        let found: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM probe WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(found.is_empty());
    }
    /// Makes the connection's statistics visible to others now, not at its next idle moment.
    async fn flush(conn: &mut sqlx::PgConnection) {
        conn.execute("SELECT pg_stat_force_next_flush()").await.unwrap_or_else(|e| panic!("{e}"));
        conn.execute("SELECT 1").await.unwrap_or_else(|e| panic!("{e}"));
    }
    async fn seq_scans(pool: &sqlx::PgPool) -> i64 {
        let mut conn = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'probe'")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A defect found in review: the orders a mutation answers with are read in batches that give up
/// after two seconds, and a write that succeeded was then answered as an internal error (which a
/// client retries). With the orders table locked for longer than that, a cancellation still
/// answers the cancelled order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_answered_when_its_order_takes_longer_than_a_batch_to_read() {
    let stack = stack().await;
    let (mut seller, mut buyer) = (Client::default(), Client::default());
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    buyer.gql(&stack, SIGN_UP, json!({"e": "buyer@example.com"})).await;
    let ticket = list_ticket(&stack, seller.clone()).await;
    let order = buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    let order_id = order["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();

    let mut lock = stack.state.pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("LOCK TABLE read.orders IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let release = tokio::spawn(async move {
        tokio::time::sleep(query_service::coalesce::DEADLINE + std::time::Duration::from_secs(1)).await;
        lock.commit().await.unwrap_or_else(|e| panic!("{e}"));
    });
    let cancelled =
        buyer.gql(&stack, "mutation($o: ID!) { cancelOrder(id: $o) { id status } }", json!({"o": order_id})).await;
    assert_eq!(cancelled["data"]["cancelOrder"], json!({"id": order_id, "status": "CANCELLED"}), "{cancelled}");
    release.await.unwrap_or_else(|e| panic!("{e}"));
}

/// `/readyz` includes the projections: a gateway whose read models stand still behind the stream
/// (the projector stopped) stops calling itself ready once `PROJECTION_STALL_SECONDS` have passed,
/// and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_projections_stand_still_behind_the_stream() {
    let stack = stack_with(900, |c| c.projection_stall_seconds = 1).await;
    let readyz = || async {
        let request = HttpRequest::get("/readyz").body(Body::empty()).unwrap_or_default();
        let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    let mut seller = Client::default();
    seller.gql(&stack, SIGN_UP, json!({"e": "seller@example.com"})).await;
    assert_eq!(readyz().await.0, StatusCode::OK, "caught up");
    stack.stop_projector();
    seller.gql(&stack, "mutation { createTicket(title: \"Unprojected\", priceCents: 100) { id } }", json!({})).await;
    assert_eq!(readyz().await.0, StatusCode::OK, "behind, for less than the stall time");
    // Asked again until the stall time has passed (no fixed sleep): then it stops being ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, why) = loop {
        let answer = readyz().await;
        if answer.0 != StatusCode::OK || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status, why.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "database: true, nats: true, projections: false")
    );
}
