//! The GraphQL operations the pages use, typed from `../schema.graphql`.
//!
//! Enums map to the shared ones in [`crate::state`] (`extern_enums`), so every operation speaks
//! the same `TicketStatus`; objects become the view types there through `From`.

#![allow(missing_docs, clippy::all)]

use graphql_client::GraphQLQuery;

pub use crate::state::{CancelReason, OrderStatus, PaymentStatus, Role, SeatStatus, TicketStatus};

/// GraphQL `ID`.
pub type ID = String;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/me.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct Me;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/auth.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct SignUp;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/auth.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct SignIn;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/auth.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct SignOut;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/tickets.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct Tickets;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/tickets.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct MyTickets;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/tickets.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct TicketsChanged;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/ticket.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct TicketDetail;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/ticket.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct TicketHistory;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/ticket.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct TicketChanged;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/ticket.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct CreateTicket;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/ticket.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct UpdateTicket;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct OrderDetail;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct OrderChanged;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct MyOrders;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct CreateOrder;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct CancelOrder;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/orders.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role")
)]
pub struct PayOrder;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct Events;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct MyEvents;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct EventDetail;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct EventChanged;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct CreateEvent;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../schema.graphql",
    query_path = "graphql/events.graphql",
    response_derives = "Debug, Clone, PartialEq",
    variables_derives = "Debug, Clone, PartialEq",
    extern_enums("TicketStatus", "OrderStatus", "PaymentStatus", "CancelReason", "Role", "SeatStatus")
)]
pub struct CreateEventOrder;
