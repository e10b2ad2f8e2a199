//! Server-side rendering of the app's public pages with its own components (feature `ssr`, used
//! by the gateway).
//!
//! [`render`] renders a page with [`ServerApp`] at the requested address. A page's components
//! ask for the queries they show while they render ([`crate::preload`]); the first render only
//! collects those, the gateway's `fetch` runs them under the viewer's session, and the page is
//! rendered again with the answers (once more if those answers led to further queries, at most
//! [`MAX_RENDERS`] renders). The result carries the answers for the browser's hydration, and the
//! page's title, description and status for the document head and the response.
//!
//! Only the pages anyone may open are rendered here ([`server_rendered`]); the others depend on
//! the browser (a countdown, a form in progress) and come as the app's empty shell.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use yew_router::Routable;

use crate::app::{Route, ServerApp, ServerAppProps};
use crate::format;
use crate::graphql::{EventDetail, TicketDetail, event_detail, ticket_detail};
use crate::preload::{self, Preloaded};
use crate::state::{Event, Ticket};

/// How many times a page is rendered at most: to learn its queries, with their answers, and once
/// more for queries those answers led to.
pub const MAX_RENDERS: usize = 3;

/// Runs one GraphQL request (`query`, `operationName`, `variables`) for the viewer of the page and
/// answers its response JSON (`data`, `errors`).
pub type Fetch = Arc<dyn Fn(serde_json::Value) -> BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// A rendered page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// 200, or 404 for an address the app does not know or an id nothing has.
    pub status: u16,
    /// The document's title and `og:title`.
    pub title: String,
    /// The `description` and `og:description`: for a ticket its price and status, for an event
    /// its prices, date, venue and what is left.
    pub description: String,
    /// `og:type`.
    pub og_type: &'static str,
    /// The page's canonical path (the search, if any, is not part of it).
    pub canonical_path: String,
    /// The app's markup, for the page's `#app` element.
    pub body: String,
    /// The answers as JSON, for the page's `<script id="preloaded">`.
    pub preloaded: String,
}

/// Whether the page at `path` is rendered on the server (the others are the app's empty shell).
#[must_use]
pub fn server_rendered(path: &str) -> bool {
    matches!(
        Route::recognize(path),
        Some(
            Route::Tickets
                | Route::Ticket { .. }
                | Route::Events
                | Route::Event { .. }
                | Route::SignIn
                | Route::SignUp
                | Route::NotFound
        ) | None
    )
}

/// Renders the page at `url` (path and query) for the viewer `fetch` runs queries for.
pub async fn render(url: &str, fetch: Fetch) -> Page {
    let path = url.split(['?', '#']).next().unwrap_or("/").to_owned();
    let now = crate::format::now_millis();
    let mut answers: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut body = String::new();
    for render in 1..=MAX_RENDERS {
        let preloaded = Preloaded::for_server(answers.clone(), now);
        let (url, for_render) = (url.to_owned(), preloaded.clone());
        body = yew::ServerRenderer::<ServerApp>::with_props(move || ServerAppProps { url, preloaded: for_render })
            .render()
            .await;
        // The answers the page goes with are exactly those this render used: none is fetched
        // after the last render.
        let wanted: Vec<_> = preloaded.wanted().into_iter().filter(|w| !failed.contains(&w.key)).collect();
        if wanted.is_empty() || render == MAX_RENDERS {
            break;
        }
        let responses = futures::future::join_all(wanted.iter().map(|w| fetch(w.body.clone()))).await;
        for (wanted, response) in wanted.into_iter().zip(responses) {
            let errors = response.get("errors").is_some_and(|e| e.as_array().is_some_and(|e| !e.is_empty()));
            match response.get("data").filter(|d| !d.is_null()) {
                Some(data) if !errors => {
                    answers.insert(wanted.key, data.to_string());
                }
                _ => {
                    failed.insert(wanted.key);
                }
            }
        }
    }
    let head = head(&path, &Preloaded::for_server(answers.clone(), now), &failed);
    let data = crate::preload::PageData { now: Some(now), answers };
    Page {
        status: head.status,
        title: head.title,
        description: head.description,
        og_type: head.og_type,
        canonical_path: head.canonical_path,
        body,
        preloaded: serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()),
    }
}

struct Head {
    status: u16,
    title: String,
    description: String,
    og_type: &'static str,
    canonical_path: String,
}

fn head(path: &str, answers: &Preloaded, failed: &HashSet<String>) -> Head {
    let page = |title: &str, description: &str, canonical_path: &str| Head {
        status: 200,
        title: title.to_owned(),
        description: description.to_owned(),
        og_type: "website",
        canonical_path: canonical_path.to_owned(),
    };
    let not_found =
        Head { status: 404, ..page("Page not found · Tickets", "There is nothing at this address.", path) };
    // The page's own query failed (the database, say): not "not found", which would tell a
    // crawler to forget the page; the browser loads it as usual.
    let unavailable = || Head { status: 503, ..page("Tickets", "Buy and sell tickets, live.", path) };
    match Route::recognize(path) {
        Some(Route::Tickets) => {
            page("Tickets, live", "Buy and sell tickets, live: hold one for a few minutes, pay, and it is yours.", "/")
        }
        Some(Route::Events) => page(
            "Events · Tickets",
            "Concerts, plays and festivals: pick tickets or seats, hold them for a few minutes, pay.",
            "/events",
        ),
        Some(Route::SignIn) => page("Sign in · Tickets", "Sign in to buy and sell tickets.", "/signin"),
        Some(Route::SignUp) => {
            page("Create an account · Tickets", "Create an account to buy and sell tickets.", "/signup")
        }
        Some(Route::Ticket { id }) => {
            let variables = ticket_detail::Variables { id: id.clone() };
            if failed.contains(&preload::key::<TicketDetail>(&variables)) {
                return unavailable();
            }
            match answers.take::<TicketDetail>(&variables).and_then(|d| d.ticket).map(Ticket::from) {
                Some(ticket) => Head {
                    status: 200,
                    description: format!(
                        "{} · {} · listed {}",
                        format::money(ticket.price_cents, &ticket.currency),
                        format::ticket_status(ticket.status),
                        format::date(&ticket.created_at)
                    ),
                    // The id as stored, whichever form of it the address had.
                    canonical_path: format!("/tickets/{}", ticket.id),
                    title: ticket.title,
                    og_type: "product",
                },
                None => not_found,
            }
        }
        Some(Route::Event { id }) => {
            let variables = event_detail::Variables { id: id.clone() };
            if failed.contains(&preload::key::<EventDetail>(&variables)) {
                return unavailable();
            }
            match answers.take::<EventDetail>(&variables).and_then(|d| d.event).map(Event::from) {
                Some(event) => Head {
                    status: 200,
                    description: event_description(&event),
                    canonical_path: format!("/events/{}", event.id),
                    title: event.title,
                    og_type: "website",
                },
                None => not_found,
            }
        }
        Some(Route::NotFound) | None => not_found,
        Some(_) => page("Tickets", "Buy and sell tickets, live.", path),
    }
}

/// "from $25.00 · 24 Nov 2026, 20:00 UTC · Town Hall · 12 left".
fn event_description(event: &Event) -> String {
    let currency = event.ticket_types.first().map_or("USD", |t| t.currency.as_str());
    let prices = event.ticket_types.iter().map(|t| t.price_cents).chain(event.sections.iter().map(|s| s.price_cents));
    let left = if event.available == 0 { "sold out".to_owned() } else { format!("{} left", event.available) };
    let mut parts = Vec::new();
    if let Some(cents) = prices.min() {
        parts.push(format!("from {}", format::money(cents, currency)));
    }
    parts.extend([format::date(&event.starts_at), event.venue.clone(), left]);
    parts.join(" · ")
}

/// `text` safe inside an HTML attribute or element.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside a `<script>` element: no `<` (so no `</script>`), and the line separators
/// JavaScript once read as line ends escaped.
#[must_use]
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}
