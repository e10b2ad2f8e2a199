//! Routes and the app shell.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api;
use crate::components::Header;
use crate::graphql::{Me, me};
use crate::hooks::{SessionHandle, set_user};
use crate::pages;
use crate::state::Session;

/// Every page's address.
#[derive(Debug, Clone, PartialEq, Routable)]
pub enum Route {
    /// Every ticket, newest first, live.
    #[at("/")]
    Tickets,
    /// One ticket: buy it, or (its seller) see its history.
    #[at("/tickets/:id")]
    Ticket {
        /// The ticket shown.
        id: String,
    },
    /// Upcoming events, soonest first.
    #[at("/events")]
    Events,
    /// One event: choose tickets and seats; its organiser watches it sell.
    #[at("/events/:id")]
    Event {
        /// The event shown.
        id: String,
    },
    /// The events I organise.
    #[at("/my/events")]
    MyEvents,
    /// Put an event on sale.
    #[at("/my/events/new")]
    NewEvent,
    /// List a ticket for sale.
    #[at("/sell")]
    Sell,
    /// The tickets I sell.
    #[at("/my/tickets")]
    MyTickets,
    /// One order: countdown, pay, cancel.
    #[at("/orders/:id")]
    Order {
        /// The order shown.
        id: String,
    },
    /// My orders.
    #[at("/my/orders")]
    MyOrders,
    /// Sign in.
    #[at("/signin")]
    SignIn,
    /// Create an account.
    #[at("/signup")]
    SignUp,
    /// Anything else.
    #[not_found]
    #[at("/404")]
    NotFound,
}

fn switch(route: Route) -> Html {
    match route {
        Route::Tickets => html! { <pages::Tickets /> },
        Route::Ticket { id } => html! { <pages::TicketPage {id} /> },
        Route::Events => html! { <pages::Events /> },
        Route::Event { id } => html! { <pages::EventPage {id} /> },
        Route::MyEvents => html! { <pages::MyEvents /> },
        Route::NewEvent => html! { <pages::NewEvent /> },
        Route::Sell => html! { <pages::Sell /> },
        Route::MyTickets => html! { <pages::MyTickets /> },
        Route::Order { id } => html! { <pages::OrderPage {id} /> },
        Route::MyOrders => html! { <pages::MyOrders /> },
        Route::SignIn => html! { <pages::SignIn /> },
        Route::SignUp => html! { <pages::SignUp /> },
        Route::NotFound => html! { <pages::NotFound /> },
    }
}

/// The whole app: the session, the header and the page of the current route.
#[function_component(App)]
pub fn app() -> Html {
    let session: SessionHandle = use_reducer(Session::default);
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let user = api::request::<Me>(me::Variables).await.ok().and_then(|data| data.me).map(Into::into);
                set_user(&session, user);
            });
        });
    }
    html! {
        <ContextProvider<SessionHandle> context={session}>
            <BrowserRouter>
                <Header />
                <main id="main" class="page" tabindex="-1">
                    <Switch<Route> render={switch} />
                </main>
                <footer class="footer">
                    <p>{ "Test mode: no real money moves. Cards: Visa succeeds, Declined fails, Async settles by webhook." }</p>
                </footer>
            </BrowserRouter>
        </ContextProvider<SessionHandle>>
    }
}
