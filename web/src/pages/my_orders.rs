use yew::prelude::*;
use yew_router::prelude::*;

use super::{PAGE_SIZE, SignInFirst};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, OrderBadge};
use crate::format;
use crate::graphql::{MyOrders as MyOrdersQuery, OrderChanged, my_orders, order_changed};
use crate::hooks::{use_session, use_subscription};
use crate::state::{Live, LiveAction, Order, OrderStatus};
use crate::ws;

/// My orders, newest first; open ones follow their own subscription.
#[function_component(MyOrders)]
pub fn my_orders() -> Html {
    let session = use_session();
    let orders = use_state(Vec::<Order>::new);
    let next = use_state(|| None::<String>);
    let loaded = use_state(|| false);
    let error = use_state(|| None::<ApiError>);
    let signed_in = session.user.is_some();
    let fetch = {
        let (orders, next, loaded, error) = (orders.clone(), next.clone(), loaded.clone(), error.setter());
        move |after: Option<String>| {
            let (orders, next, loaded, error) = (orders.clone(), next.clone(), loaded.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::request::<MyOrdersQuery>(my_orders::Variables { first: PAGE_SIZE, after: after.clone() })
                    .await
                {
                    Ok(data) => {
                        let page = data.my_orders;
                        let mut all = if after.is_some() { (*orders).clone() } else { Vec::new() };
                        all.extend(page.nodes.into_iter().map(Order::from));
                        orders.set(all);
                        next.set(if page.page_info.has_next_page { page.page_info.end_cursor } else { None });
                        loaded.set(true);
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    {
        let fetch = fetch.clone();
        use_effect_with(signed_in, move |signed_in| {
            if *signed_in {
                fetch(None);
            }
        });
    }
    if session.known && !signed_in {
        return html! { <SignInFirst /> };
    }
    let more = {
        let next = next.clone();
        Callback::from(move |_: MouseEvent| fetch((*next).clone()))
    };
    html! {
        <>
            <div class="page-head"><h1>{ "My orders" }</h1></div>
            if let Some(e) = &*error {
                <Alert message={e.user_message()} />
            }
            if !*loaded {
                <p class="muted" role="status">{ "Loading your orders…" }</p>
            } else if orders.is_empty() {
                <p class="empty">{ "No orders yet. " }<Link<Route> to={Route::Tickets}>{ "Find a ticket" }</Link<Route>></p>
            } else {
                <ul class="rows">
                    { for orders.iter().map(|o| html! { <OrderRow key={o.id.clone()} order={o.clone()} /> }) }
                </ul>
            }
            if next.is_some() {
                <p class="actions actions--center"><button class="button button--quiet" onclick={more}>{ "Show more" }</button></p>
            }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct RowProps {
    order: Order,
}

/// One order; while it is open it listens for its own changes.
#[function_component(OrderRow)]
fn order_row(props: &RowProps) -> Html {
    let live = use_reducer({
        let order = props.order.clone();
        move || Live::Ready(order)
    });
    let open = matches!(props.order.status, OrderStatus::Created | OrderStatus::AwaitingPayment);
    html! {
        <>
            if open {
                <Follow id={props.order.id.clone()} live={live.dispatcher()} />
            }
            if let Live::Ready(order) = &*live {
                <li class="row">
                    <div class="row__main">
                        <Link<Route> to={Route::Order { id: order.id.clone() }} classes="row__title">{ order.ticket_title.clone() }</Link<Route>>
                        <span class="row__price">{ format::money(order.price_cents, &order.currency) }</span>
                        <OrderBadge status={order.status} />
                        <time class="muted" datetime={order.created_at.clone()}>{ format::date(&order.created_at) }</time>
                    </div>
                </li>
            }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct FollowProps {
    id: String,
    live: UseReducerDispatcher<Live<Order>>,
}

#[function_component(Follow)]
fn follow(props: &FollowProps) -> Html {
    let live = props.live.clone();
    use_subscription::<OrderChanged>(
        order_changed::Variables { id: props.id.clone() },
        Callback::from(move |event| {
            if let ws::Event::Data(data) = event {
                let data: order_changed::ResponseData = data;
                live.dispatch(LiveAction::Changed(data.order_changed.into()));
            }
        }),
    );
    html! {}
}
