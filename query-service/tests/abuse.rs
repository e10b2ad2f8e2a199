//! A hostile client against the real system (NATS, command service, projector, PostgreSQL and
//! the gateway): parallel password guesses, sign-ins over WebSocket, forged and shared addresses
//! behind proxies, sign-up floods, sockets that outlive their session, expensive queries, socket
//! floods and doubled webhooks. Each test names the limit it holds.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

mod common;
use common::{Stack, stack_full};

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { id } }";
/// The peer of requests that come through the (trusted) proxy in these tests.
const PROXY: &str = "127.0.0.1:40000";

fn unique(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple())
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// One HTTP request from `peer`, maybe through a proxy that says the client is `forwarded`.
struct Call<'a> {
    peer: &'a str,
    forwarded: Option<&'a str>,
    cookie: Option<&'a str>,
}

impl Call<'_> {
    const fn from(peer: &str) -> Call<'_> {
        Call { peer, forwarded: None, cookie: None }
    }

    /// Sends a GraphQL request; answers the status, the body and a new session cookie.
    async fn send(&self, stack: &Stack, query: &str, variables: Value) -> (StatusCode, Value, Option<String>) {
        let mut request = HttpRequest::post("/graphql").header(header::CONTENT_TYPE, "application/json");
        if let Some(forwarded) = self.forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        if let Some(cookie) = self.cookie {
            request = request.header(header::COOKIE, format!("session={cookie}"));
        }
        let mut request = request
            .body(Body::from(json!({"query": query, "variables": variables}).to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        let peer: std::net::SocketAddr = self.peer.parse().unwrap_or_else(|e| panic!("{e}"));
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let cookie = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("session=").map(str::to_owned))
            .find(|token| !token.is_empty());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), cookie)
    }

    async fn gql(&self, stack: &Stack, query: &str, variables: Value) -> Value {
        self.send(stack, query, variables).await.1
    }
}

/// Signs up `email`; answers the session token and the account id.
async fn sign_up(stack: &Stack, email: &str) -> (String, String) {
    let (_, body, cookie) = Call::from("192.0.2.1:1").send(stack, SIGN_UP, json!({"e": email})).await;
    let id = body["data"]["signUp"]["id"].as_str().unwrap_or_else(|| panic!("sign-up failed: {body}")).to_owned();
    (cookie.unwrap_or_else(|| panic!("no cookie: {body}")), id)
}

fn trusting_the_proxy(config: &mut query_service::config::Config) {
    config.trusted_proxies = vec!["127.0.0.1/32".into()];
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_get_no_more_checks_than_the_limit() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let email = unique("target");
    sign_up(&stack, &email).await;
    let guesser = Call::from("203.0.113.7:5000");
    let guesses = (0..40).map(|_| guesser.gql(&stack, SIGN_IN, json!({"e": email, "p": "guess"})));
    let answers: Vec<Value> = futures::future::join_all(guesses).await;
    let codes: Vec<&str> = answers.iter().map(code).collect();
    let checked = codes.iter().filter(|c| **c == "UNAUTHENTICATED").count();
    let limited = codes.iter().filter(|c| **c == "RATE_LIMITED").count();
    eprintln!("abuse: 40 parallel guesses: {checked} checked, {limited} refused unchecked");
    assert_eq!(checked + limited, 40, "{codes:?}");
    assert!(checked <= 5, "more guesses were checked than SIGNIN_MAX_FAILURES allows: {checked}");
    let right = Call::from("203.0.113.7:5001").gql(&stack, SIGN_IN, json!({"e": email, "p": "correct horse"})).await;
    assert_eq!(code(&right), "RATE_LIMITED", "the guessing client stays throttled: {right}");
}

#[tokio::test]
async fn an_enormous_email_is_an_ordinary_wrong_sign_in() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let huge = format!("{}@example.com", "a".repeat(60_000));
    for _ in 0..3 {
        let answer = Call::from("203.0.113.8:1").gql(&stack, SIGN_IN, json!({"e": huge, "p": "guess"})).await;
        assert_eq!(code(&answer), "UNAUTHENTICATED", "{}", &answer.to_string()[..200.min(answer.to_string().len())]);
    }
    // The command service is still connected and answering.
    sign_up(&stack, &unique("after")).await;
}

/// A served gateway's WebSocket, initialised.
type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(
    addr: std::net::SocketAddr,
    cookie: Option<&str>,
    forwarded: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/graphql").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap_or_else(|e| panic!("{e}")));
    if let Some(cookie) = cookie {
        headers.insert("Cookie", format!("session={cookie}").parse().unwrap_or_else(|e| panic!("{e}")));
    }
    if let Some(forwarded) = forwarded {
        headers.insert("X-Forwarded-For", forwarded.parse().unwrap_or_else(|e| panic!("{e}")));
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn initialised(addr: std::net::SocketAddr, cookie: Option<&str>) -> Socket {
    let mut socket = open(addr, cookie, None).await.unwrap_or_else(|e| panic!("{e}"));
    socket.send(Message::text(json!({"type": "connection_init"}).to_string())).await.unwrap_or_else(|e| panic!("{e}"));
    let ack = next(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

/// The next message that is not a ping; `Value::Null` carries a close frame's code as `close`.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .unwrap_or_else(|_| panic!("no message within 15 s"));
        match message {
            None => return json!({"type": "closed"}),
            Some(Err(error)) => return json!({"type": "closed", "error": error.to_string()}),
            Some(Ok(Message::Close(frame))) => {
                return json!({"type": "close", "code": frame.map(|f| u16::from(f.code))});
            }
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                if value["type"] != "ping" && value["type"] != "pong" {
                    return value;
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn operate(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    let message = json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}});
    socket.send(Message::text(message.to_string())).await.unwrap_or_else(|e| panic!("{e}"));
}

/// The first message about operation `id` (skipping others').
async fn answer(socket: &mut Socket, id: &str) -> Value {
    loop {
        let message = next(socket).await;
        if message["id"] == id || message["type"] == "close" || message["type"] == "closed" {
            return message;
        }
    }
}

#[tokio::test]
async fn sign_ins_sent_over_a_websocket_are_throttled_per_client_address() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let addr = common::serve(&stack).await;
    let mut socket = initialised(addr, None).await;
    let mut codes = Vec::new();
    for n in 0..21 {
        // Distinct unknown emails: only the per-address limit (20) can engage.
        operate(&mut socket, &format!("s{n}"), SIGN_IN, json!({"e": unique("probe"), "p": "guess"})).await;
        let reply = answer(&mut socket, &format!("s{n}")).await;
        codes.push(reply["payload"]["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_owned());
    }
    assert!(codes[..20].iter().all(|c| c == "UNAUTHENTICATED"), "{codes:?}");
    assert_eq!(codes[20], "RATE_LIMITED", "the 21st failure from one address over a socket: {codes:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_client_cannot_lock_out_another_nor_forge_its_address() {
    let stack = stack_full(900, |_| {}, trusting_the_proxy).await;
    let victim = unique("victim");
    sign_up(&stack, &victim).await;
    let attacker = Call { peer: PROXY, forwarded: Some("203.0.113.5"), cookie: None };
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(code(&attacker.gql(&stack, SIGN_IN, json!({"e": victim, "p": "guess"})).await).to_owned());
    }
    assert_eq!(codes.last().map(String::as_str), Some("RATE_LIMITED"), "{codes:?}");
    let from_victim = Call { peer: PROXY, forwarded: Some("198.51.100.7"), cookie: None };
    let right = from_victim.gql(&stack, SIGN_IN, json!({"e": victim, "p": "correct horse"})).await;
    assert!(right["errors"].is_null(), "another client's failures refused the right password: {right}");

    // A client that is not a trusted proxy cannot pick its address by writing the header.
    let mut spoofed = Vec::new();
    for n in 0..21 {
        let forged = format!("198.18.0.{n}");
        let call = Call { peer: "203.0.113.77:1234", forwarded: Some(&forged), cookie: None };
        spoofed.push(code(&call.gql(&stack, SIGN_IN, json!({"e": unique("probe"), "p": "guess"})).await).to_owned());
    }
    assert_eq!(spoofed[20], "RATE_LIMITED", "X-Forwarded-For from an untrusted peer was believed: {spoofed:?}");

    // IPv6 clients are counted per /64: new addresses in one /64 share its limit.
    let mut v6 = Vec::new();
    for n in 1..=21 {
        let address = format!("2001:db8:1:2::{n:x}");
        let call = Call { peer: PROXY, forwarded: Some(&address), cookie: None };
        v6.push(code(&call.gql(&stack, SIGN_IN, json!({"e": unique("probe"), "p": "guess"})).await).to_owned());
    }
    assert_eq!(v6[20], "RATE_LIMITED", "{v6:?}");
    let neighbour = Call { peer: PROXY, forwarded: Some("2001:db8:1:3::1"), cookie: None };
    let other = neighbour.gql(&stack, SIGN_IN, json!({"e": victim, "p": "correct horse"})).await;
    assert!(other["errors"].is_null(), "another /64 was refused: {other}");
}

/// The process's peak resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_hundred_parallel_sign_ups_all_answer_within_bounded_memory_and_are_throttled_per_address() {
    let stack = stack_full(900, |c| c.signup_per_minute_per_client = 5, trusting_the_proxy).await;
    // Warm up every path once, then measure the peak from here on.
    sign_up(&stack, &unique("warm")).await;
    let stack = &stack;
    // An address already registered is refused before any hash: 200 of those cost no hashing.
    let taken = unique("taken");
    sign_up(stack, &taken).await;
    let cheap = (0..200).map(|n| {
        let taken = taken.clone();
        async move {
            let client = format!("198.19.{}.{}", n / 250, n % 250 + 1);
            let call = Call { peer: PROXY, forwarded: Some(&client), cookie: None };
            call.gql(stack, SIGN_UP, json!({"e": taken})).await
        }
    });
    let conflicts: Vec<Value> = futures::future::join_all(cheap).await;
    assert!(conflicts.iter().all(|c| code(c) == "CONFLICT"), "{:?}", conflicts.iter().find(|c| code(c) != "CONFLICT"));
    let before = peak_rss_kib();
    let started = Instant::now();
    let forwarded: Vec<String> = (0..200).map(|n| format!("198.51.{}.{}", n / 250, n % 250 + 1)).collect();
    let sign_ups = forwarded.iter().map(|client| async move {
        let call = Call { peer: PROXY, forwarded: Some(client), cookie: None };
        call.gql(stack, SIGN_UP, json!({"e": unique("crowd")})).await
    });
    let answers: Vec<Value> = futures::future::join_all(sign_ups).await;
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    let accepted = answers.iter().filter(|a| a["data"]["signUp"]["id"].is_string()).count();
    eprintln!(
        "abuse: 200 parallel sign-ups: {accepted} accepted in {:.1} s, peak memory grew {grown_mib} MiB",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(accepted, 200, "every sign-up gets its answer: {:?}", answers.iter().find(|a| !a["errors"].is_null()));
    // Two hashing threads here (2 cores): 2 × 19 MiB, plus what 200 requests in flight take.
    let bound = 2 * 19 + 100;
    assert!(grown_mib <= bound, "200 sign-ups grew the process by {grown_mib} MiB (bound {bound} MiB)");

    // One address gets SIGNUP_PER_MINUTE_PER_CLIENT (5 here) a minute; another is unaffected.
    let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let one = Call { peer: PROXY, forwarded: Some("203.0.113.50"), cookie: None };
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(code(&one.gql(stack, SIGN_UP, json!({"e": unique("flood")})).await).to_owned());
    }
    let other = Call { peer: PROXY, forwarded: Some("203.0.113.51"), cookie: None };
    let elsewhere = other.gql(stack, SIGN_UP, json!({"e": unique("neighbour")})).await;
    assert!(elsewhere["errors"].is_null(), "{elsewhere}");
    if time::OffsetDateTime::now_utc().unix_timestamp() / 60 == minute {
        assert_eq!(codes, ["", "", "", "", "", "RATE_LIMITED"], "the sixth sign-up in a minute from one address");
    }
}

#[tokio::test]
async fn a_socket_opened_before_sign_out_refuses_operations_and_is_closed() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let addr = common::serve(&stack).await;
    let (token, _) = sign_up(&stack, &unique("leaver")).await;
    let mut socket = initialised(addr, Some(&token)).await;
    operate(&mut socket, "me", "{ me { id } }", json!({})).await;
    let me = answer(&mut socket, "me").await;
    assert!(me["payload"]["data"]["me"]["id"].is_string(), "the socket is signed in: {me}");
    operate(&mut socket, "watch", "subscription { ticketChanged { id } }", json!({})).await;

    let signed_out = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&token) }
        .gql(&stack, "mutation { signOut }", json!({}))
        .await;
    assert_eq!(signed_out["data"]["signOut"], true, "{signed_out}");
    operate(
        &mut socket,
        "list",
        "mutation { createTicket(title: \"After sign-out\", priceCents: 100) { id } }",
        json!({}),
    )
    .await;
    let mut seen = Vec::new();
    let closed = loop {
        let message = next(&mut socket).await;
        if message["type"] == "close" || message["type"] == "closed" {
            break message;
        }
        seen.push(message);
    };
    let listed = seen.iter().find(|m| m["id"] == "list");
    assert!(
        listed.is_none_or(|m| m["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"),
        "an operation after sign-out ran: {seen:?}"
    );
    assert_eq!(closed["code"], 4401, "the socket of a signed-out session is closed: {closed} after {seen:?}");
    let tickets = Call::from("192.0.2.1:1").gql(&stack, "{ tickets { nodes { title } } }", json!({})).await;
    assert!(!tickets.to_string().contains("After sign-out"), "{tickets}");
}

#[tokio::test]
async fn a_sign_out_holds_on_its_gateway_even_while_the_projector_is_down() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let addr = common::serve(&stack).await;
    let (token, _) = sign_up(&stack, &unique("leaver")).await;
    let mut socket = initialised(addr, Some(&token)).await;
    operate(&mut socket, "watch", "subscription { ticketChanged { id } }", json!({})).await;
    stack.stop_projector();
    let as_leaver = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&token) };
    let signed_out = as_leaver.gql(&stack, "mutation { signOut }", json!({})).await;
    assert_eq!(signed_out["data"]["signOut"], true, "{signed_out}");
    let me = as_leaver.gql(&stack, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null, "the old cookie still works on the gateway that signed it out: {me}");
    let closed = next(&mut socket).await;
    assert_eq!(closed["code"], 4401, "{closed}");
}

#[tokio::test]
async fn a_socket_is_closed_when_its_session_expires() {
    let stack = stack_full(900, |_| {}, |c| c.session_seconds = 2).await;
    let addr = common::serve(&stack).await;
    let (token, _) = sign_up(&stack, &unique("brief")).await;
    let mut socket = initialised(addr, Some(&token)).await;
    operate(&mut socket, "watch", "subscription { ticketChanged { id } }", json!({})).await;
    let started = Instant::now();
    let closed = next(&mut socket).await;
    assert_eq!(closed["code"], 4401, "{closed}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed {:?} after the subscription", started.elapsed());
}

#[tokio::test]
async fn roles_follow_the_configuration_and_emails_are_private() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let seller_email = unique("seller");
    let (seller, seller_id) = sign_up(&stack, &seller_email).await;
    let as_seller = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&seller) };
    let listed =
        as_seller.gql(&stack, "mutation { createTicket(title: \"Mine\", priceCents: 500) { id } }", json!({})).await;
    let ticket = listed["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let read = "query($t: ID!) { ticket(id: $t) { seller { id email roles } } }";

    let anonymous = Call::from("192.0.2.9:1").gql(&stack, read, json!({"t": ticket})).await;
    assert_eq!(anonymous["data"]["ticket"]["seller"], json!({"id": seller_id, "email": null, "roles": null}));
    let (other, other_id) = sign_up(&stack, &unique("other")).await;
    let as_other = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&other) };
    let stranger = as_other.gql(&stack, read, json!({"t": ticket})).await;
    assert_eq!(stranger["data"]["ticket"]["seller"]["email"], Value::Null, "{stranger}");
    assert_eq!(stranger["data"]["ticket"]["seller"]["roles"], Value::Null, "{stranger}");
    let own = as_seller.gql(&stack, read, json!({"t": ticket})).await;
    assert_eq!(own["data"]["ticket"]["seller"]["email"], seller_email.as_str(), "{own}");
    assert_eq!(own["data"]["ticket"]["seller"]["roles"], json!(["USER"]), "{own}");
    let (boss, _) = sign_up(&stack, "boss@example.com").await;
    let as_boss = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&boss) };
    let admin = as_boss.gql(&stack, read, json!({"t": ticket})).await;
    assert_eq!(admin["data"]["ticket"]["seller"]["email"], seller_email.as_str(), "{admin}");

    // A token issued while its holder was an admin (signed with the real secret) is worth only
    // what ADMIN_EMAILS says now.
    let other_account = domain::AccountId(other_id.parse().unwrap_or_else(|e| panic!("{e}")));
    let (stale_admin, _) = stack
        .state
        .sessions
        .issue(
            other_account,
            domain::SessionId(uuid::Uuid::new_v4()),
            "former@example.com",
            vec![command_service::api::Role::User, command_service::api::Role::Admin],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let as_former = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&stale_admin) };
    let edit = "mutation($t: ID!) { updateTicket(id: $t, title: \"Taken over\") { title } }";
    let refused = as_former.gql(&stack, edit, json!({"t": ticket})).await;
    assert_eq!(code(&refused), "FORBIDDEN", "a removed admin still edits others' tickets: {refused}");
    let me = as_former.gql(&stack, "{ me { roles } }", json!({})).await;
    assert_eq!(me["data"]["me"]["roles"], json!(["USER"]), "{me}");
}

#[tokio::test]
async fn pages_and_aliases_are_bounded_and_histories_load_in_one_query() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let (seller, _) = sign_up(&stack, &unique("seller")).await;
    let as_seller = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&seller) };
    for n in 0..5 {
        let listed = as_seller
            .gql(
                &stack,
                "mutation($t: String!) { createTicket(title: $t, priceCents: 100) { id } }",
                json!({"t": format!("T{n}")}),
            )
            .await;
        assert!(listed["errors"].is_null(), "{listed}");
    }
    for (query, field) in [
        ("{ tickets(first: -1) { nodes { id } } }", "first"),
        ("{ tickets(first: 101) { nodes { id } } }", "first"),
        ("{ myTickets(first: 1000) { nodes { id } } }", "first"),
        ("{ myOrders(first: -5) { nodes { id } } }", "first"),
        ("{ tickets(after: \"999999999\") { nodes { id } } }", "after"),
        ("{ tickets(after: \"not a cursor\") { nodes { id } } }", "after"),
        ("{ myOrders(after: \"12345678\") { nodes { id } } }", "after"),
    ] {
        let refused = as_seller.gql(&stack, query, json!({})).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{query}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["field"], field, "{query}: {refused}");
    }
    let empty =
        as_seller.gql(&stack, "{ tickets(first: 0) { nodes { id } pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(empty["data"]["tickets"]["nodes"], json!([]), "{empty}");
    assert_eq!(empty["data"]["tickets"]["pageInfo"]["hasNextPage"], true, "{empty}");
    let first = as_seller.gql(&stack, "{ tickets(first: 2) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = first["data"]["tickets"]["pageInfo"]["endCursor"].as_str().unwrap_or_default().to_owned();
    let next_page = as_seller
        .gql(&stack, "query($c: String) { tickets(first: 2, after: $c) { nodes { id } } }", json!({"c": cursor}))
        .await;
    assert_eq!(next_page["data"]["tickets"]["nodes"].as_array().map(Vec::len), Some(2), "{next_page}");

    // Histories of a page load in one batched query, however many tickets it has.
    let loads = || stack.state.metrics.loader_queries.load(std::sync::atomic::Ordering::Relaxed);
    let before = loads();
    let histories = as_seller.gql(&stack, "{ myTickets(first: 100) { nodes { history { type } } } }", json!({})).await;
    assert_eq!(histories["data"]["myTickets"]["nodes"].as_array().map(Vec::len), Some(5), "{histories}");
    assert_eq!(loads() - before, 1, "5 histories cost one query");

    // 200 aliased pages of histories would be up to 20,000 rows of work: refused before running.
    let aliased: String =
        (0..200).map(|n| format!("a{n}: myTickets(first: 100) {{ nodes {{ history {{ type }} }} }} ")).collect();
    let flood = as_seller.gql(&stack, &format!("{{ {aliased} }}"), json!({})).await;
    assert!(flood["data"].is_null() && !flood["errors"].is_null(), "{flood}");
    // A thousand aliases of a cheap field: refused by the alias limit, with a code.
    let cheap: String = (0..1000).map(|n| format!("a{n}: me {{ id }} ")).collect();
    let cheap = as_seller.gql(&stack, &format!("{{ {cheap} }}"), json!({})).await;
    assert_eq!(code(&cheap), "BAD_USER_INPUT", "{cheap}");
}

#[tokio::test]
async fn sockets_are_capped_per_client_must_initialise_and_run_a_bounded_number_of_operations() {
    let stack = stack_full(900, |c| c.create_ticket_per_minute = 3, |c| c.ws_max_per_client = 3).await;
    let addr = common::serve(&stack).await;
    let mut open_sockets = Vec::new();
    for _ in 0..3 {
        open_sockets.push(initialised(addr, None).await);
    }
    let fourth = open(addr, None, None).await;
    assert!(
        matches!(&fourth, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::TOO_MANY_REQUESTS),
        "a fourth socket from one client: {fourth:?}"
    );
    // Closing one frees its place.
    let mut closing = open_sockets.pop().unwrap_or_else(|| panic!("no socket"));
    closing.close(None).await.unwrap_or_else(|e| panic!("{e}"));
    drop(closing);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reopened = loop {
        match open(addr, None, None).await {
            Ok(socket) => break socket,
            Err(error) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = error;
            }
            Err(error) => panic!("a freed place was not given back: {error}"),
        }
    };
    // This one never initialises: closed with 4408.
    let started = Instant::now();
    let closed = next(&mut reopened).await;
    assert_eq!(closed["code"], 4408, "{closed}");
    assert!(started.elapsed() <= query_service::socket::INIT_TIMEOUT + Duration::from_secs(3));

    // At most MAX_OPERATIONS at once on one socket.
    let socket = &mut open_sockets[0];
    for n in 0..=query_service::socket::MAX_OPERATIONS {
        operate(socket, &format!("w{n}"), "subscription { ticketChanged { id } }", json!({})).await;
    }
    // Which one is refused depends on the order they start in; exactly one is.
    let over = loop {
        let message = next(socket).await;
        assert!(message["type"] != "close" && message["type"] != "closed", "{message}");
        if message["payload"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            break message;
        }
    };
    assert!(over["id"].as_str().is_some_and(|id| id.starts_with('w')), "{over}");

    // createTicket per account and minute (3 here).
    let (seller, _) = sign_up(&stack, &unique("spammer")).await;
    let as_seller = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&seller) };
    let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let listed =
            as_seller.gql(&stack, "mutation { createTicket(title: \"Spam\", priceCents: 1) { id } }", json!({})).await;
        codes.push(code(&listed).to_owned());
    }
    if time::OffsetDateTime::now_utc().unix_timestamp() / 60 == minute {
        assert_eq!(codes, ["", "", "", "RATE_LIMITED"], "the fourth listing in a minute");
    }
}

const WEBHOOK_SECRET: &str = "whsec_abuse_test";

async fn webhook(stack: &Stack, body: &str, signature: &str) -> StatusCode {
    let request = HttpRequest::post("/webhooks/payments")
        .header(header::CONTENT_TYPE, "application/json")
        .header("stripe-signature", signature)
        .body(Body::from(body.to_owned()))
        .unwrap_or_else(|e| panic!("{e}"));
    stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {}).status()
}

#[tokio::test]
async fn webhooks_are_checked_against_the_payment_and_applied_once_when_delivered_together() {
    let stack = stack_full(900, |c| c.payment_webhook_secret = WEBHOOK_SECRET.into(), |_| {}).await;
    let (seller, _) = sign_up(&stack, &unique("seller")).await;
    let (buyer, _) = sign_up(&stack, &unique("buyer")).await;
    let as_seller = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&seller) };
    let as_buyer = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&buyer) };
    let listed = as_seller
        .gql(&stack, "mutation { createTicket(title: \"Doubled\", priceCents: 2500) { id } }", json!({}))
        .await;
    let ticket = listed["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let held =
        as_buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    let order = held["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
    let paid = as_buyer
        .gql(
            &stack,
            "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_async\") { providerRef } }",
            json!({"o": order}),
        )
        .await;
    let provider_ref = paid["data"]["payOrder"]["providerRef"].as_str().unwrap_or_default().to_owned();
    let event = |id: &str, amount: i64, currency: &str| {
        json!({
            "id": id, "type": "payment_intent.succeeded",
            "data": {"object": {"id": provider_ref, "amount": amount, "currency": currency, "metadata": {"order_id": order}}}
        })
        .to_string()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |body: &str| command_service::payments::webhook::sign(WEBHOOK_SECRET, now, body);
    let status = || async {
        let seen = as_buyer.gql(&stack, "query($o: ID!) { order(id: $o) { status } }", json!({"o": order})).await;
        seen["data"]["order"]["status"].as_str().unwrap_or_default().to_owned()
    };

    // A signed event whose amount or currency is not the payment's settles nothing.
    for (id, amount, currency) in [("evt_cheap", 1, "usd"), ("evt_yen", 2500, "jpy")] {
        let body = event(id, amount, currency);
        assert_eq!(webhook(&stack, &body, &sign(&body)).await, StatusCode::BAD_REQUEST, "{id}");
    }
    // Money that moves without saying how much is refused too.
    let bare = json!({
        "id": "evt_bare", "type": "payment_intent.succeeded",
        "data": {"object": {"id": provider_ref, "metadata": {"order_id": order}}}
    })
    .to_string();
    assert_eq!(webhook(&stack, &bare, &sign(&bare)).await, StatusCode::BAD_REQUEST);
    assert_eq!(status().await, "AWAITING_PAYMENT");

    // A header of 10,000 candidates is refused without 10,000 MACs.
    let body = event("evt_flood", 2500, "usd");
    let flood = format!("t={now}{}", ",v1=00".repeat(10_000));
    assert_eq!(webhook(&stack, &body, &flood).await, StatusCode::BAD_REQUEST);

    // Eight simultaneous deliveries of one event: every one acknowledged, applied once.
    let body = event("evt_together", 2500, "usd");
    let signature = sign(&body);
    let deliveries = (0..8).map(|_| webhook(&stack, &body, &signature));
    let statuses: Vec<StatusCode> = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(StatusCode::is_success), "{statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status().await != "COMPLETE" {
        assert!(Instant::now() < deadline, "the genuine webhook did not complete the order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history =
        as_seller.gql(&stack, "query($t: ID!) { ticket(id: $t) { history { type } } }", json!({"t": ticket})).await;
    let kinds: Vec<&str> = history["data"]["ticket"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "PaymentSucceeded").count(), 1, "{kinds:?}");

    // A partial refund (1.00 of 25.00) is acknowledged (the provider must not retry it for days)
    // and does not mark the payment refunded.
    let partial = json!({
        "id": "evt_partial", "type": "charge.refunded",
        "data": {"object": {"id": "ch_1", "payment_intent": provider_ref, "amount": 2500, "amount_refunded": 100,
                 "currency": "usd", "metadata": {"order_id": order}}}
    })
    .to_string();
    assert_eq!(webhook(&stack, &partial, &sign(&partial)).await, StatusCode::OK);
    let payment =
        as_buyer.gql(&stack, "query($o: ID!) { order(id: $o) { payment { status } } }", json!({"o": order})).await;
    assert_eq!(payment["data"]["order"]["payment"]["status"], "SUCCEEDED", "{payment}");
}

#[tokio::test]
async fn a_document_of_several_operations_is_costed_by_the_one_it_runs() {
    let stack = stack_full(900, |_| {}, |_| {}).await;
    let (token, _) = sign_up(&stack, &unique("reader")).await;
    // As the web app sends them: a whole file of operations and the name of the one to run.
    let document = "query Tickets($first: Int!) { tickets(first: $first) { nodes { id } } }
                    query Mine($first: Int!) { myTickets(first: $first) { nodes { id history { type } } } }
                    subscription Watch { ticketChanged { id } }";
    let call = Call { peer: "192.0.2.1:1", forwarded: None, cookie: Some(&token) };
    let request = HttpRequest::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, format!("session={token}"))
        .body(Body::from(json!({"query": document, "operationName": "Tickets", "variables": {"first": 5}}).to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let ran: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert!(ran["errors"].is_null(), "{ran}");
    assert!(ran["data"]["tickets"]["nodes"].is_array(), "{ran}");

    // Naming an operation costs that one: a heavy one named is still refused.
    let aliased: String = (0..60).map(|n| format!("a{n}: tickets(first: 100) {{ nodes {{ id title }} }} ")).collect();
    let heavy = format!("query Light {{ me {{ id }} }} query Heavy {{ {aliased} }}");
    let request = HttpRequest::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"query": heavy, "operationName": "Heavy"}).to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let heavy_answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert!(heavy_answer["data"].is_null() && !heavy_answer["errors"].is_null(), "{heavy_answer}");
    // With a fragment only the dropped operation uses, the named one still runs.
    let with_fragment = "query A { me { id } } query B { ...F } fragment F on Query { me { id } }";
    let request = HttpRequest::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"query": with_fragment, "operationName": "A"}).to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let light: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert!(light["errors"].is_null(), "{light}");

    // The same over a socket, running the subscription of the document.
    let addr = common::serve(&stack).await;
    let mut socket = initialised(addr, Some(&token)).await;
    let message = json!({"id": "w", "type": "subscribe", "payload": {"query": document, "operationName": "Watch"}});
    socket.send(Message::text(message.to_string())).await.unwrap_or_else(|e| panic!("{e}"));
    let listed =
        call.gql(&stack, "mutation { createTicket(title: \"Seen\", priceCents: 100) { id } }", json!({})).await;
    assert!(listed["errors"].is_null(), "{listed}");
    let pushed = answer(&mut socket, "w").await;
    assert!(pushed["payload"]["data"]["ticketChanged"]["id"].is_string(), "{pushed}");
}
