//! Events: the list of upcoming ones, and an event's page with its ticket types, its seat map,
//! the buyer's choice and total, and (for its organiser) the sales as they happen.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use yew::prelude::*;
use yew_router::prelude::*;

use super::{Latest, Next, PAGE_SIZE, random_key, use_search};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, SearchBox};
use crate::format;
use crate::graphql::{
    CreateEventOrder, EventChanged, EventDetail, Events as EventsQuery, create_event_order, event_changed,
    event_detail, events,
};
use crate::hooks::{use_live, use_user};
use crate::preload::use_preloaded;

use crate::state::{
    Basket, BasketAction, Event, EventSummary, Live, MAX_TICKETS_PER_ORDER, SeatStatus, SeatView, SectionView,
};

/// Properties of [`EventCard`].
#[derive(Properties, PartialEq)]
pub struct EventCardProps {
    /// The event shown.
    pub event: EventSummary,
}

/// An event in a grid: title, date, venue, lowest price and what is left; the card is the link.
#[function_component(EventCard)]
pub fn event_card(props: &EventCardProps) -> Html {
    let event = &props.event;
    let left = if event.available == 0 { "Sold out".to_owned() } else { format!("{} left", event.available) };
    html! {
        <li class="card" data-event={event.id.clone()}>
            <Link<Route> to={Route::Event { id: event.id.clone() }} classes="card__link">
                <span class="card__title">{ event.title.clone() }</span>
            </Link<Route>>
            <span class="muted">{ format!("{} · {}", format::date(&event.starts_at), event.venue) }</span>
            if let Some(cents) = event.from_cents {
                <span class="card__price">{ format!("from {}", format::money(cents, "USD")) }</span>
            }
            <span class={classes!("badge", if event.available == 0 { "badge--sold" } else { "badge--available" })}>{ left }</span>
        </li>
    }
}

fn events_page_of(data: events::ResponseData) -> (Vec<EventSummary>, Option<String>) {
    let page = data.events;
    let next = if page.page_info.has_next_page { page.page_info.end_cursor } else { None };
    (page.nodes.into_iter().map(EventSummary::from).collect(), next)
}

/// Upcoming events, soonest first (or those a search finds, best match first).
#[function_component(Events)]
pub fn events_page() -> Html {
    let (search, set_search) = use_search(Route::Events);
    let preloaded = use_preloaded();
    // The page came with its first page of events: shown at once, not loaded again on mount.
    let first = use_memo((), |_| {
        let variables = events::Variables { first: PAGE_SIZE, after: None, search: search.clone() };
        preloaded.take::<EventsQuery>(&variables).map(events_page_of)
    });
    let had_answer = use_mut_ref(|| first.is_some());
    let items = use_state(|| first.as_ref().as_ref().map(|(page, _)| page.clone()).unwrap_or_default());
    let next = use_state(|| first.as_ref().as_ref().and_then(|(_, next)| next.clone()));
    let loaded = use_state(|| first.is_some());
    let error = use_state(|| None::<ApiError>);
    let user = use_user();
    let latest = use_mut_ref(Latest::default);
    let searched = use_mut_ref(|| search.clone());
    *searched.borrow_mut() = search.clone();
    let fetch = {
        let (items, next, loaded, error) = (items.clone(), next.clone(), loaded.setter(), error.setter());
        Callback::from(move |after: Option<String>| {
            let (items, next, loaded, error, latest) =
                (items.clone(), next.clone(), loaded.clone(), error.clone(), latest.clone());
            let more = after.is_some();
            // A first page aborts the one before; a further page aborts nothing, and its answer
            // is dropped if a new first page (another search) has started since.
            let (generation, abort) =
                if more { (latest.borrow().current(), None) } else { latest.borrow_mut().start() };
            let variables = events::Variables { first: PAGE_SIZE, after, search: searched.borrow().clone() };
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::request_until::<EventsQuery>(variables, abort.as_ref()).await;
                if !latest.borrow().is_latest(generation) {
                    return;
                }
                match result {
                    Ok(data) => {
                        let (page, cursor) = events_page_of(data);
                        let mut list = if more { (*items).clone() } else { Vec::new() };
                        for event in page {
                            if !list.iter().any(|e| e.id == event.id) {
                                list.push(event);
                            }
                        }
                        items.set(list);
                        next.set(cursor);
                        loaded.set(true);
                    }
                    Err(e) => {
                        error.set(Some(e));
                        loaded.set(true);
                    }
                }
            });
        })
    };
    {
        let fetch = fetch.clone();
        use_effect_with(search.clone(), move |_| {
            if !std::mem::take(&mut *had_answer.borrow_mut()) {
                fetch.emit(None);
            }
        });
    }
    let more = {
        let (fetch, next) = (fetch.clone(), next.clone());
        Callback::from(move |_: MouseEvent| fetch.emit((*next).clone()))
    };
    html! {
        <>
            <section class="hero">
                <div>
                    <h1>{ "Events" }</h1>
                    <p class="hero__lead">{ "Concerts, plays and festivals: pick tickets or seats, hold them for a few minutes, pay." }</p>
                </div>
                if user.is_some() {
                    <Link<Route> to={Route::NewEvent} classes="button button--large">{ "Put an event on sale" }</Link<Route>>
                }
            </section>
            <div class="toolbar">
                <SearchBox id="event-search" label="Search events" value={search.clone().unwrap_or_default()} onsearch={set_search} />
            </div>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            if !*loaded {
                <p class="muted" role="status">{ "Loading events…" }</p>
            } else if items.is_empty() && search.is_some() {
                <p class="empty" role="status">{ "No events match your search." }</p>
            } else if items.is_empty() {
                <p class="empty" role="status">{ "No upcoming events yet." }</p>
            } else {
                <ul class="grid" aria-label="Events" data-testid="events">
                    { for items.iter().map(|e| html! { <EventCard key={e.id.clone()} event={e.clone()} /> }) }
                </ul>
            }
            if next.is_some() {
                <p class="actions actions--center">
                    <button class="button button--quiet" onclick={more}>{ "Show more" }</button>
                </p>
            }
        </>
    }
}

/// The most seats a page's seat map has when it is rendered on the server (and so in the
/// browser's first render, which must be the same): a bigger one would make the page large and its
/// render slow (200,000 seats are about 60 MB of markup), so it is drawn right after the page is
/// live instead.
pub const SERVER_SEATS: usize = 2_000;

/// Properties of [`EventPage`].
#[derive(Properties, PartialEq)]
pub struct EventPageProps {
    /// The event's id.
    pub id: String,
}

/// Codes that say for certain that this request held nothing: the next attempt is another request
/// (a new idempotency key). After any other failure (the network, the server) the hold may have
/// been written, so a retry keeps the key and the choice, and the same request cannot hold twice.
const DEFINITE_REFUSALS: [&str; 6] =
    ["CONFLICT", "BAD_USER_INPUT", "FORBIDDEN", "NOT_FOUND", "UNAUTHENTICATED", "RATE_LIMITED"];

/// Codes that answer the key itself (decided after the server looked the key up): only these
/// settle an earlier attempt whose outcome was unknown. A sign-in or rate refusal of a retry says
/// nothing about the first attempt.
const ANSWERS_THE_KEY: [&str; 2] = ["CONFLICT", "BAD_USER_INPUT"];

/// Why the last hold did not go through.
#[derive(Debug, Clone, PartialEq)]
enum HoldFailure {
    /// `CONFLICT` naming what was taken (seat and ticket type ids), worded with the event as it
    /// is now.
    Taken(Vec<String>),
    /// Another refusal, or a failure after which nobody knows whether the hold was written.
    Other { message: String, uncertain: bool },
}

/// One event, live: choose tickets and seats and hold them; its organiser watches it sell.
#[function_component(EventPage)]
pub fn event_page(props: &EventPageProps) -> Html {
    let basket = use_reducer(Basket::default);
    let failure = use_state(|| None::<HoldFailure>);
    // A failed load of the event is not a failed hold: it must not settle an unknown outcome.
    let load_error = use_state(|| None::<String>);
    let notice = use_state(|| None::<String>);
    let busy = use_state(|| false);
    // (basket generation, key): each choice is held under a key of its own.
    let key = use_mut_ref(|| (u64::MAX, String::new()));
    let user = use_user();
    let navigator = use_navigator();
    let live = use_live::<EventDetail, EventChanged, Event>(
        event_detail::Variables { id: props.id.clone() },
        event_changed::Variables { id: props.id.clone() },
        |data| data.event.map(Into::into),
        |data| data.event_changed.into(),
        Callback::from({
            let load_error = load_error.setter();
            move |e: ApiError| load_error.set(Some(e.user_message()))
        }),
    );
    // False in a server render and in the browser's first render (which must match it), true
    // once the page is live.
    let mounted = use_state(|| false);
    let server_now = use_preloaded().rendered_at();
    {
        let mounted = mounted.setter();
        use_effect_with((), move |_| mounted.set(true));
    }
    let toggle_seat = {
        let basket = basket.dispatcher();
        use_callback((), move |id: String, _| basket.dispatch(BasketAction::Seat(id)))
    };
    let current = match &*live {
        Live::Ready(event) => Some(event.clone()),
        _ => None,
    };
    // Seats someone else took while they were chosen leave the choice, and the page says so; not
    // while a hold is under way or its outcome is unknown (they may be this buyer's own).
    {
        let (basket, notice) = (basket.clone(), notice.setter());
        let uncertain = matches!(&*failure, Some(HoldFailure::Other { uncertain: true, .. }));
        let settled = !*busy && !uncertain;
        let event = current.clone();
        use_effect_with((current.as_ref().map(|e| e.version), settled), move |_| {
            if let Some(event) = event.filter(|_| settled) {
                let taken = basket.taken(&event);
                if !taken.is_empty() {
                    notice.set(Some(format!("Just taken by someone else: seat {}.", taken.join(", seat "))));
                    basket.dispatch(BasketAction::Drop(taken));
                }
            }
        });
    }

    let Some(event) = current else {
        return match &*live {
            Live::Missing => html! {
                <section class="panel panel--center">
                    <h1>{ "No such event" }</h1>
                    <p><Link<Route> to={Route::Events}>{ "Browse events" }</Link<Route>></p>
                </section>
            },
            // A failed first load says why; a failed refetch of a page already shown changes
            // nothing (the pushes go on).
            _ => match &*load_error {
                Some(message) => html! { <Alert message={message.clone()} /> },
                None => html! { <p class="muted" role="status">{ "Loading the event…" }</p> },
            },
        };
    };
    // While the outcome of a hold is unknown the choice stays as it was sent: holding again is the
    // same request (same key), so it cannot hold twice; "Change my choice" ends that.
    let uncertain = matches!(&*failure, Some(HoldFailure::Other { uncertain: true, .. }));
    let frozen = *busy || uncertain;
    let can_choose = event.viewer_can_order && !frozen;
    // Until the page is live, the time is the server's when it rendered the page: the browser's
    // first render must draw what the server drew, whatever its own clock says.
    let now = if *mounted { format::now_millis() } else { server_now.unwrap_or_else(format::now_millis) };
    let started = format::epoch_millis(&event.starts_at).is_some_and(|at| at <= now);
    let seats: usize = event.sections.iter().map(|s| s.seats.len()).sum();
    let draw_seats = *mounted || seats <= SERVER_SEATS;

    let hold = {
        let (basket, failure, busy, key, navigator) =
            (basket.clone(), failure.clone(), busy.clone(), key.clone(), navigator.clone());
        let event_id = event.id.clone();
        Callback::from(move |_: MouseEvent| {
            let items: Vec<create_event_order::OrderItemInput> = basket
                .quantities
                .iter()
                .map(|(id, q)| create_event_order::OrderItemInput {
                    ticket_type_id: id.clone(),
                    quantity: i64::from(*q),
                })
                .collect();
            let idempotency_key = {
                let mut key = key.borrow_mut();
                if key.0 != basket.generation {
                    *key = (basket.generation, random_key());
                }
                key.1.clone()
            };
            let variables = create_event_order::Variables {
                event_id: event_id.clone(),
                items: (!items.is_empty()).then_some(items),
                seats: (!basket.seats.is_empty()).then(|| basket.seats.clone()),
                idempotency_key: Some(idempotency_key),
            };
            let was_uncertain = matches!(&*failure, Some(HoldFailure::Other { uncertain: true, .. }));
            let (failure, busy, key, navigator) = (failure.clone(), busy.clone(), key.clone(), navigator.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<CreateEventOrder>(variables).await {
                    Ok(data) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Order { id: data.create_event_order.id });
                        }
                    }
                    Err(e) => {
                        let code = e.code.as_str();
                        let settled =
                            ANSWERS_THE_KEY.contains(&code) || (!was_uncertain && DEFINITE_REFUSALS.contains(&code));
                        if settled {
                            key.borrow_mut().0 = u64::MAX;
                        }
                        failure.set(Some(match code {
                            "CONFLICT" if !e.unavailable.is_empty() => HoldFailure::Taken(e.unavailable),
                            _ if settled => HoldFailure::Other { message: e.user_message(), uncertain: false },
                            _ if was_uncertain && DEFINITE_REFUSALS.contains(&code) => HoldFailure::Other {
                                message: format!(
                                    "{} Your earlier attempt may have held these tickets: hold again once you can, or see My orders.",
                                    e.user_message()
                                ),
                                uncertain: true,
                            },
                            _ => HoldFailure::Other {
                                message: format!(
                                    "{} Holding again is safe: the same choice cannot be held twice.",
                                    e.user_message()
                                ),
                                uncertain: true,
                            },
                        }));
                        busy.set(false);
                    }
                }
            });
        })
    };

    let change_choice = {
        let (failure, key) = (failure.setter(), key.clone());
        Callback::from(move |_: MouseEvent| {
            key.borrow_mut().0 = u64::MAX;
            failure.set(None);
        })
    };
    let count = basket.count();
    let total = basket.total_cents(&event);
    let action = if event.viewer_can_order {
        html! {
            <button class="button button--large" onclick={hold} disabled={*busy || count == 0} data-testid="hold">
                { if *busy { "Holding…".to_owned() } else if count == 0 { "Choose tickets or seats".to_owned() } else {
                    format!("Hold {count} {} for {}", if count == 1 { "ticket" } else { "tickets" }, format::money(total, "USD"))
                } }
            </button>
        }
    } else if event.viewer_can_edit {
        html! { <p class="muted">{ "You organise this event: its sales are below, live." }</p> }
    } else if user.is_none() && !started {
        let next = Next { next: Some(format!("/events/{}", event.id)) };
        html! {
            <Link<Route, Next> to={Route::SignIn} query={Some(next)} classes="button button--large">{ "Sign in to buy" }</Link<Route, Next>>
        }
    } else {
        html! { <p class="muted">{ "Tickets to this event are no longer sold." }</p> }
    };
    let failure_message = match &*failure {
        Some(HoldFailure::Taken(ids)) => Some(format!(
            "Not available any more: {}. Nothing was held; change your choice and try again.",
            event.describe_unavailable(ids).join(", ")
        )),
        Some(HoldFailure::Other { message, .. }) => Some(message.clone()),
        None => None,
    };

    html! {
        <article class="detail detail--wide">
            <p class="breadcrumb"><Link<Route> to={Route::Events}>{ "← All events" }</Link<Route>></p>
            <div class="detail__head">
                <h1 data-testid="event-title">{ event.title.clone() }</h1>
                <span class="badge badge--available" aria-live="polite" data-testid="event-available">
                    { if event.available == 0 { "Sold out".to_owned() } else { format!("{} left", event.available) } }
                </span>
            </div>
            <p class="muted">{ format!("{} · {}", format::date(&event.starts_at), event.venue) }</p>
            if !event.ticket_types.is_empty() {
                <section class="tiers" aria-labelledby="tiers-title">
                    <h2 id="tiers-title">{ "Tickets" }</h2>
                    <ul class="rows">
                        { for event.ticket_types.iter().enumerate().map(|(i, t)| {
                            let id = t.id.clone();
                            let dispatch = basket.dispatcher();
                            let oninput = Callback::from(move |e: InputEvent| {
                                let input: web_sys::HtmlInputElement = e.target_unchecked_into();
                                let quantity = input.value().trim().parse::<u32>().unwrap_or(0);
                                dispatch.dispatch(BasketAction::Quantity(id.clone(), quantity));
                            });
                            let input_id = format!("qty-{i}");
                            html! {
                                <li class="row" data-ticket-type={t.id.clone()}>
                                    <div class="row__main">
                                        <label class="row__title" for={input_id.clone()}>{ t.name.clone() }</label>
                                        <span class="muted" data-testid="tier-left">
                                            { if t.available == 0 { "Sold out".to_owned() } else { format!("{} left", t.available) } }
                                        </span>
                                    </div>
                                    <span class="row__price">{ format::money(t.price_cents, &t.currency) }</span>
                                    if event.viewer_can_order {
                                        <input class="quantity" id={input_id} type="number" min="0" max="10" inputmode="numeric"
                                            disabled={frozen} value={basket.quantity(&t.id).to_string()} {oninput} />
                                    }
                                </li>
                            }
                        }) }
                    </ul>
                </section>
            }
            if draw_seats {
                { for event.sections.iter().map(|section| html! {
                    <SeatMap key={section.name.clone()} section={section.clone()} chosen={basket.seats.clone()}
                        enabled={can_choose} ontoggle={toggle_seat.clone()} />
                }) }
            } else {
                <p class="muted" role="status" data-testid="seats-pending">
                    { format!("Drawing the seat map ({seats} seats)…") }
                </p>
            }
            if event.viewer_can_order || count > 0 {
                <section class="summary" aria-labelledby="summary-title" data-testid="summary">
                    <h2 id="summary-title">{ "Your choice" }</h2>
                    if count == 0 {
                        <p class="muted">{ "Nothing chosen yet." }</p>
                    } else {
                        <ul class="summary__lines">
                            { for basket.quantities.iter().filter_map(|(id, q)| event.ticket_types.iter().find(|t| &t.id == id).map(|t| html! {
                                <li>{ format!("{q} × {}", t.name) }<span>{ format::money(t.price_cents * i64::from(*q), "USD") }</span></li>
                            })) }
                            { for basket.seats.iter().filter_map(|id| event.seat(id).map(|(_, price)| html! {
                                <li>{ format!("Seat {id}") }<span>{ format::money(price, "USD") }</span></li>
                            })) }
                        </ul>
                        <p class="summary__total">{ "Total " }<strong data-testid="total">{ format::money(total, "USD") }</strong></p>
                    }
                </section>
            }
            if basket.full {
                <Alert message={format!("An order holds at most {MAX_TICKETS_PER_ORDER} tickets.")} kind="info" />
            } else if let Some(message) = &*notice {
                <Alert message={message.clone()} kind="info" />
            }
            if let Some(message) = failure_message {
                <Alert {message} />
            }
            if uncertain && !*busy {
                <p class="actions">
                    <button class="button button--quiet" onclick={change_choice} data-testid="change-choice">{ "Change my choice" }</button>
                    <Link<Route> to={Route::MyOrders}>{ "See my orders" }</Link<Route>>
                </p>
            }
            <div class="detail__action">{ action }</div>
            if event.viewer_can_edit {
                <Sales event={event.clone()} />
            }
        </article>
    }
}

#[derive(Properties, PartialEq)]
struct SeatMapProps {
    section: Rc<SectionView>,
    chosen: Vec<String>,
    enabled: bool,
    ontoggle: Callback<String>,
}

/// The element id of a seat's shape (section names may hold spaces).
fn seat_element_id(seat: &str) -> String {
    format!("seat-{}", seat.replace(' ', "_"))
}

const SEAT: i32 = 18;
const GAP: i32 = 4;
const LABEL: i32 = 28;

/// A section's seats drawn row by row. One seat is in the tab order at a time; the arrow keys
/// move between seats (Home and End to a row's ends) and Enter or Space picks one, as in a grid.
#[function_component(SeatMap)]
fn seat_map(props: &SeatMapProps) -> Html {
    let section = &props.section;
    let focused = use_state(|| None::<String>);
    let pitch = SEAT + GAP;
    let width = LABEL + section.seats_per_row * pitch;
    let height = section.rows * pitch + pitch;
    let tabbable = (*focused)
        .clone()
        .filter(|id| section.seats.iter().any(|s| &s.id == id))
        .or_else(|| section.seats.iter().find(|s| s.status == SeatStatus::Available).map(|s| s.id.clone()))
        .or_else(|| section.seats.first().map(|s| s.id.clone()));
    // One handler for the whole map: the seat is found by its position, not by a search.
    let onkeydown = {
        let (section, focused, ontoggle, enabled, chosen) =
            (section.clone(), focused.clone(), props.ontoggle.clone(), props.enabled, props.chosen.clone());
        Callback::from(move |e: KeyboardEvent| {
            let Some(seat) = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|el| el.get_attribute("data-seat"))
                .and_then(|id| section.seats.iter().find(|s| s.id == id))
            else {
                return;
            };
            let (row, number) = (seat.row, seat.number);
            let target = match e.key().as_str() {
                "Enter" | " " => {
                    e.prevent_default();
                    if enabled && (seat.status == SeatStatus::Available || chosen.contains(&seat.id)) {
                        ontoggle.emit(seat.id.clone());
                    }
                    return;
                }
                "ArrowLeft" => section.at(row, number - 1),
                "ArrowRight" => section.at(row, number + 1),
                "ArrowUp" => section.at(row - 1, number),
                "ArrowDown" => section.at(row + 1, number),
                "Home" => section.at(row, 1),
                "End" => section.at(row, section.seats_per_row),
                _ => return,
            };
            e.prevent_default();
            if let Some(target) = target {
                focused.set(Some(target.id.clone()));
                focus(&seat_element_id(&target.id));
            }
        })
    };
    let onclick = {
        let (section, ontoggle, enabled, chosen) =
            (section.clone(), props.ontoggle.clone(), props.enabled, props.chosen.clone());
        Callback::from(move |e: MouseEvent| {
            let id = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|el| el.get_attribute("data-seat"));
            if let Some(seat) = id.and_then(|id| section.seats.iter().find(|s| s.id == id))
                && enabled
                && (seat.status == SeatStatus::Available || chosen.contains(&seat.id))
            {
                ontoggle.emit(seat.id.clone());
            }
        })
    };
    let onfocusin = {
        let focused = focused.clone();
        Callback::from(move |e: FocusEvent| {
            let id = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|el| el.get_attribute("data-seat"));
            if id.is_some() {
                focused.set(id);
            }
        })
    };
    let seat_shape = |seat: &SeatView| {
        let chosen = props.chosen.contains(&seat.id);
        let (class, words) = match seat.status {
            _ if chosen => ("seat seat--chosen", "chosen"),
            SeatStatus::Available => ("seat seat--available", "available"),
            SeatStatus::Reserved => ("seat seat--held", "held"),
            SeatStatus::Sold => ("seat seat--sold", "sold"),
        };
        let label = format!(
            "Seat {}, row {} seat {}, {}, {words}",
            seat.id,
            seat.row,
            seat.number,
            format::money(section.price_cents, "USD")
        );
        let selectable = props.enabled && (seat.status == SeatStatus::Available || chosen);
        let x = LABEL + (seat.number - 1) * pitch;
        let y = pitch + (seat.row - 1) * pitch;
        html! {
            <rect key={seat.id.clone()} id={seat_element_id(&seat.id)} class={class} data-seat={seat.id.clone()}
                x={x.to_string()} y={y.to_string()} width={SEAT.to_string()} height={SEAT.to_string()} rx="4"
                role="checkbox" aria-checked={if chosen { "true" } else { "false" }}
                aria-disabled={(!selectable).then_some("true")} aria-label={label}
                tabindex={if tabbable.as_deref() == Some(seat.id.as_str()) { "0" } else { "-1" }}>
                <title>{ format!("{} · {words}", seat.id) }</title>
            </rect>
        }
    };
    let title_id = format!("section-{}", section.name.replace(' ', "_"));
    html! {
        <section class="seatmap" aria-labelledby={title_id.clone()} data-section={section.name.clone()}>
            <h2 id={title_id.clone()}>
                { format!("Section {}", section.name) }
                <span class="muted">{ format!(" · {} each · {} of {} available", format::money(section.price_cents, "USD"), section.available, section.seats.len()) }</span>
            </h2>
            <p class="seatmap__legend muted" aria-hidden="true">
                <span class="key key--available"></span>{ "Available " }
                <span class="key key--chosen"></span>{ "Chosen " }
                <span class="key key--held"></span>{ "Held " }
                <span class="key key--sold"></span>{ "Sold" }
            </p>
            <div class="seatmap__scroll">
                <svg class="seatmap__svg" viewBox={format!("0 0 {width} {height}")} width={width.to_string()} height={height.to_string()}
                    role="group" aria-labelledby={title_id} {onkeydown} {onclick} {onfocusin}>
                    <rect class="stage" x={LABEL.to_string()} y="0" width={(width - LABEL - GAP).to_string()} height={(SEAT / 2).to_string()} rx="3" />
                    { for (1..=section.rows).map(|row| html! {
                        <text class="seatmap__row" x="4" y={(pitch + (row - 1) * pitch + SEAT - 4).to_string()} aria-hidden="true">{ row }</text>
                    }) }
                    { for section.seats.iter().map(seat_shape) }
                </svg>
            </div>
        </section>
    }
}

/// Moves the keyboard focus to the element with `id`.
fn focus(id: &str) {
    let element = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id));
    if let Some(element) = element.and_then(|e| e.dyn_into::<web_sys::SvgElement>().ok()) {
        let _focused = element.focus();
    }
}

#[derive(Properties, PartialEq)]
struct SalesProps {
    event: Event,
}

/// The organiser's view: sold, held and available per ticket type and section, live.
#[function_component(Sales)]
fn sales(props: &SalesProps) -> Html {
    let event = &props.event;
    let rows = event
        .ticket_types
        .iter()
        .map(|t| (t.name.clone(), t.sold, t.held, t.available, t.capacity))
        .chain(event.sections.iter().map(|s| {
            let count = |status| s.count(status) as i32;
            (
                format!("Section {}", s.name),
                count(SeatStatus::Sold),
                count(SeatStatus::Reserved),
                count(SeatStatus::Available),
                s.seats.len() as i32,
            )
        }))
        .collect::<Vec<_>>();
    let total = |pick: fn(&(String, i32, i32, i32, i32)) -> i32| rows.iter().map(pick).sum::<i32>();
    html! {
        <section class="sales" aria-labelledby="sales-title">
            <h2 id="sales-title">{ "Sales, live" }</h2>
            <table class="table" data-testid="sales">
                <thead><tr><th scope="col">{ "" }</th><th scope="col">{ "Sold" }</th><th scope="col">{ "Held" }</th><th scope="col">{ "Available" }</th><th scope="col">{ "Capacity" }</th></tr></thead>
                <tbody>
                    { for rows.iter().map(|(name, sold, held, available, capacity)| html! {
                        <tr><th scope="row">{ name.clone() }</th><td>{ sold }</td><td>{ held }</td><td>{ available }</td><td>{ capacity }</td></tr>
                    }) }
                </tbody>
                <tfoot>
                    <tr><th scope="row">{ "All" }</th><td data-testid="sold">{ total(|r| r.1) }</td><td data-testid="held">{ total(|r| r.2) }</td>
                        <td>{ total(|r| r.3) }</td><td>{ total(|r| r.4) }</td></tr>
                </tfoot>
            </table>
        </section>
    }
}
