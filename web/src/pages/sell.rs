use yew::prelude::*;
use yew_router::prelude::*;

use super::SignInFirst;
use super::my_tickets::price_error;
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, Field};
use crate::format;
use crate::graphql::{CreateTicket, create_ticket};
use crate::hooks::use_session;

/// List a ticket: title and price; the API's field errors appear beside the fields.
#[function_component(Sell)]
pub fn sell() -> Html {
    let session = use_session();
    let title = use_state(String::new);
    let price = use_state(String::new);
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let navigator = use_navigator();
    if session.known && session.user.is_none() {
        return html! { <SignInFirst /> };
    }
    let onsubmit = {
        let (title, price, error, busy) = (title.clone(), price.clone(), error.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(cents) = format::parse_price(&price) else {
                error.set(Some(price_error()));
                return;
            };
            let variables = create_ticket::Variables { title: (*title).clone(), price_cents: cents };
            let (error, busy, navigator) = (error.clone(), busy.clone(), navigator.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<CreateTicket>(variables).await {
                    Ok(data) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Ticket { id: data.create_ticket.id });
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
    html! {
        <section class="panel panel--narrow">
            <h1>{ "Sell a ticket" }</h1>
            <form class="form" {onsubmit} novalidate=true>
                <Field id="title" label="Title" value={(*title).clone()} hint="What buyers will see, e.g. “Front row, Friday night”"
                    oninput={Callback::from({ let title = title.clone(); move |v| title.set(v) })}
                    error={field_error("title")} />
                <Field id="price" label="Price (USD)" value={(*price).clone()} inputmode="decimal" hint="In dollars, e.g. 25 or 25.50"
                    oninput={Callback::from({ let price = price.clone(); move |v| price.set(v) })}
                    error={field_error("priceCents")} />
                if let Some(e) = error.as_ref().filter(|e| e.field.is_none()) {
                    <Alert message={e.user_message()} />
                }
                <button class="button button--large" type="submit" disabled={*busy}>
                    { if *busy { "Listing…" } else { "List ticket" } }
                </button>
            </form>
        </section>
    }
}
