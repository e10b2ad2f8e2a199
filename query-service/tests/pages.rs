//! Server-rendered pages against the real system: the public pages arrive with their content, the
//! `og:` tags and the answers the browser hydrates from; unknown ids are 404 with a rendered
//! not-found page; a page is rendered for its own viewer only; the sitemap and robots.txt.
//! (That the browser hydrates them, and shows them with JavaScript off, is `browser.rs`.)

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use serde_json::json;
use tower::ServiceExt;

mod common;
use common::{Client, Stack, stack_with};

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";
const CREATE_TICKET: &str = "mutation($t: String!, $p: Int!) { createTicket(title: $t, priceCents: $p) { id } }";

/// A web directory with the app's real page template (no bundle: rendering does not need one).
fn web_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let template =
        std::fs::read_to_string(testkit::workspace_root().join("web/index.html")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("index.html"), template).unwrap_or_else(|e| panic!("{e}"));
    dir
}

async fn pages_stack(dir: &tempfile::TempDir, rendering: bool) -> Stack {
    let path = dir.path().to_path_buf();
    stack_with(900, move |c| {
        c.web_dir = path;
        c.server_rendering = rendering;
    })
    .await
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get(stack: &Stack, path: &str, client: Option<&Client>) -> Got {
    let mut request = HttpRequest::get(path);
    if let Some(cookie) = client.and_then(|c| c.cookie.as_ref()) {
        request = request.header(header::COOKIE, format!("session={cookie}"));
    }
    let response =
        stack.app.clone().oneshot(request.body(Body::empty()).unwrap_or_default()).await.unwrap_or_else(|e| match e {});
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap_or_default();
    Got { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

async fn signed_up(stack: &Stack, name: &str) -> (Client, String) {
    let mut client = Client::default();
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = client.gql(stack, SIGN_UP, json!({"e": email})).await;
    assert!(body["errors"].is_null(), "{body}");
    (client, email)
}

async fn list(client: &mut Client, stack: &Stack, title: &str, cents: i64) -> String {
    let body = client.gql(stack, CREATE_TICKET, json!({"t": title, "p": cents})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned()
}

/// The content of `<meta property="og:…">` (or `name=`) in `html`.
fn meta(html: &str, property: &str) -> Option<String> {
    let at = html.find(&format!("property=\"{property}\" content=\""))?;
    let rest = &html[at..];
    let start = rest.find("content=\"")? + "content=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_owned())
}

/// The app's rendered root (between `<div id="app">` and the `<noscript>` after it).
fn app_markup(html: &str) -> &str {
    let start = html.find("<div id=\"app\">").unwrap_or_else(|| panic!("no app root: {html}"));
    let end = html[start..].find("<noscript>").map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test]
async fn public_pages_arrive_rendered_with_their_content_and_link_previews() {
    let dir = web_dir();
    let stack = pages_stack(&dir, true).await;
    let (mut seller, _) = signed_up(&stack, "seller").await;
    let ticket = list(&mut seller, &stack, "Rock <Arena> & \"Friends\"", 4250).await;
    list(&mut seller, &stack, "Quiet jazz", 1000).await;

    // The home page lists the tickets, with their prices, in the markup itself.
    let home = get(&stack, "/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    let app = app_markup(&home.body);
    assert!(
        app.contains("Rock &lt;Arena&gt; &amp; &quot;Friends&quot;")
            || app.contains("Rock &lt;Arena&gt; &amp; \"Friends\""),
        "{app}"
    );
    assert!(app.contains("$42.50") && app.contains("Quiet jazz"), "{app}");
    assert!(!app.contains("Loading tickets"), "no loading state in a rendered page: {app}");
    assert_eq!(meta(&home.body, "og:type").as_deref(), Some("website"));
    assert!(home.body.contains("id=\"preloaded\""), "the answers for hydration are in the page");
    assert!(!home.body.contains("</script><"), "{}", &home.body[..home.body.len().min(3000)]);
    assert_eq!(home.headers[header::CACHE_CONTROL], "private, no-cache");
    assert_eq!(home.headers[header::VARY], "Cookie");

    // A ticket's page: title, price, status and date, and a preview of them.
    let page = get(&stack, &format!("/tickets/{ticket}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let app = app_markup(&page.body);
    assert!(app.contains("data-testid=\"ticket-title\""), "{app}");
    assert!(app.contains("$42.50") && app.contains("Available") && app.contains("Listed "), "{app}");
    assert!(app.contains("Sign in to buy"), "a signed-out viewer is asked to sign in: {app}");
    assert_eq!(meta(&page.body, "og:title").as_deref(), Some("Rock &lt;Arena&gt; &amp; &quot;Friends&quot;"));
    let description = meta(&page.body, "og:description").unwrap_or_default();
    assert!(description.starts_with("$42.50 · Available · listed "), "{description}");
    assert_eq!(meta(&page.body, "og:type").as_deref(), Some("product"));
    assert_eq!(
        meta(&page.body, "og:url").as_deref(),
        Some(format!("https://tickets.example/tickets/{ticket}").as_str()),
        "canonical links on the first allowed origin"
    );
    assert!(page.body.contains(&format!("<link rel=\"canonical\" href=\"https://tickets.example/tickets/{ticket}\">")));
    assert!(page.body.contains("<title>Rock &lt;Arena&gt;"), "{}", &page.body[..800.min(page.body.len())]);

    // A search in the address is rendered too, and only what it finds.
    let found = get(&stack, "/?search=jazz", None).await;
    let app = app_markup(&found.body);
    assert!(app.contains("Quiet jazz") && !app.contains("Friends"), "{app}");
    assert!(app.contains("value=\"jazz\""), "the search box shows the search: {app}");
    let none = get(&stack, "/?search=opera", None).await;
    assert!(app_markup(&none.body).contains("No tickets match your search."));

    // Unknown ids and addresses: 404 with the app's own not-found pages.
    let missing = get(&stack, &format!("/tickets/{}", uuid::Uuid::new_v4()), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(app_markup(&missing.body).contains("No such ticket"), "{}", missing.body);
    assert_eq!(get(&stack, "/tickets/not-an-id", None).await.status, StatusCode::NOT_FOUND);
    let nowhere = get(&stack, "/no/such/page", None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(app_markup(&nowhere.body).contains("Page not found"));
    assert_eq!(get(&stack, &format!("/events/{}", uuid::Uuid::new_v4()), None).await.status, StatusCode::NOT_FOUND);

    for path in ["/signin", "/signup?next=%2Fsell", "/events?search=%3C%2Fscript%3E"] {
        let page = get(&stack, path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("<div id=\"app\"></div>"), "{path} is rendered: {}", page.body);
    }
    assert!(app_markup(&get(&stack, "/signin", None).await.body).contains("type=\"password\""));

    // A read that fails is not "not found" (a crawler would forget the page): 503, try again.
    sqlx::query("ALTER VIEW read.tickets RENAME TO tickets_away")
        .execute(&stack.state.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failing = get(&stack, &format!("/tickets/{ticket}"), None).await;
    sqlx::query("ALTER VIEW read.tickets_away RENAME TO tickets")
        .execute(&stack.state.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failing.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failing.body);
    assert_eq!(failing.headers[header::RETRY_AFTER], "5");
    assert_eq!(get(&stack, &format!("/tickets/{ticket}"), None).await.status, StatusCode::OK);

    // Pages that need the browser come as the empty shell.
    for path in ["/sell", "/my/orders", &format!("/orders/{}", uuid::Uuid::new_v4())] {
        let shell = get(&stack, path, None).await;
        assert_eq!(shell.status, StatusCode::OK, "{path}");
        assert!(shell.body.contains("<div id=\"app\"></div>"), "{path}: {}", shell.body);
    }
}

#[tokio::test]
async fn an_event_page_arrives_with_its_prices_date_venue_and_seats() {
    let dir = web_dir();
    let stack = pages_stack(&dir, true).await;
    let (mut organizer, _) = signed_up(&stack, "organizer").await;
    let input = json!({"input": {
        "title": "Opera Gala", "venue": "Grand Théâtre", "startsAt": "2031-06-01T19:30:00Z",
        "ticketTypes": [{"name": "Standing", "priceCents": 2500, "capacity": 3}],
        "sections": [{"name": "A", "priceCents": 9000, "rows": 2, "seatsPerRow": 3}],
    }});
    let body =
        organizer.gql(&stack, "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }", input).await;
    assert!(body["errors"].is_null(), "{body}");
    let id = body["data"]["createEvent"]["id"].as_str().unwrap_or_default().to_owned();
    let (mut buyer, _) = signed_up(&stack, "buyer").await;
    let hold = buyer
        .gql(&stack, "mutation($e: ID!) { createEventOrder(eventId: $e, seats: [\"A-1-2\"]) { id } }", json!({"e": id}))
        .await;
    assert!(hold["errors"].is_null(), "{hold}");

    let events = get(&stack, "/events", None).await;
    let app = app_markup(&events.body);
    assert!(
        app.contains("Opera Gala") && app.contains("1 Jun 2031, 19:30 UTC") && app.contains("Grand Théâtre"),
        "{app}"
    );
    assert!(app.contains("from $25.00") && app.contains("8 left"), "{app}");
    assert!(app_markup(&get(&stack, "/events?search=theatre", None).await.body).contains("Opera Gala"));
    assert!(!app_markup(&get(&stack, "/events?search=ballet", None).await.body).contains("Opera Gala"));

    let page = get(&stack, &format!("/events/{id}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let app = app_markup(&page.body);
    assert!(
        app.contains("Opera Gala") && app.contains("Grand Théâtre") && app.contains("1 Jun 2031, 19:30 UTC"),
        "{app}"
    );
    assert!(app.contains("Standing") && app.contains("$25.00") && app.contains("$90.00"), "{app}");
    // The seat map: six seats, the held one marked as such.
    assert_eq!(app.matches("data-seat=\"").count(), 6, "{app}");
    assert_eq!(app.matches("seat seat--held").count(), 1, "{app}");
    assert!(app.contains("Seat A-1-2, row 1 seat 2, $90.00, held"), "{app}");
    assert!(app.contains("5 of 6 available"), "{app}");
    let description = meta(&page.body, "og:description").unwrap_or_default();
    assert_eq!(description, "from $25.00 · 1 Jun 2031, 19:30 UTC · Grand Théâtre · 8 left");
    assert_eq!(meta(&page.body, "og:title").as_deref(), Some("Opera Gala"));
}

/// A big seat map is not drawn on the server (200,000 seats would be about 60 MB of markup and a
/// slow render for anyone who asks): the page says so and the browser draws it once live.
#[tokio::test]
async fn a_big_seat_map_is_left_to_the_browser() {
    let dir = web_dir();
    let stack = pages_stack(&dir, true).await;
    let (mut organizer, _) = signed_up(&stack, "organizer").await;
    let input = json!({"input": {
        "title": "Stadium", "venue": "Big Field", "startsAt": "2031-06-01T19:30:00Z",
        "sections": [{"name": "A", "priceCents": 9000, "rows": 50, "seatsPerRow": 200}],
    }});
    let body =
        organizer.gql(&stack, "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }", input).await;
    let id = body["data"]["createEvent"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    let page = get(&stack, &format!("/events/{id}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let app = app_markup(&page.body);
    assert!(
        app.contains("Stadium") && app.contains("Drawing the seat map (10000 seats)"),
        "{}",
        &app[..app.len().min(4000)]
    );
    assert_eq!(app.matches("data-seat=").count(), 0);
    assert!(page.body.len() < 200_000, "{} bytes", page.body.len());
}

#[tokio::test]
async fn a_page_is_rendered_for_its_own_viewer_only() {
    let dir = web_dir();
    let stack = pages_stack(&dir, true).await;
    let (mut alice, alice_email) = signed_up(&stack, "alice").await;
    let (bob, bob_email) = signed_up(&stack, "bob").await;
    let ticket = list(&mut alice, &stack, "Alice's ticket", 1500).await;

    let as_alice = get(&stack, &format!("/tickets/{ticket}"), Some(&alice)).await;
    let app = app_markup(&as_alice.body);
    assert!(app.contains(&alice_email), "the header shows the viewer: {app}");
    assert!(app.contains("You are selling this ticket."), "{app}");
    let as_bob = get(&stack, &format!("/tickets/{ticket}"), Some(&bob)).await;
    assert!(as_bob.body.contains(&bob_email) && !as_bob.body.contains(&alice_email), "{}", as_bob.body);
    assert!(app_markup(&as_bob.body).contains("data-testid=\"buy\""), "bob may buy it");
    let anonymous = get(&stack, &format!("/tickets/{ticket}"), None).await;
    assert!(!anonymous.body.contains(&alice_email) && !anonymous.body.contains(&bob_email));
    assert!(app_markup(&anonymous.body).contains("Sign in"));
    for page in [&as_alice, &as_bob] {
        assert_eq!(page.headers[header::CACHE_CONTROL], "private, no-store", "a signed-in page is kept nowhere");
    }
    assert_eq!(anonymous.headers[header::CACHE_CONTROL], "private, no-cache");
    // A session that no longer holds (signed out) renders as signed out.
    let mut gone = alice.clone();
    let out = gone.gql(&stack, "mutation { signOut }", json!({})).await;
    assert!(out["errors"].is_null(), "{out}");
    let stale = Client { cookie: alice.cookie.clone() };
    let after = get(&stack, &format!("/tickets/{ticket}"), Some(&stale)).await;
    assert!(!after.body.contains(&alice_email), "a revoked session sees the anonymous page");
}

#[tokio::test]
async fn without_server_rendering_every_page_is_the_apps_shell() {
    let dir = web_dir();
    let stack = pages_stack(&dir, false).await;
    let (mut seller, _) = signed_up(&stack, "seller").await;
    let ticket = list(&mut seller, &stack, "Shell ticket", 1000).await;
    for path in ["/".to_owned(), format!("/tickets/{ticket}"), "/events".to_owned()] {
        let page = get(&stack, &path, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<div id=\"app\"></div>") && !page.body.contains("Shell ticket"), "{path}");
    }
}

#[tokio::test]
async fn the_sitemap_lists_upcoming_events_and_available_tickets() {
    let dir = web_dir();
    let stack = pages_stack(&dir, true).await;
    let (mut seller, _) = signed_up(&stack, "seller").await;
    let available = list(&mut seller, &stack, "For sale", 1000).await;
    let held = list(&mut seller, &stack, "On hold", 1000).await;
    let (mut buyer, _) = signed_up(&stack, "buyer").await;
    let order = buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": held})).await;
    assert!(order["errors"].is_null(), "{order}");
    let event = |title: &str, starts_at: &str| {
        json!({"input": {"title": title, "venue": "Hall", "startsAt": starts_at,
            "ticketTypes": [{"name": "Standing", "priceCents": 2500, "capacity": 3}]}})
    };
    let created = seller
        .gql(
            &stack,
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            event("Future", "2032-01-01T20:00:00Z"),
        )
        .await;
    let upcoming = created["data"]["createEvent"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(!upcoming.is_empty(), "{created}");

    let sitemap = get(&stack, "/sitemap.xml", None).await;
    assert_eq!(sitemap.status, StatusCode::OK);
    assert!(sitemap.headers[header::CONTENT_TYPE].to_str().unwrap_or_default().starts_with("application/xml"));
    assert!(sitemap.body.starts_with("<?xml"), "{}", sitemap.body);
    assert!(
        sitemap.body.contains(&format!("<loc>https://tickets.example/tickets/{available}</loc>")),
        "{}",
        sitemap.body
    );
    assert!(
        sitemap.body.contains(&format!("<loc>https://tickets.example/events/{upcoming}</loc>")),
        "{}",
        sitemap.body
    );
    assert!(!sitemap.body.contains(&held), "a held ticket is not for sale: {}", sitemap.body);
    assert_eq!(sitemap.body.matches("<url>").count(), 2, "{}", sitemap.body);

    let robots = get(&stack, "/robots.txt", None).await;
    assert!(robots.body.contains("Sitemap: https://tickets.example/sitemap.xml"), "{}", robots.body);
    assert!(robots.body.contains("Disallow: /graphql") && robots.body.contains("Disallow: /my/"), "{}", robots.body);
}

/// The page built by `scripts/build-web` carries its stylesheet inline; the policy allows exactly
/// that stylesheet by its hash.
#[tokio::test]
async fn the_inline_stylesheet_is_allowed_by_its_hash_and_nothing_else_inline() {
    let dir = web_dir();
    let css = "body { color: red; }\n";
    let template = std::fs::read_to_string(dir.path().join("index.html")).unwrap_or_default();
    let built = template.replace("<!--inline-style-->", &format!("<style>{css}</style>"));
    std::fs::write(dir.path().join("index.html"), built).unwrap_or_else(|e| panic!("{e}"));
    let stack = pages_stack(&dir, true).await;
    let page = get(&stack, "/", None).await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or_default().to_owned();
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
    assert!(csp.contains(&format!("style-src 'self' 'sha256-{hash}';")), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "no inline script: {csp}");
}

#[test]
fn meta_reads_a_tag() {
    let html = r#"<meta property="og:title" content="A &amp; B"><meta property="og:type" content="website">"#;
    assert_eq!(meta(html, "og:title").as_deref(), Some("A &amp; B"));
    assert_eq!(meta(html, "og:type").as_deref(), Some("website"));
    assert_eq!(meta(html, "og:url"), None);
}
