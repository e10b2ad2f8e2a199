//! One module per page.

mod auth;
mod browse;
mod events;
mod my_orders;
mod my_tickets;
mod order;
mod organise;
mod sell;
mod ticket;

pub use auth::{SignIn, SignUp};
pub use browse::Tickets;
pub use events::{EventPage, Events};
pub use my_orders::MyOrders;
pub use my_tickets::MyTickets;
pub use order::OrderPage;
pub use organise::{MyEvents, NewEvent};
pub use sell::Sell;
pub use ticket::TicketPage;

use serde::{Deserialize, Serialize};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::app::Route;
use crate::state::Ticket;

/// How many rows a page loads at a time.
pub const PAGE_SIZE: i64 = 20;

/// The `?next=` of the sign-in pages: where to go afterwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Next {
    /// A path of this app.
    #[serde(default)]
    pub next: Option<String>,
}

/// The `?search=` of the list pages: what is searched for, so a search can be shared as a link
/// and arrives server-rendered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// The words searched for.
    #[serde(default)]
    pub search: Option<String>,
}

/// The search in the address of the current page (none when empty), and a callback that puts a
/// new one there (replacing the history entry, so typing does not fill the back button).
#[hook]
pub fn use_search(route: Route) -> (Option<String>, Callback<String>) {
    let location = use_location();
    let search = location
        .and_then(|l| l.query::<SearchQuery>().ok())
        .and_then(|q| q.search)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let navigator = use_navigator();
    let set = Callback::from(move |text: String| {
        let Some(navigator) = &navigator else { return };
        let text = text.trim();
        if text.is_empty() {
            navigator.replace(&route);
        } else {
            let _ignored = navigator.replace_with_query(&route, &SearchQuery { search: Some(text.to_owned()) });
        }
    });
    (search, set)
}

/// A cancellable request of a list page: starting one aborts the one before, whose answer (if it
/// comes anyway) is dropped, so a slow answer to an older search never replaces a newer one.
#[derive(Default)]
pub struct Latest {
    controller: Option<web_sys::AbortController>,
    generation: u64,
}

impl Latest {
    /// Aborts the request before and starts counting a new one: its number and abort signal.
    pub fn start(&mut self) -> (u64, Option<web_sys::AbortSignal>) {
        if let Some(before) = self.controller.take() {
            before.abort();
        }
        self.controller = web_sys::AbortController::new().ok();
        self.generation += 1;
        (self.generation, self.controller.as_ref().map(web_sys::AbortController::signal))
    }

    /// The number of the latest request, for a request that must not abort it (a further page):
    /// its answer counts only while no newer one has started.
    pub fn current(&self) -> u64 {
        self.generation
    }

    /// Whether request `generation` is still the latest.
    pub fn is_latest(&self, generation: u64) -> bool {
        self.generation == generation
    }
}

/// A link to sign in that comes back to the current page.
#[function_component(SignInFirst)]
pub fn sign_in_first() -> Html {
    let location = use_location();
    let next = Next { next: location.map(|l| l.path().to_owned()) };
    html! {
        <section class="panel panel--center">
            <h1>{ "Sign in to continue" }</h1>
            <p>{ "You need an account for this page." }</p>
            <p class="actions">
                <Link<Route, Next> to={Route::SignIn} query={Some(next.clone())} classes="button">{ "Sign in" }</Link<Route, Next>>
                <Link<Route, Next> to={Route::SignUp} query={Some(next)} classes="button button--quiet">{ "Create an account" }</Link<Route, Next>>
            </p>
        </section>
    }
}

/// Shown for an address the app does not know.
#[function_component(NotFound)]
pub fn not_found() -> Html {
    html! {
        <section class="panel panel--center">
            <h1>{ "Page not found" }</h1>
            <p><Link<Route> to={Route::Tickets}>{ "Browse tickets" }</Link<Route>></p>
        </section>
    }
}

/// A random UUID (v4) for idempotency keys; `crypto.getRandomValues` works on plain HTTP too.
/// A server render makes none (it sends no requests): it gets an empty key the browser's
/// hydration replaces with its own.
pub fn random_key() -> String {
    if !cfg!(target_arch = "wasm32") {
        return String::new();
    }
    let mut bytes = [0u8; 16];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _filled = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    if bytes == [0; 16] {
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (js_sys::Math::random() * 256.0) as u8 ^ i as u8;
        }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Properties of [`TicketCard`].
#[derive(Properties, PartialEq)]
pub struct TicketCardProps {
    /// The ticket shown.
    pub ticket: Ticket,
}

/// A ticket in a grid: title, price, status; the whole card is the link.
#[function_component(TicketCard)]
pub fn ticket_card(props: &TicketCardProps) -> Html {
    let ticket = &props.ticket;
    html! {
        <li class="card" data-ticket={ticket.id.clone()}>
            <Link<Route> to={Route::Ticket { id: ticket.id.clone() }} classes="card__link">
                <span class="card__title">{ ticket.title.clone() }</span>
            </Link<Route>>
            <span class="card__price">{ crate::format::money(ticket.price_cents, &ticket.currency) }</span>
            <crate::components::TicketBadge status={ticket.status} />
        </li>
    }
}
