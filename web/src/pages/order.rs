use yew::prelude::*;
use yew_router::prelude::*;

use super::{SignInFirst, random_key};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, OrderBadge};
use crate::format;
use crate::graphql::{
    CancelOrder, OrderChanged, OrderDetail, PayOrder, cancel_order, order_changed, order_detail, pay_order,
};
use crate::hooks::{use_live, use_session, use_user};
use crate::state::{Live, LiveAction, Order, OrderStatus, PaymentStatus};

/// The test cards of the fake payment provider: (token, label, what happens).
pub const TEST_CARDS: [(&str, &str, &str); 3] = [
    ("tok_visa", "Visa ending 4242", "Succeeds at once"),
    ("tok_chargeDeclined", "Declined card", "The bank says no"),
    ("tok_async", "Asynchronous bank", "Settles a moment later"),
];

/// Properties of [`OrderPage`].
#[derive(Properties, PartialEq)]
pub struct OrderPageProps {
    /// The order's id.
    pub id: String,
}

/// One order, live: the hold's countdown, paying, cancelling; it turns to cancelled by itself
/// when the hold expires.
#[function_component(OrderPage)]
pub fn order_page(props: &OrderPageProps) -> Html {
    let session = use_session();
    match (&session.user, session.known) {
        (Some(_), _) => html! { <OrderView id={props.id.clone()} /> },
        (None, true) => html! { <SignInFirst /> },
        (None, false) => html! { <p class="muted" role="status">{ "Loading…" }</p> },
    }
}

#[function_component(OrderView)]
fn order_view(props: &OrderPageProps) -> Html {
    let error = use_state(|| None::<ApiError>);
    let notice = use_state(|| None::<String>);
    let card = use_state(|| TEST_CARDS[0].0.to_string());
    let busy = use_state(|| false);
    let now = use_state(js_sys::Date::now);
    let user = use_user();

    // An order that cannot be read (not the viewer's, or the API down) shows why, not a spinner.
    let failed = use_state(|| false);
    let live = use_live::<OrderDetail, OrderChanged, Order>(
        order_detail::Variables { id: props.id.clone() },
        order_changed::Variables { id: props.id.clone() },
        |data| data.order.map(Into::into),
        |data| data.order_changed.into(),
        Callback::from({
            let (error, failed) = (error.setter(), failed.setter());
            move |e| {
                error.set(Some(e));
                failed.set(true);
            }
        }),
    );
    {
        // The countdown's clock: one tick a second while the page is open.
        let now = now.setter();
        use_effect_with((), move |_| {
            let interval = gloo::timers::callback::Interval::new(1_000, move || now.set(js_sys::Date::now()));
            move || drop(interval)
        });
    }

    let order = match &*live {
        Live::Loading if !*failed => return html! { <p class="muted" role="status">{ "Loading the order…" }</p> },
        Live::Loading | Live::Missing => {
            let message = error.as_ref().map(ApiError::user_message).unwrap_or_else(|| "No such order.".into());
            return html! {
                <section class="panel panel--center">
                    <h1>{ "Order not found" }</h1>
                    <p>{ message }</p>
                    <p><Link<Route> to={Route::MyOrders}>{ "My orders" }</Link<Route>></p>
                </section>
            };
        }
        Live::Ready(order) => order.clone(),
    };
    let is_buyer = user.as_ref().is_some_and(|u| u.id == order.buyer_id);

    let pay = {
        let (card, error, notice, busy, live, id) =
            (card.clone(), error.clone(), notice.clone(), busy.clone(), live.dispatcher(), order.id.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let variables = pay_order::Variables {
                order_id: id.clone(),
                token: (*card).clone(),
                idempotency_key: Some(random_key()),
            };
            let (error, notice, busy, live, id) =
                (error.clone(), notice.clone(), busy.clone(), live.clone(), id.clone());
            busy.set(true);
            error.set(None);
            notice.set(None);
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<PayOrder>(variables).await {
                    Ok(data) => {
                        if data.pay_order.status == PaymentStatus::Pending {
                            notice
                                .set(Some("Your bank is confirming the payment. This page updates by itself.".into()));
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
                // Read-your-writes: the order now reflects the payment.
                if let Ok(data) = api::request::<OrderDetail>(order_detail::Variables { id }).await {
                    live.dispatch(LiveAction::Loaded(data.order.map(Into::into)));
                }
                busy.set(false);
            });
        })
    };
    let cancel = {
        let (error, live, id) = (error.clone(), live.dispatcher(), order.id.clone());
        Callback::from(move |_: MouseEvent| {
            let (error, live, id) = (error.clone(), live.clone(), id.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<CancelOrder>(cancel_order::Variables { id: id.clone() }).await {
                    Ok(_) => {
                        if let Ok(data) = api::request::<OrderDetail>(order_detail::Variables { id }).await {
                            live.dispatch(LiveAction::Loaded(data.order.map(Into::into)));
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };

    let left = format::epoch_millis(&order.expires_at).map(|deadline| format::seconds_left(deadline, *now));
    let price = format::money(order.price_cents, &order.currency);
    let body = match order.status {
        OrderStatus::Created => {
            let cards = TEST_CARDS.iter().map(|(token, label, what)| {
                let checked = *card == *token;
                let onchange = {
                    let (card, token) = (card.clone(), token.to_string());
                    Callback::from(move |_: Event| card.set(token.clone()))
                };
                html! {
                    <label class={classes!("choice", checked.then_some("choice--checked"))}>
                        <input type="radio" name="card" value={*token} {checked} {onchange} />
                        <span class="choice__label">{ *label }</span>
                        <span class="choice__hint">{ *what }</span>
                    </label>
                }
            });
            html! {
                <>
                    <Countdown left={left} />
                    if order.viewer_can_pay {
                        <form class="form" onsubmit={pay} aria-label="Pay">
                            <fieldset class="choices">
                                <legend>{ "Pay with a test card" }</legend>
                                { for cards }
                            </fieldset>
                            <button class="button button--large" type="submit" disabled={*busy} data-testid="pay">
                                { if *busy { "Paying…".to_string() } else { format!("Pay {price}") } }
                            </button>
                        </form>
                    }
                </>
            }
        }
        OrderStatus::AwaitingPayment => html! {
            <>
                <p class="callout" role="status">{ "Your bank is confirming the payment. This page updates by itself." }</p>
                <Countdown left={left} />
            </>
        },
        OrderStatus::Complete => html! {
            <p class="callout callout--success" role="status">{ format!("Paid {price}. The ticket is yours.") }</p>
        },
        OrderStatus::Cancelled => html! {
            <div class="callout callout--muted" role="status">
                <p>{ format::cancel_reason(order.cancel_reason) }</p>
                if order.payment == Some(PaymentStatus::Refunded) {
                    <p>{ "The money that arrived late was refunded." }</p>
                }
                if let Some(ticket) = order.ticket_id.clone() {
                    <p><Link<Route> to={Route::Ticket { id: ticket }}>{ "See the ticket" }</Link<Route>></p>
                }
                if let Some(event) = order.event_id.clone() {
                    <p><Link<Route> to={Route::Event { id: event }}>{ "See the event" }</Link<Route>></p>
                }
            </div>
        },
    };

    html! {
        <article class="detail">
            <p class="breadcrumb"><Link<Route> to={Route::MyOrders}>{ "← My orders" }</Link<Route>></p>
            <div class="detail__head">
                <h1>{ order.ticket_title.clone() }</h1>
                <div aria-live="polite" data-testid="order-status" data-status={format!("{:?}", order.status)}>
                    <OrderBadge status={order.status} />
                </div>
            </div>
            <p class="detail__price">{ price.clone() }</p>
            if !order.items.is_empty() {
                <ul class="items" aria-label="Tickets in this order">
                    { for order.items.iter().map(|(what, cents)| html! {
                        <li>{ format!("{what}: {}", format::money(*cents, &order.currency)) }</li>
                    }) }
                </ul>
            }
            if let Some(payment) = order.payment {
                <p class="muted">{ format!("Payment: {}", format::payment_status(payment)) }</p>
            }
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            if let Some(n) = &*notice {
                if order.status != OrderStatus::Complete && order.status != OrderStatus::Cancelled {
                    <Alert kind="info" message={n.clone()} />
                }
            }
            { body }
            if order.viewer_can_cancel {
                <p class="actions">
                    <button class="button button--danger" onclick={cancel} data-testid="cancel">
                        { if is_buyer { "Cancel and release the ticket" } else { "Cancel this order (admin)" } }
                    </button>
                </p>
            }
        </article>
    }
}

#[derive(Properties, PartialEq)]
struct CountdownProps {
    left: Option<u64>,
}

/// How long the hold lasts: announced to screen readers once a minute, not every second.
#[function_component(Countdown)]
fn countdown(props: &CountdownProps) -> Html {
    match props.left {
        Some(0) => {
            html! { <p class="countdown countdown--over" role="status">{ "The hold has run out; releasing the ticket…" }</p> }
        }
        Some(left) => html! {
            <p class="countdown" data-testid="countdown">
                { "Held for you for " }
                <strong aria-hidden="true">{ format::countdown(left) }</strong>
                <span class="visually-hidden" aria-live="polite">{ format!("{} minutes left", left.div_ceil(60)) }</span>
            </p>
        },
        None => html! {},
    }
}
