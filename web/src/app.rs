//! Routes and the app shell.

use yew::prelude::*;
use yew_router::history::{AnyHistory, History, MemoryHistory};
use yew_router::prelude::*;
use yew_router::query::Raw;

use crate::api;
use crate::components::Header;
use crate::graphql::{Me, me};
use crate::hooks::{SessionHandle, set_user};
use crate::pages;
use crate::preload::{Preloaded, use_preloaded};
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

/// Properties of [`App`].
#[derive(Properties, PartialEq, Default)]
pub struct AppProps {
    /// The answers the server sent with the page (none when it was not server-rendered).
    #[prop_or_default]
    pub preloaded: Preloaded,
}

/// The whole app in the browser: the page's answers, the browser's history, and the [`Shell`].
#[function_component(App)]
pub fn app(props: &AppProps) -> Html {
    html! {
        <ContextProvider<Preloaded> context={props.preloaded.clone()}>
            <BrowserRouter>
                <Shell />
            </BrowserRouter>
        </ContextProvider<Preloaded>>
    }
}

/// Properties of [`ServerApp`].
#[derive(Properties, PartialEq)]
pub struct ServerAppProps {
    /// The page's path and query (`/events?search=rock`).
    pub url: String,
    /// The answers fetched for it so far.
    pub preloaded: Preloaded,
}

/// The whole app as the server renders it: the same [`Shell`] at a fixed address.
#[function_component(ServerApp)]
pub fn server_app(props: &ServerAppProps) -> Html {
    let history = use_memo(props.url.clone(), |url| {
        let history = MemoryHistory::new();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let path = if path.starts_with('/') { path } else { "/" };
        if query.is_empty() {
            history.replace(path);
        } else {
            let _infallible = history.replace_with_query(path, Raw(query));
        }
        AnyHistory::from(history)
    });
    let history = (*history).clone();
    html! {
        <ContextProvider<Preloaded> context={props.preloaded.clone()}>
            <Router {history}>
                <Shell />
            </Router>
        </ContextProvider<Preloaded>>
    }
}

/// The session, the header and the page of the current route. The session starts as the server
/// knew it (`me` in the page's answers), so the header renders the same on both sides.
#[function_component(Shell)]
pub fn shell() -> Html {
    let preloaded = use_preloaded();
    let session: SessionHandle = use_reducer(|| match preloaded.take::<Me>(&me::Variables) {
        Some(data) => Session { known: true, user: data.me.map(Into::into) },
        None => Session::default(),
    });
    use_effect_with((), |_| {
        // The page is live (hydrated or rendered): the browser tests and the first-paint
        // benchmark wait for this mark.
        if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _marked = root.set_attribute("data-live", "true");
        }
    });
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            if !session.known {
                wasm_bindgen_futures::spawn_local(async move {
                    let user = api::request::<Me>(me::Variables).await.ok().and_then(|data| data.me).map(Into::into);
                    set_user(&session, user);
                });
            }
        });
    }
    html! {
        <ContextProvider<SessionHandle> context={session}>
            <Header />
            <main id="main" class="page" tabindex="-1">
                <Switch<Route> render={switch} />
            </main>
            <footer class="footer">
                <p>{ "Test mode: no real money moves. Cards: Visa succeeds, Declined fails, Async settles by webhook." }</p>
            </footer>
        </ContextProvider<SessionHandle>>
    }
}
