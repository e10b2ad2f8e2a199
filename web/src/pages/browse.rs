use yew::prelude::*;
use yew_router::prelude::*;

use super::{Latest, PAGE_SIZE, TicketCard, use_search};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, SearchBox};
use crate::graphql::{Tickets as TicketsQuery, TicketsChanged, tickets, tickets_changed};
use crate::hooks::{use_subscription, use_user};
use crate::preload::use_preloaded;
use crate::state::{ListAction, Ticket, TicketList, TicketStatus};
use crate::ws;

/// A page of tickets and the cursor after it (when more exist).
pub(super) type Page = (Vec<Ticket>, Option<String>);

fn variables(status: Option<TicketStatus>, search: Option<String>, after: Option<String>) -> tickets::Variables {
    tickets::Variables { first: PAGE_SIZE, after, status, search }
}

fn page_of(data: tickets::ResponseData) -> Page {
    let page = data.tickets;
    let next = if page.page_info.has_next_page { page.page_info.end_cursor } else { None };
    (page.nodes.into_iter().map(Into::into).collect(), next)
}

async fn fetch(variables: tickets::Variables, abort: Option<web_sys::AbortSignal>) -> Result<Page, ApiError> {
    api::request_until::<TicketsQuery>(variables, abort.as_ref()).await.map(page_of)
}

/// Every ticket, newest first (or those a search finds, best match first); statuses change live
/// and new listings appear on top.
#[function_component(Tickets)]
pub fn tickets() -> Html {
    let (search, set_search) = use_search(Route::Tickets);
    let filter = use_state(|| None::<TicketStatus>);
    let preloaded = use_preloaded();
    // The page came with its first page of tickets: no load on mount, and no flash of "Loading".
    let had_answer = use_mut_ref(|| false);
    let list = use_reducer(|| {
        let list = TicketList::new(None, None).searching(search.is_some());
        match preloaded.take::<TicketsQuery>(&variables(None, search.clone(), None)) {
            Some(data) => {
                *had_answer.borrow_mut() = true;
                let (items, next) = page_of(data);
                std::rc::Rc::new(list).reduce(ListAction::First(items, next)).as_ref().clone()
            }
            None => list,
        }
    });
    let error = use_state(|| None::<ApiError>);
    let user = use_user();
    let latest = use_mut_ref(Latest::default);

    let load = {
        let (list, error, latest) = (list.dispatcher(), error.setter(), latest.clone());
        move |status: Option<TicketStatus>, search: Option<String>, refresh: bool| {
            let (list, error, latest) = (list.clone(), error.clone(), latest.clone());
            let (generation, abort) = latest.borrow_mut().start();
            wasm_bindgen_futures::spawn_local(async move {
                let result = fetch(variables(status, search, None), abort).await;
                if !latest.borrow().is_latest(generation) {
                    return;
                }
                match result {
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
        use_effect_with((*filter, search.clone()), move |(status, search)| {
            if !std::mem::take(&mut *had_answer.borrow_mut()) {
                list.dispatch(ListAction::Reset(*status, search.is_some()));
                load(*status, search.clone(), false);
            }
        });
    }
    // The subscription outlives filter and search changes; it reads those of the moment.
    let current = use_mut_ref(|| (None::<TicketStatus>, None::<String>));
    *current.borrow_mut() = (*filter, search.clone());
    {
        let list_dispatch = list.dispatcher();
        let current = current.clone();
        use_subscription::<TicketsChanged>(
            tickets_changed::Variables,
            Callback::from(move |event| match event {
                ws::Event::Connected => {
                    let (status, search) = current.borrow().clone();
                    load(status, search, true);
                }
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
            let search = current.borrow().1.clone();
            // A further page of this list: dropped if another filter or search has started since.
            let (latest, generation) = (latest.clone(), latest.borrow().current());
            wasm_bindgen_futures::spawn_local(async move {
                let result = fetch(variables(status, search, after), None).await;
                if !latest.borrow().is_latest(generation) {
                    return;
                }
                match result {
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
                <SearchBox id="ticket-search" label="Search tickets" value={search.clone().unwrap_or_default()} onsearch={set_search} />
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
            } else if list.items.is_empty() && search.is_some() {
                <p class="empty" role="status">{ "No tickets match your search." }</p>
            } else if list.items.is_empty() {
                <p class="empty" role="status">{ "No tickets here yet." }</p>
            } else {
                <ul class="grid" aria-live="polite" aria-label="Tickets" data-testid="tickets">
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
