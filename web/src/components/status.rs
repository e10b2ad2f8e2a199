use yew::prelude::*;

use crate::format;
use crate::state::{OrderStatus, TicketStatus};

/// Properties of [`TicketBadge`].
#[derive(Properties, PartialEq)]
pub struct TicketBadgeProps {
    /// The status shown.
    pub status: TicketStatus,
}

/// A ticket's status as a coloured label (the words carry the meaning, not only the colour).
#[function_component(TicketBadge)]
pub fn ticket_badge(props: &TicketBadgeProps) -> Html {
    let class = match props.status {
        TicketStatus::Available => "badge badge--available",
        TicketStatus::Reserved => "badge badge--held",
        TicketStatus::Sold => "badge badge--sold",
    };
    html! { <span class={class} data-status={format!("{:?}", props.status).to_uppercase()}>{ format::ticket_status(props.status) }</span> }
}

/// Properties of [`OrderBadge`].
#[derive(Properties, PartialEq)]
pub struct OrderBadgeProps {
    /// The status shown.
    pub status: OrderStatus,
}

/// An order's status as a coloured label.
#[function_component(OrderBadge)]
pub fn order_badge(props: &OrderBadgeProps) -> Html {
    let class = match props.status {
        OrderStatus::Created | OrderStatus::AwaitingPayment => "badge badge--held",
        OrderStatus::Complete => "badge badge--available",
        OrderStatus::Cancelled => "badge badge--sold",
    };
    html! { <span class={class}>{ format::order_status(props.status) }</span> }
}

/// Properties of [`Alert`].
#[derive(Properties, PartialEq)]
pub struct AlertProps {
    /// What to say.
    pub message: String,
    /// `error` (default) or `info`.
    #[prop_or(AttrValue::Static("error"))]
    pub kind: AttrValue,
}

/// A message that screen readers announce.
#[function_component(Alert)]
pub fn alert(props: &AlertProps) -> Html {
    let role = if props.kind == "error" { "alert" } else { "status" };
    html! { <p class={format!("alert alert--{}", props.kind)} role={role}>{ props.message.clone() }</p> }
}
