use yew::prelude::*;
use yew_router::prelude::*;

use super::{PAGE_SIZE, SignInFirst};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, Field, TicketBadge};
use crate::format;
use crate::graphql::{
    MyTickets as MyTicketsQuery, TicketsChanged, UpdateTicket, my_tickets, tickets_changed, update_ticket,
};
use crate::hooks::{use_session, use_subscription};
use crate::state::{ListAction, Ticket, TicketList};
use crate::ws;

async fn fetch(after: Option<String>) -> Result<super::browse::Page, ApiError> {
    let data = api::request::<MyTicketsQuery>(my_tickets::Variables { first: PAGE_SIZE, after }).await?;
    let page = data.my_tickets;
    let next = if page.page_info.has_next_page { page.page_info.end_cursor } else { None };
    Ok((page.nodes.into_iter().map(Into::into).collect(), next))
}

/// The tickets I sell, live; available ones can be edited in place.
#[function_component(MyTickets)]
pub fn my_tickets() -> Html {
    let session = use_session();
    match (&session.user, session.known) {
        (Some(user), _) => html! { <MyTicketList seller={user.id.clone()} /> },
        (None, true) => html! { <SignInFirst /> },
        (None, false) => html! { <p class="muted" role="status">{ "Loading…" }</p> },
    }
}

#[derive(Properties, PartialEq)]
struct ListProps {
    seller: String,
}

#[function_component(MyTicketList)]
fn my_ticket_list(props: &ListProps) -> Html {
    let list = use_reducer({
        let seller = props.seller.clone();
        move || TicketList::new(None, Some(seller))
    });
    let error = use_state(|| None::<ApiError>);
    let load = {
        let (list, error) = (list.dispatcher(), error.setter());
        move |refresh: bool| {
            let (list, error) = (list.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match fetch(None).await {
                    Ok((items, next)) if refresh => list.dispatch(ListAction::Refresh(items, next)),
                    Ok((items, next)) => list.dispatch(ListAction::First(items, next)),
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    {
        let load = load.clone();
        use_effect_with((), move |_| load(false));
    }
    {
        let dispatch = list.dispatcher();
        use_subscription::<TicketsChanged>(
            tickets_changed::Variables,
            Callback::from(move |event| match event {
                ws::Event::Connected => load(true),
                ws::Event::Data(data) => {
                    let data: tickets_changed::ResponseData = data;
                    dispatch.dispatch(ListAction::Changed(data.ticket_changed.into()));
                }
                ws::Event::Refused(_) => {}
            }),
        );
    }
    let more = {
        let (list, error) = (list.clone(), error.setter());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, error, after) = (list.dispatcher(), error.clone(), list.next.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match fetch(after).await {
                    Ok((items, next)) => dispatch.dispatch(ListAction::More(items, next)),
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    html! {
        <>
            <div class="page-head">
                <h1>{ "My tickets" }</h1>
                <Link<Route> to={Route::Sell} classes="button">{ "Sell a ticket" }</Link<Route>>
            </div>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            if !list.loaded {
                <p class="muted" role="status">{ "Loading your tickets…" }</p>
            } else if list.items.is_empty() {
                <p class="empty">{ "You are not selling anything yet." }</p>
            } else {
                <ul class="rows" aria-live="polite">
                    { for list.items.iter().map(|t| html! { <MyTicketRow key={t.id.clone()} ticket={t.clone()} /> }) }
                </ul>
            }
            if list.next.is_some() {
                <p class="actions actions--center"><button class="button button--quiet" onclick={more}>{ "Show more" }</button></p>
            }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct RowProps {
    ticket: Ticket,
}

#[function_component(MyTicketRow)]
fn my_ticket_row(props: &RowProps) -> Html {
    let editing = use_state(|| false);
    let ticket = &props.ticket;
    let toggle = {
        let editing = editing.clone();
        Callback::from(move |_: MouseEvent| editing.set(!*editing))
    };
    html! {
        <li class="row" data-ticket={ticket.id.clone()}>
            <div class="row__main">
                <Link<Route> to={Route::Ticket { id: ticket.id.clone() }} classes="row__title">{ ticket.title.clone() }</Link<Route>>
                <span class="row__price">{ format::money(ticket.price_cents, &ticket.currency) }</span>
                <TicketBadge status={ticket.status} />
                if ticket.viewer_can_edit {
                    <button class="button button--quiet" onclick={toggle} aria-expanded={editing.to_string()}>
                        { if *editing { "Close" } else { "Edit" } }
                    </button>
                }
            </div>
            if *editing && ticket.viewer_can_edit {
                <EditTicket ticket={ticket.clone()} />
            }
        </li>
    }
}

/// Properties of [`EditTicket`].
#[derive(Properties, PartialEq)]
pub struct EditTicketProps {
    /// The ticket to edit.
    pub ticket: Ticket,
}

/// Title and price of an available ticket, saved with `updateTicket`.
#[function_component(EditTicket)]
pub fn edit_ticket(props: &EditTicketProps) -> Html {
    let title = use_state(|| props.ticket.title.clone());
    let price = use_state(|| format::price_input(props.ticket.price_cents));
    let error = use_state(|| None::<ApiError>);
    let saved = use_state(|| false);
    let prefix = format!("edit-{}", props.ticket.id);
    let onsubmit = {
        let (title, price, error, saved, id) =
            (title.clone(), price.clone(), error.clone(), saved.clone(), props.ticket.id.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(cents) = format::parse_price(&price) else {
                error.set(Some(price_error()));
                return;
            };
            let variables =
                update_ticket::Variables { id: id.clone(), title: Some((*title).clone()), price_cents: Some(cents) };
            let (error, saved) = (error.clone(), saved.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<UpdateTicket>(variables).await {
                    Ok(_) => {
                        error.set(None);
                        saved.set(true);
                    }
                    Err(e) => {
                        saved.set(false);
                        error.set(Some(e));
                    }
                }
            });
        })
    };
    let field_error = |field: &str| error.as_ref().and_then(|e| e.for_field(field));
    html! {
        <form class="form form--inline" {onsubmit} aria-label="Edit ticket">
            <Field id={format!("{prefix}-title")} label="Title" value={(*title).clone()}
                oninput={Callback::from({ let title = title.clone(); move |v| title.set(v) })}
                error={field_error("title")} />
            <Field id={format!("{prefix}-price")} label="Price (USD)" value={(*price).clone()} inputmode="decimal"
                oninput={Callback::from({ let price = price.clone(); move |v| price.set(v) })}
                error={field_error("priceCents")} />
            <button class="button" type="submit">{ "Save changes" }</button>
            if let Some(e) = error.as_ref().filter(|e| e.field.is_none()) {
                <Alert message={e.user_message()} />
            }
            if *saved {
                <Alert kind="info" message="Saved." />
            }
        </form>
    }
}

/// The error shown when a price cannot be read.
pub(super) fn price_error() -> ApiError {
    ApiError {
        code: "BAD_USER_INPUT".into(),
        message: "enter a price like 25 or 25.50".into(),
        field: Some("priceCents".into()),
        unavailable: vec![],
    }
}
