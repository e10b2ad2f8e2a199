//! The GraphQL operations the pages use, typed from `../schema.graphql`.
//!
//! Enums map to the shared ones in [`crate::state`] (`extern_enums`), so every operation speaks
//! the same `TicketStatus`; objects become the view types there through `From`.

#![allow(missing_docs, clippy::all)]

use graphql_client::GraphQLQuery;

pub use crate::state::{CancelReason, OrderStatus, PaymentStatus, Role, SeatStatus, TicketStatus};

/// GraphQL `ID`.
pub type ID = String;

/// Declares the operations of one file of `web/graphql/`, each typed from `../schema.graphql`
/// with the shared enums.
macro_rules! operations {
    ($file:tt: $($name:ident),+ $(,)?) => {$(
        #[derive(GraphQLQuery)]
        #[graphql(
            schema_path = "../schema.graphql",
            query_path = $file,
            response_derives = "Debug, Clone, PartialEq",
            variables_derives = "Debug, Clone, PartialEq",
            extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
        )]
        pub struct $name;
    )+};
}

operations!("graphql/me.graphql": Me);
operations!("graphql/auth.graphql": SignUp, SignIn, SignOut);
operations!("graphql/tickets.graphql": Tickets, MyTickets, TicketsChanged);
operations!("graphql/ticket.graphql": TicketDetail, TicketHistory, TicketChanged, CreateTicket, UpdateTicket);
operations!("graphql/orders.graphql": OrderDetail, OrderChanged, MyOrders, CreateOrder, CancelOrder, PayOrder);
operations!("graphql/events.graphql": Events, MyEvents, EventDetail, CreateEvent, CreateEventOrder);
// The event page's live subscription, alone in its file: a client sends the whole file, and the
// gateway keeps each open subscription's parsed document (10,000 watchers hold 10,000 copies).
operations!("graphql/event_changed.graphql": EventChanged);
