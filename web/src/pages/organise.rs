//! The organiser's pages: put an event on sale (ticket tiers and a generated seat map) and the
//! list of one's events.

use yew::prelude::*;
use yew_router::prelude::*;

use super::events::EventCard;
use super::{PAGE_SIZE, SignInFirst};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, Field};
use crate::format;
use crate::graphql::{CreateEvent, MyEvents as MyEventsQuery, create_event, my_events};
use crate::hooks::use_session;
use crate::state::EventSummary;

/// A ticket tier as typed: name, price in dollars, capacity.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tier {
    name: String,
    price: String,
    capacity: String,
}

/// A section as typed: name, price in dollars, rows, seats per row.
#[derive(Debug, Clone, Default, PartialEq)]
struct Block {
    name: String,
    price: String,
    rows: String,
    seats: String,
}

/// The letters that name generated sections: A, B, …, Z, AA, AB, …
fn section_name(index: usize) -> String {
    let letter = |i: usize| char::from(b'A' + (i % 26) as u8);
    if index < 26 { letter(index).to_string() } else { format!("{}{}", letter(index / 26 - 1), letter(index)) }
}

/// One week from now at 19:30 local time, in the form a `datetime-local` input takes.
fn default_start() -> String {
    let now = js_sys::Date::new_0();
    let week = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(now.get_time() + 7.0 * 86_400_000.0));
    format!("{:04}-{:02}-{:02}T19:30", week.get_full_year(), week.get_month() + 1, week.get_date())
}

/// A `datetime-local` value (the browser's time zone) as RFC 3339 in UTC.
fn to_rfc3339(local: &str) -> Option<String> {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(local));
    (!date.get_time().is_nan()).then(|| String::from(date.to_iso_string()))
}

fn parse_count(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

fn local_error(field: &str, message: &str) -> ApiError {
    ApiError { code: "BAD_USER_INPUT".into(), message: message.into(), field: Some(field.into()), unavailable: vec![] }
}

/// The form's tiers and sections as the API's input, or the first field that cannot be read.
fn input_of(
    title: &str,
    venue: &str,
    starts: &str,
    tiers: &[Tier],
    blocks: &[Block],
) -> Result<create_event::CreateEventInput, ApiError> {
    let starts_at = to_rfc3339(starts).ok_or_else(|| local_error("startsAt", "choose a date and time"))?;
    let mut ticket_types = Vec::new();
    for (i, tier) in tiers.iter().enumerate() {
        let price_cents = format::parse_price(&tier.price)
            .ok_or_else(|| local_error(&format!("ticketTypes.{i}.priceCents"), "enter a price like 25 or 25.50"))?;
        let capacity = parse_count(&tier.capacity)
            .ok_or_else(|| local_error(&format!("ticketTypes.{i}.capacity"), "enter how many tickets"))?;
        ticket_types.push(create_event::TicketTypeInput { name: tier.name.clone(), price_cents, capacity });
    }
    let mut sections = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let price_cents = format::parse_price(&block.price)
            .ok_or_else(|| local_error(&format!("sections.{i}.priceCents"), "enter a price like 25 or 25.50"))?;
        let rows = parse_count(&block.rows)
            .ok_or_else(|| local_error(&format!("sections.{i}.rows"), "enter how many rows"))?;
        let seats_per_row = parse_count(&block.seats)
            .ok_or_else(|| local_error(&format!("sections.{i}.seatsPerRow"), "enter how many seats per row"))?;
        sections.push(create_event::SectionInput { name: block.name.clone(), price_cents, rows, seats_per_row });
    }
    Ok(create_event::CreateEventInput {
        title: title.to_owned(),
        venue: venue.to_owned(),
        starts_at,
        ticket_types,
        sections,
    })
}

/// Put an event on sale: title, venue, start, ticket tiers, and sections generated as
/// sections × rows × seats (then adjusted one by one).
#[function_component(NewEvent)]
pub fn new_event() -> Html {
    let session = use_session();
    let title = use_state(String::new);
    let venue = use_state(String::new);
    let starts = use_state(default_start);
    let tiers = use_state(|| vec![Tier { name: "General admission".into(), ..Tier::default() }]);
    let blocks = use_state(Vec::<Block>::new);
    let generator = use_state(|| Block { name: "2".into(), price: "45".into(), rows: "10".into(), seats: "20".into() });
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let navigator = use_navigator();
    if session.known && session.user.is_none() {
        return html! { <SignInFirst /> };
    }

    let onsubmit = {
        let (title, venue, starts, tiers, blocks, error, busy) =
            (title.clone(), venue.clone(), starts.clone(), tiers.clone(), blocks.clone(), error.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = match input_of(&title, &venue, &starts, &tiers, &blocks) {
                Ok(input) => input,
                Err(e) => return error.set(Some(e)),
            };
            let (error, busy, navigator) = (error.clone(), busy.clone(), navigator.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<CreateEvent>(create_event::Variables { input }).await {
                    Ok(data) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Event { id: data.create_event.id });
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
    let field_error = |field: &str| error.as_ref().and_then(|e| e.for_field(field));
    let text = |state: &UseStateHandle<String>| {
        let state = state.clone();
        Callback::from(move |v: String| state.set(v))
    };
    let edit_tier = |i: usize, pick: fn(&mut Tier) -> &mut String| {
        let tiers = tiers.clone();
        Callback::from(move |v: String| {
            let mut next = (*tiers).clone();
            *pick(&mut next[i]) = v;
            tiers.set(next);
        })
    };
    let edit_block = |i: usize, pick: fn(&mut Block) -> &mut String| {
        let blocks = blocks.clone();
        Callback::from(move |v: String| {
            let mut next = (*blocks).clone();
            *pick(&mut next[i]) = v;
            blocks.set(next);
        })
    };
    let edit_generator = |pick: fn(&mut Block) -> &mut String| {
        let generator = generator.clone();
        Callback::from(move |v: String| {
            let mut next = (*generator).clone();
            *pick(&mut next) = v;
            generator.set(next);
        })
    };
    let add_tier = {
        let tiers = tiers.clone();
        Callback::from(move |_: MouseEvent| {
            let mut next = (*tiers).clone();
            next.push(Tier::default());
            tiers.set(next);
        })
    };
    let generate = {
        let (blocks, generator, error) = (blocks.clone(), generator.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            let count = parse_count(&generator.name).filter(|n| (1..=26 * 27).contains(n));
            let Some(count) = count else {
                return error.set(Some(local_error("generator", "enter how many sections (1 or more)")));
            };
            error.set(None);
            blocks.set(
                (0..count as usize)
                    .map(|i| Block {
                        name: section_name(i),
                        price: generator.price.clone(),
                        rows: generator.rows.clone(),
                        seats: generator.seats.clone(),
                    })
                    .collect(),
            );
        })
    };
    let capacity: i64 = tiers.iter().filter_map(|t| parse_count(&t.capacity)).sum::<i64>()
        + blocks.iter().filter_map(|b| Some(parse_count(&b.rows)? * parse_count(&b.seats)?)).sum::<i64>();

    html! {
        <section class="panel">
            <h1>{ "Put an event on sale" }</h1>
            <form class="form" {onsubmit} novalidate=true>
                <Field id="title" label="Title" value={(*title).clone()} hint="e.g. “Summer Festival”"
                    oninput={text(&title)} error={field_error("title")} />
                <Field id="venue" label="Venue" value={(*venue).clone()} oninput={text(&venue)} error={field_error("venue")} />
                <Field id="startsAt" label="Starts at" kind="datetime-local" value={(*starts).clone()}
                    oninput={text(&starts)} error={field_error("startsAt")} />

                <fieldset class="group">
                    <legend>{ "Ticket tiers (general admission)" }</legend>
                    { for tiers.iter().enumerate().map(|(i, tier)| {
                        let remove = {
                            let (tiers, error) = (tiers.clone(), error.clone());
                            Callback::from(move |_: MouseEvent| {
                                let mut next = (*tiers).clone();
                                next.remove(i);
                                tiers.set(next);
                                // Field errors name places by index: after a removal they would
                                // sit beside the wrong tier.
                                error.set(None);
                            })
                        };
                        html! {
                            <div class="group__row" key={i}>
                                <Field id={format!("tier-{i}-name")} label="Name" value={tier.name.clone()}
                                    oninput={edit_tier(i, |t| &mut t.name)} error={field_error(&format!("ticketTypes.{i}.name"))} />
                                <Field id={format!("tier-{i}-price")} label="Price (USD)" inputmode="decimal" value={tier.price.clone()}
                                    oninput={edit_tier(i, |t| &mut t.price)} error={field_error(&format!("ticketTypes.{i}.priceCents"))} />
                                <Field id={format!("tier-{i}-capacity")} label="Tickets" inputmode="numeric" value={tier.capacity.clone()}
                                    oninput={edit_tier(i, |t| &mut t.capacity)} error={field_error(&format!("ticketTypes.{i}.capacity"))} />
                                <button type="button" class="button button--quiet" onclick={remove}
                                    aria-label={format!("Remove tier {}", i + 1)}>{ "Remove" }</button>
                            </div>
                        }
                    }) }
                    <button type="button" class="button button--quiet" onclick={add_tier} data-testid="add-tier">{ "Add a tier" }</button>
                </fieldset>

                <fieldset class="group">
                    <legend>{ "Numbered seats" }</legend>
                    <p class="field__hint">{ "Generate sections of rows × seats, then adjust each one." }</p>
                    <div class="group__row">
                        <Field id="gen-sections" label="Sections" inputmode="numeric" value={generator.name.clone()}
                            oninput={edit_generator(|b| &mut b.name)} error={field_error("generator")} />
                        <Field id="gen-rows" label="Rows each" inputmode="numeric" value={generator.rows.clone()} oninput={edit_generator(|b| &mut b.rows)} />
                        <Field id="gen-seats" label="Seats per row" inputmode="numeric" value={generator.seats.clone()} oninput={edit_generator(|b| &mut b.seats)} />
                        <Field id="gen-price" label="Price (USD)" inputmode="decimal" value={generator.price.clone()} oninput={edit_generator(|b| &mut b.price)} />
                        <button type="button" class="button button--quiet" onclick={generate} data-testid="generate">{ "Generate" }</button>
                    </div>
                    { for blocks.iter().enumerate().map(|(i, block)| {
                        let remove = {
                            let (blocks, error) = (blocks.clone(), error.clone());
                            Callback::from(move |_: MouseEvent| {
                                let mut next = (*blocks).clone();
                                next.remove(i);
                                blocks.set(next);
                                error.set(None);
                            })
                        };
                        html! {
                            <div class="group__row" key={i}>
                                <Field id={format!("section-{i}-name")} label="Section" value={block.name.clone()}
                                    oninput={edit_block(i, |b| &mut b.name)} error={field_error(&format!("sections.{i}.name"))} />
                                <Field id={format!("section-{i}-rows")} label="Rows" inputmode="numeric" value={block.rows.clone()}
                                    oninput={edit_block(i, |b| &mut b.rows)} error={field_error(&format!("sections.{i}.rows"))} />
                                <Field id={format!("section-{i}-seats")} label="Seats per row" inputmode="numeric" value={block.seats.clone()}
                                    oninput={edit_block(i, |b| &mut b.seats)} error={field_error(&format!("sections.{i}.seatsPerRow"))} />
                                <Field id={format!("section-{i}-price")} label="Price (USD)" inputmode="decimal" value={block.price.clone()}
                                    oninput={edit_block(i, |b| &mut b.price)} error={field_error(&format!("sections.{i}.priceCents"))} />
                                <button type="button" class="button button--quiet" onclick={remove}
                                    aria-label={format!("Remove section {}", block.name)}>{ "Remove" }</button>
                            </div>
                        }
                    }) }
                </fieldset>
                <p class="muted" data-testid="capacity">{ format!("{capacity} tickets in all") }</p>
                if let Some(e) = error.as_ref().filter(|e| e.field.is_none() || e.field.as_deref() == Some("ticketTypes")) {
                    <Alert message={e.user_message()} />
                }
                <button class="button button--large" type="submit" disabled={*busy}>
                    { if *busy { "Putting it on sale…" } else { "Put it on sale" } }
                </button>
            </form>
        </section>
    }
}

/// The events I organise, newest first; each links to its page, where its sales show live.
#[function_component(MyEvents)]
pub fn my_events_page() -> Html {
    let session = use_session();
    let items = use_state(|| None::<Vec<EventSummary>>);
    let error = use_state(|| None::<ApiError>);
    {
        let (items, error) = (items.setter(), error.setter());
        use_effect_with(session.user.clone(), move |user| {
            if user.is_some() {
                wasm_bindgen_futures::spawn_local(async move {
                    match api::request::<MyEventsQuery>(my_events::Variables { first: PAGE_SIZE, after: None }).await {
                        Ok(data) => items.set(Some(data.my_events.nodes.into_iter().map(Into::into).collect())),
                        Err(e) => error.set(Some(e)),
                    }
                });
            }
        });
    }
    if session.known && session.user.is_none() {
        return html! { <SignInFirst /> };
    }
    html! {
        <>
            <div class="page-head">
                <h1>{ "My events" }</h1>
                <Link<Route> to={Route::NewEvent} classes="button">{ "Put an event on sale" }</Link<Route>>
            </div>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            { match &*items {
                None => html! { <p class="muted" role="status">{ "Loading your events…" }</p> },
                Some(items) if items.is_empty() => html! { <p class="empty">{ "You have not put an event on sale yet." }</p> },
                Some(items) => html! {
                    <ul class="grid" aria-label="My events">
                        { for items.iter().map(|e| html! { <EventCard key={e.id.clone()} event={e.clone()} /> }) }
                    </ul>
                },
            } }
        </>
    }
}

#[cfg(test)]
mod tests {
    use super::section_name;

    #[test]
    fn generated_sections_are_named_by_letters() {
        assert_eq!([0, 1, 25, 26, 27, 51, 52].map(section_name), ["A", "B", "Z", "AA", "AB", "AZ", "BA"]);
    }
}
