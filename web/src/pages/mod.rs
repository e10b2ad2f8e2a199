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
pub fn random_key() -> String {
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
