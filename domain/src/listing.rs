//! The listing: one ticket with its orders and payments, a single consistency boundary.
//!
//! Everything that decides who gets a ticket happens inside this boundary (JetStream subjects
//! `ticketing.ticket.<id>.>`), so each such decision is one append guarded by the boundary's last
//! sequence: a hold, a cancellation, an expiry, the start and the outcome of a payment. Two of
//! them can never both succeed against the same state.

use std::collections::BTreeMap;

use crate::error::{ErrorCode, Refusal};
use crate::ids::{OrderId, PaymentId};
use crate::order::{self, Order, OrderCommand, OrderError};
use crate::payment::{self, Payment, PaymentCommand, PaymentError};
use crate::ticket::{self, Ticket, TicketCommand, TicketError};
use crate::{Aggregate, Event};

/// A ticket with all its orders and payments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The ticket, once listed.
    pub ticket: Option<Ticket>,
    /// Every order ever placed on it.
    pub orders: BTreeMap<OrderId, Order>,
    /// Every payment attempt for those orders.
    pub payments: BTreeMap<PaymentId, Payment>,
}

/// Commands decided inside a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingCommand {
    /// List or edit the ticket.
    Ticket(TicketCommand),
    /// Place, cancel or expire an order.
    Order(OrderCommand),
    /// Start or settle a payment.
    Payment(PaymentCommand),
}

/// Why a listing command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// A ticket rule.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// An order rule.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A payment rule.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl Refusal for ListingError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Ticket(e) => e.code(),
            Self::Order(e) => e.code(),
            Self::Payment(e) => e.code(),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Ticket(e) => e.field(),
            Self::Order(e) => e.field(),
            Self::Payment(e) => e.field(),
        }
    }
}

impl Aggregate for Listing {
    type Command = ListingCommand;
    type Error = ListingError;

    fn decide(&self, command: ListingCommand) -> Result<Vec<Event>, ListingError> {
        Ok(match command {
            ListingCommand::Ticket(command) => ticket::decide(self, command)?,
            ListingCommand::Order(command) => order::decide(self, command)?,
            ListingCommand::Payment(command) => payment::decide(self, command)?,
        })
    }

    fn evolve(mut self, event: &Event) -> Self {
        self.ticket = ticket::evolve(self.ticket.take(), event);
        if let Some(order_id) = order_id_of(event)
            && let Some(created) = order::evolve(self.orders.get_mut(&order_id), event)
        {
            self.orders.insert(order_id, created);
        }
        if let Some(payment_id) = payment_id_of(event)
            && let Some(created) = payment::evolve(self.payments.get_mut(&payment_id), event)
        {
            self.payments.insert(payment_id, created);
        }
        self
    }
}

fn order_id_of(event: &Event) -> Option<OrderId> {
    match event {
        Event::OrderPlaced { order_id, .. }
        | Event::OrderCancelled { order_id, .. }
        | Event::PaymentStarted { order_id, .. }
        | Event::PaymentSucceeded { order_id, .. }
        | Event::PaymentFailed { order_id, .. } => Some(*order_id),
        _ => None,
    }
}

fn payment_id_of(event: &Event) -> Option<PaymentId> {
    match event {
        Event::PaymentStarted { payment_id, .. }
        | Event::PaymentPending { payment_id, .. }
        | Event::PaymentSucceeded { payment_id, .. }
        | Event::PaymentFailed { payment_id, .. }
        | Event::LatePaymentReceived { payment_id, .. }
        | Event::PaymentRefunded { payment_id, .. } => Some(*payment_id),
        _ => None,
    }
}
