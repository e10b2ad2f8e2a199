use yew::prelude::*;
use yew_router::prelude::*;

use super::{PAGE_SIZE, TicketCard};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::Alert;
use crate::graphql::{Tickets as TicketsQuery, TicketsChanged, tickets, tickets_changed};
use crate::hooks::{use_subscription, use_user};
use crate::state::{ListAction, Ticket, TicketList, TicketStatus};
use crate::ws;

/// A page of tickets and the cursor after it (when more exist).
pub(super) type Page = (Vec<Ticket>, Option<String>);

async fn fetch(status: Option<TicketStatus>, after: Option<String>) -> Result<Page, ApiError> {
    let data = api::request::<TicketsQuery>(tickets::Variables { first: PAGE_SIZE, after, status }).await?;
    let page = data.tickets;
    let next = if page.page_info.has_next_page { page.page_info.end_cursor } else { None };
    Ok((page.nodes.into_iter().map(Into::into).collect(), next))
}

/// Every ticket, newest first; statuses change live and new listings appear on top.
#[function_component(Tickets)]
pub fn tickets() -> Html {
    let filter = use_state(|| None::<TicketStatus>);
    let list = use_reducer(|| TicketList::new(None, None));
    let error = use_state(|| None::<ApiError>);
    let user = use_user();

    let load = {
        let (list, error) = (list.dispatcher(), error.setter());
        move |status: Option<TicketStatus>, refresh: bool| {
            let (list, error) = (list.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match fetch(status, None).await {
                    Ok((items, next)) if refresh => list.dispatch(ListAction::Refresh(items, next)),
                    Ok((items, next)) => list.dispatch(ListAction::First(items, next)),
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    {
        let load = load.clone();
        let list = list.dispatcher();
        use_effect_with(*filter, move |status| {
            list.dispatch(ListAction::Reset(*status));
            load(*status, false);
        });
    }
    {
        let list_dispatch = list.dispatcher();
        // The subscription outlives filter changes; it reads the filter of the moment.
        let current = use_mut_ref(|| None::<TicketStatus>);
        *current.borrow_mut() = *filter;
        use_subscription::<TicketsChanged>(
            tickets_changed::Variables,
            Callback::from(move |event| match event {
                ws::Event::Connected => load(*current.borrow(), true),
                ws::Event::Data(data) => {
                    let data: tickets_changed::ResponseData = data;
                    list_dispatch.dispatch(ListAction::Changed(data.ticket_changed.into()));
                }
                ws::Event::Refused(_) => {}
            }),
        );
    }

    let more = {
        let (list, error) = (list.clone(), error.setter());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, error, status, after) = (list.dispatcher(), error.clone(), list.filter, list.next.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match fetch(status, after).await {
                    Ok((items, next)) => dispatch.dispatch(ListAction::More(items, next)),
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let on_filter = {
        let filter = filter.clone();
        Callback::from(move |e: Event| {
            let select: web_sys::HtmlSelectElement = e.target_unchecked_into();
            filter.set(match select.value().as_str() {
                "AVAILABLE" => Some(TicketStatus::Available),
                "RESERVED" => Some(TicketStatus::Reserved),
                "SOLD" => Some(TicketStatus::Sold),
                _ => None,
            });
        })
    };

    html! {
        <>
            <section class="hero">
                <div>
                    <h1>{ "Tickets, live" }</h1>
                    <p class="hero__lead">{ "Hold a ticket for a few minutes, pay, and it is yours. Every change shows up here as it happens." }</p>
                </div>
                if user.is_some() {
                    <Link<Route> to={Route::Sell} classes="button button--large">{ "Sell a ticket" }</Link<Route>>
                } else {
                    <Link<Route> to={Route::SignUp} classes="button button--large">{ "Start selling" }</Link<Route>>
                }
            </section>
            <div class="toolbar">
                <label for="status-filter">{ "Show" }</label>
                <select id="status-filter" onchange={on_filter}>
                    <option value="" selected={filter.is_none()}>{ "All tickets" }</option>
                    <option value="AVAILABLE" selected={*filter == Some(TicketStatus::Available)}>{ "Available" }</option>
                    <option value="RESERVED" selected={*filter == Some(TicketStatus::Reserved)}>{ "On hold" }</option>
                    <option value="SOLD" selected={*filter == Some(TicketStatus::Sold)}>{ "Sold" }</option>
                </select>
                <span class="live-dot" aria-hidden="true"></span><span class="muted">{ "Live" }</span>
            </div>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            if !list.loaded {
                <p class="muted" role="status">{ "Loading tickets…" }</p>
            } else if list.items.is_empty() {
                <p class="empty" role="status">{ "No tickets here yet." }</p>
            } else {
                <ul class="grid" aria-live="polite" aria-label="Tickets">
                    { for list.items.iter().map(|t| html! { <TicketCard key={t.id.clone()} ticket={t.clone()} /> }) }
                </ul>
            }
            if list.next.is_some() {
                <p class="actions actions--center">
                    <button class="button button--quiet" onclick={more}>{ "Show more" }</button>
                </p>
            }
        </>
    }
}
