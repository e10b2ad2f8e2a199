//! The listing: one ticket with its orders and payments, a single consistency boundary.
//!
//! Everything that decides who gets a ticket happens inside this boundary (JetStream subjects
//! `ticketing.ticket.<id>.>`), so each such decision is one append guarded by the boundary's last
//! sequence: a hold, a cancellation, an expiry, the start and the outcome of a payment. Two of
//! them can never both succeed against the same state.

pub mod order;
pub mod payment;
pub mod ticket;

use std::collections::BTreeMap;

use self::order::{Order, OrderCommand, OrderError};
use self::payment::{Payment, PaymentCommand, PaymentError};
use self::ticket::{Ticket, TicketCommand, TicketError};
use crate::error::{ErrorCode, Refusal};
use crate::ids::{OrderId, PaymentId};
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
        self.ticket = Ticket::evolve(self.ticket.take(), event);
        if let Some(order_id) = event.order_id()
            && let Some(order) = Order::evolve(self.orders.remove(&order_id), event)
        {
            self.orders.insert(order_id, order);
        }
        if let Some(payment_id) = event.payment_id()
            && let Some(payment) = Payment::evolve(self.payments.remove(&payment_id), event)
        {
            self.payments.insert(payment_id, payment);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{account, at, order, payment, ticket};
    use crate::{CancelReason, Currency, OrderStatus, PaymentStatus, Price, TicketStatus, Title};

    fn price() -> Price {
        Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A ticket listed, held by order 1, a payment started, then failed, then the order expired.
    fn history() -> Vec<Event> {
        vec![
            Event::TicketListed {
                ticket_id: ticket(1),
                seller: account(1),
                title: Title::parse("Opera").unwrap_or_else(|e| panic!("{e}")),
                price_cents: price(),
                currency: Currency::Usd,
                at: at(0),
            },
            Event::OrderPlaced {
                order_id: order(1),
                ticket_id: ticket(1),
                buyer: account(2),
                seller: account(1),
                amount_cents: price(),
                currency: Currency::Usd,
                idempotency_key: None,
                expires_at: at(900),
                at: at(10),
            },
            Event::PaymentStarted {
                payment_id: payment(1),
                order_id: order(1),
                ticket_id: ticket(1),
                amount_cents: price(),
                currency: Currency::Usd,
                idempotency_key: "k".into(),
                at: at(20),
            },
            Event::PaymentPending { payment_id: payment(1), order_id: order(1), provider_ref: "pi".into(), at: at(30) },
            Event::PaymentFailed {
                payment_id: payment(1),
                order_id: order(1),
                reason: "card_declined".into(),
                at: at(40),
            },
            Event::OrderCancelled {
                order_id: order(1),
                ticket_id: ticket(1),
                reason: CancelReason::Expired,
                by: None,
                at: at(900),
            },
        ]
    }

    #[test]
    fn every_event_of_a_listing_moves_the_ticket_and_every_event_about_an_order_moves_the_order() {
        let events = history();
        let mut listing = Listing::default();
        for (n, event) in events.iter().enumerate() {
            listing = listing.evolve(event);
            let ticket = listing.ticket.as_ref().unwrap_or_else(|| panic!("listed"));
            assert_eq!(ticket.updated_at, event.at(), "after event {n}");
            if let Some(order) = event.order_id() {
                assert_eq!(listing.orders[&order].updated_at, event.at(), "after event {n}");
            }
            if let Some(payment) = event.payment_id() {
                assert_eq!(listing.payments[&payment].updated_at, event.at(), "after event {n}");
            }
        }
        let ticket = listing.ticket.unwrap_or_else(|| panic!("listed"));
        assert_eq!((ticket.status, ticket.holder, ticket.listed_at), (TicketStatus::Available, None, at(0)));
        let order = &listing.orders[&order(1)];
        assert_eq!(
            (order.status, order.cancel_reason, order.payment),
            (OrderStatus::Cancelled, Some(CancelReason::Expired), Some(payment(1)))
        );
        let payment = &listing.payments[&payment(1)];
        assert_eq!(
            (payment.status, payment.provider_ref.as_deref(), payment.failure_reason.as_deref()),
            (PaymentStatus::Failed, Some("pi"), Some("card_declined"))
        );
    }

    #[test]
    fn events_about_an_order_or_payment_never_seen_create_nothing() {
        // Everything after the payment started: its pending answer, its failure, the expiry.
        let orphan = &history()[3..];
        let listing = orphan.iter().fold(Listing::default(), Listing::evolve);
        assert_eq!(listing, Listing::default());
    }
}
