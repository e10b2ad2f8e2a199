use yew::prelude::*;
use yew_router::prelude::*;

use super::{Next, random_key};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, TicketBadge};
use crate::format;
use crate::graphql::{
    CreateOrder, TicketChanged, TicketDetail, TicketHistory, create_order, ticket_changed, ticket_detail,
    ticket_history,
};
use crate::hooks::{use_live, use_user};
use crate::pages::my_tickets::EditTicket;
use crate::state::{Live, Ticket, TicketStatus};

/// Properties of [`TicketPage`].
#[derive(Properties, PartialEq)]
pub struct TicketPageProps {
    /// The ticket's id.
    pub id: String,
}

/// One ticket, live: buy it; its seller (or an admin) edits it and reads its history.
#[function_component(TicketPage)]
pub fn ticket_page(props: &TicketPageProps) -> Html {
    let user = use_user();
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let key = use_state(random_key);
    let navigator = use_navigator();

    let live = use_live::<TicketDetail, TicketChanged, Ticket>(
        ticket_detail::Variables { id: props.id.clone() },
        ticket_changed::Variables { id: props.id.clone() },
        |data| data.ticket.map(Into::into),
        |data| data.ticket_changed.into(),
        Callback::from({
            let error = error.setter();
            move |e| error.set(Some(e))
        }),
    );

    let ticket = match &*live {
        Live::Loading => return html! { <p class="muted" role="status">{ "Loading the ticket…" }</p> },
        Live::Missing => {
            return html! {
                <section class="panel panel--center">
                    <h1>{ "No such ticket" }</h1>
                    <p><Link<Route> to={Route::Tickets}>{ "Browse tickets" }</Link<Route>></p>
                </section>
            };
        }
        Live::Ready(ticket) => ticket.clone(),
    };
    let is_seller = user.as_ref().is_some_and(|u| u.id == ticket.seller_id);

    let buy = {
        let (error, busy, key, id) = (error.clone(), busy.clone(), key.clone(), ticket.id.clone());
        Callback::from(move |_: MouseEvent| {
            let (error, busy, navigator) = (error.clone(), busy.clone(), navigator.clone());
            let variables = create_order::Variables { ticket_id: id.clone(), idempotency_key: Some((*key).clone()) };
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<CreateOrder>(variables).await {
                    Ok(data) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Order { id: data.create_order.id });
                        }
                    }
                    Err(e) => {
                        error.set(Some(e));
                        busy.set(false);
                    }
                }
            });
        })
    };

    // The button comes from the API's answer (the domain's rule); the rest explains why not.
    let action = if ticket.viewer_can_hold {
        html! {
            <button class="button button--large" onclick={buy} disabled={*busy} data-testid="buy">
                { if *busy { "Holding…".to_string() } else { format!("Buy for {}", format::money(ticket.price_cents, &ticket.currency)) } }
            </button>
        }
    } else if is_seller {
        html! { <p class="muted">{ "You are selling this ticket." }</p> }
    } else if ticket.status != TicketStatus::Available {
        let why = if ticket.status == TicketStatus::Sold {
            "This ticket has been sold."
        } else {
            "Someone is holding this ticket. If they do not pay in time it becomes available again, right here."
        };
        html! { <p class="muted" role="status">{ why }</p> }
    } else if user.is_none() {
        let next = Next { next: Some(format!("/tickets/{}", ticket.id)) };
        html! {
            <Link<Route, Next> to={Route::SignIn} query={Some(next)} classes="button button--large">{ "Sign in to buy" }</Link<Route, Next>>
        }
    } else {
        html! {}
    };

    html! {
        <article class="detail">
            <p class="breadcrumb"><Link<Route> to={Route::Tickets}>{ "← All tickets" }</Link<Route>></p>
            <div class="detail__head">
                <h1 data-testid="ticket-title">{ ticket.title.clone() }</h1>
                <div aria-live="polite" data-testid="ticket-status"><TicketBadge status={ticket.status} /></div>
            </div>
            <p class="detail__price">{ format::money(ticket.price_cents, &ticket.currency) }</p>
            <p class="muted">{ format!("Listed {}", format::date(&ticket.created_at)) }</p>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            <div class="detail__action">{ action }</div>
            if ticket.viewer_can_edit {
                <EditTicket ticket={ticket.clone()} />
            }
            if ticket.viewer_can_read_history {
                <History id={ticket.id.clone()} version={ticket.version} />
            }
        </article>
    }
}

#[derive(Properties, PartialEq)]
struct HistoryProps {
    id: String,
    version: i64,
}

/// The ticket's events, oldest first; reloaded whenever the ticket's version moves.
#[function_component(History)]
fn history(props: &HistoryProps) -> Html {
    let events = use_state(Vec::<ticket_history::TicketHistoryTicketHistory>::new);
    {
        let events = events.setter();
        use_effect_with((props.id.clone(), props.version), move |(id, _)| {
            let id = id.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(data) = api::request::<TicketHistory>(ticket_history::Variables { id }).await {
                    events.set(data.ticket.map(|t| t.history).unwrap_or_default());
                }
            });
        });
    }
    html! {
        <section class="history" aria-labelledby="history-title">
            <h2 id="history-title">{ "History" }</h2>
            <ol class="timeline" data-testid="history">
                { for events.iter().map(|e| html! {
                    <li>
                        <span class="timeline__what">{ format::event_type(&e.type_) }</span>
                        <time class="muted" datetime={e.at.clone()}>{ format::date(&e.at) }</time>
                    </li>
                }) }
            </ol>
        </section>
    }
}
