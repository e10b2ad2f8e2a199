//! Orders: a buyer's hold on one ticket, its cancellation and its expiry.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Refusal};
use crate::ids::{AccountId, OrderId, PaymentId, TicketId};
use crate::listing::Listing;
use crate::money::{Currency, Price};
use crate::{Actor, Event, Timestamp};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// The hold is open and unpaid.
    Created,
    /// A payment is under way (being charged, or settling asynchronously).
    AwaitingPayment,
    /// Paid; the ticket is sold. Final.
    Complete,
    /// Cancelled; the ticket was released. Final.
    Cancelled,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// The buyer cancelled it.
    User,
    /// The hold lapsed unpaid.
    Expired,
    /// An admin cancelled it.
    Admin,
}

/// A buyer's hold on one ticket, from placement until it is paid, cancelled or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id: derived from the buyer, the ticket and the idempotency key when one is given.
    pub id: OrderId,
    /// The ticket it holds.
    pub ticket_id: TicketId,
    /// The buyer.
    pub buyer: AccountId,
    /// The seller at the time of the hold.
    pub seller: AccountId,
    /// What the buyer pays: the ticket's price at the time of the hold.
    pub amount: Price,
    /// The currency of the amount (USD only, for now).
    pub currency: Currency,
    /// Where it stands in its lifecycle.
    pub status: OrderStatus,
    /// Why it was cancelled, once cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// When the hold lapses unless paid.
    pub expires_at: Timestamp,
    /// The latest payment attempt.
    pub payment: Option<PaymentId>,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// When anything about it last happened: its own change, or one of its payments'.
    pub updated_at: Timestamp,
}

impl Order {
    /// Whether the hold is still open (neither paid nor cancelled).
    pub fn is_open(&self) -> bool {
        self.access().is_open()
    }
}

/// Commands on orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Hold the listing's ticket for a buyer.
    Place {
        /// The new order's id.
        order_id: OrderId,
        /// The signed-in buyer.
        buyer: AccountId,
        /// Now plus the hold duration (`ORDER_HOLD_SECONDS`).
        expires_at: Timestamp,
        /// The client's idempotency key.
        idempotency_key: Option<String>,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Cancel an open order.
    Cancel {
        /// The order.
        order_id: OrderId,
        /// Who asks: the buyer or an admin.
        actor: Actor,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// The hold's expiry fired: cancel the order if it is still unpaid.
    Expire {
        /// The order.
        order_id: OrderId,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
}

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No such ticket (`NOT_FOUND`).
    #[error("ticket not found")]
    TicketNotFound,
    /// No such order (`NOT_FOUND`).
    #[error("order not found")]
    NotFound,
    /// Sellers cannot buy their own tickets (`FORBIDDEN`).
    #[error("you cannot order your own ticket")]
    OwnTicket,
    /// Only the buyer or an admin may do this (`FORBIDDEN`).
    #[error("only the buyer or an admin may change this order")]
    NotOwner,
    /// The ticket is held or sold (`CONFLICT`).
    #[error("the ticket is not available")]
    TicketUnavailable,
    /// The order id is already used by another buyer (`CONFLICT`).
    #[error("order id already in use")]
    IdInUse,
    /// The hold would lapse before it is placed (`CONFLICT`): a retry that came too late.
    #[error("this hold request has lapsed; try again")]
    HoldLapsed,
    /// A paid order cannot be cancelled (`CONFLICT`).
    #[error("the order is complete and cannot be cancelled")]
    AlreadyComplete,
}

impl Refusal for OrderError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::TicketNotFound | Self::NotFound => ErrorCode::NotFound,
            Self::OwnTicket | Self::NotOwner => ErrorCode::Forbidden,
            Self::TicketUnavailable | Self::IdInUse | Self::HoldLapsed | Self::AlreadyComplete => ErrorCode::Conflict,
        }
    }
}

pub(crate) fn decide(listing: &Listing, command: OrderCommand) -> Result<Vec<Event>, OrderError> {
    match command {
        OrderCommand::Place { order_id, buyer, expires_at, idempotency_key, at } => {
            let ticket = listing.ticket.as_ref().ok_or(OrderError::TicketNotFound)?;
            if let Some(existing) = listing.orders.get(&order_id) {
                // A retry with the same idempotency key finds its own order.
                return if existing.buyer == buyer { Ok(vec![]) } else { Err(OrderError::IdInUse) };
            }
            if ticket.access().is_sold_by(buyer) {
                return Err(OrderError::OwnTicket);
            }
            if !ticket.access().is_available() {
                return Err(OrderError::TicketUnavailable);
            }
            if at >= expires_at {
                // A retry that kept its first attempt's expiry too long: that expiry has fired (or
                // is firing) already, so a hold placed now would never be expired.
                return Err(OrderError::HoldLapsed);
            }
            Ok(vec![Event::OrderPlaced {
                order_id,
                ticket_id: ticket.id,
                buyer,
                seller: ticket.seller,
                amount_cents: ticket.price,
                currency: ticket.currency,
                idempotency_key,
                expires_at,
                at,
            }])
        }
        OrderCommand::Cancel { order_id, actor, at } => {
            let order = listing.orders.get(&order_id).ok_or(OrderError::NotFound)?;
            if !order.access().is_owned_by(&actor) {
                return Err(OrderError::NotOwner);
            }
            match order.status {
                OrderStatus::Complete => Err(OrderError::AlreadyComplete),
                OrderStatus::Cancelled => Ok(vec![]),
                OrderStatus::Created | OrderStatus::AwaitingPayment => {
                    let reason = if order.buyer == actor.id { CancelReason::User } else { CancelReason::Admin };
                    Ok(vec![Event::OrderCancelled {
                        order_id,
                        ticket_id: order.ticket_id,
                        reason,
                        by: Some(actor.id),
                        at,
                    }])
                }
            }
        }
        OrderCommand::Expire { order_id, at } => {
            // A schedule may fire for an order that was never placed (its hold lost the race),
            // was paid (a paid order never expires) or was cancelled already: nothing to do.
            let Some(order) = listing.orders.get(&order_id) else { return Ok(vec![]) };
            if !order.is_open() || !order.access().has_lapsed(at) {
                return Ok(vec![]);
            }
            Ok(vec![Event::OrderCancelled {
                order_id,
                ticket_id: order.ticket_id,
                reason: CancelReason::Expired,
                by: None,
                at,
            }])
        }
    }
}

impl Order {
    /// The order after one event about it (its own, or one of its payments'): the write model's
    /// fold, which the read model's projector runs too. `None` until the order is placed.
    pub fn evolve(order: Option<Self>, event: &Event) -> Option<Self> {
        // A placement repeated (which `decide` never writes) changes nothing of the first.
        if let (
            None,
            Event::OrderPlaced { order_id, ticket_id, buyer, seller, amount_cents, currency, expires_at, at, .. },
        ) = (&order, event)
        {
            return Some(Self {
                id: *order_id,
                ticket_id: *ticket_id,
                buyer: *buyer,
                seller: *seller,
                amount: *amount_cents,
                currency: *currency,
                status: OrderStatus::Created,
                cancel_reason: None,
                expires_at: *expires_at,
                payment: None,
                placed_at: *at,
                updated_at: *at,
            });
        }
        let mut order = order?;
        match event {
            Event::OrderCancelled { reason, .. } => {
                order.status = OrderStatus::Cancelled;
                order.cancel_reason = Some(*reason);
            }
            Event::PaymentStarted { payment_id, .. } => {
                order.status = OrderStatus::AwaitingPayment;
                order.payment = Some(*payment_id);
            }
            Event::PaymentSucceeded { .. } => order.status = OrderStatus::Complete,
            // Only the failure of the attempt under way reopens the order for another one.
            Event::PaymentFailed { payment_id, .. }
                if order.status == OrderStatus::AwaitingPayment && order.payment == Some(*payment_id) =>
            {
                order.status = OrderStatus::Created;
            }
            _ => {}
        }
        order.updated_at = event.at();
        Some(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::{ListingCommand, ListingError};
    use crate::testing::{account, at, given, order, payment, ticket};
    use crate::{TicketCommand, TicketStatus, Title};

    const SELLER: u128 = 1;
    const BUYER: u128 = 2;
    const ADMIN: u128 = 9;

    fn listed() -> Event {
        Event::TicketListed {
            ticket_id: ticket(1),
            seller: account(SELLER),
            title: Title::parse("Opera").unwrap_or_else(|e| panic!("{e}")),
            price_cents: Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}")),
            currency: Currency::Usd,
            at: at(0),
        }
    }

    fn placed(n: u128, buyer: u128) -> Event {
        Event::OrderPlaced {
            order_id: order(n),
            ticket_id: ticket(1),
            buyer: account(buyer),
            seller: account(SELLER),
            amount_cents: Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}")),
            currency: Currency::Usd,
            idempotency_key: None,
            expires_at: at(900),
            at: at(0),
        }
    }

    fn place(n: u128, buyer: u128) -> ListingCommand {
        ListingCommand::Order(OrderCommand::Place {
            order_id: order(n),
            buyer: account(buyer),
            expires_at: at(900),
            idempotency_key: None,
            at: at(0),
        })
    }

    fn cancel(actor: Actor) -> ListingCommand {
        ListingCommand::Order(OrderCommand::Cancel { order_id: order(1), actor, at: at(10) })
    }

    fn expire(now: i64) -> ListingCommand {
        ListingCommand::Order(OrderCommand::Expire { order_id: order(1), at: at(now) })
    }

    fn paid() -> Event {
        Event::PaymentSucceeded {
            payment_id: payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            provider_ref: "pi_1".into(),
            at: at(20),
        }
    }

    fn started() -> Event {
        Event::PaymentStarted {
            payment_id: payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            amount_cents: Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}")),
            currency: Currency::Usd,
            idempotency_key: "k".into(),
            at: at(15),
        }
    }

    #[test]
    fn placing_an_order_reserves_the_ticket_at_its_current_price_until_expiry() {
        let state = given::<Listing>([listed()]).when(place(1, BUYER)).then([placed(1, BUYER)]);
        let order = &state.orders[&order(1)];
        assert_eq!((order.status, order.amount.cents(), order.expires_at), (OrderStatus::Created, 5000, at(900)));
        assert_eq!(state.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Reserved, Some(order.id))));
    }

    #[test]
    fn the_hold_amount_is_the_price_at_the_time_of_the_hold() {
        let repriced = Event::TicketUpdated {
            ticket_id: ticket(1),
            by: account(SELLER),
            title: None,
            price_cents: Price::from_cents(7000).ok(),
            at: at(1),
        };
        let (events, _) = given::<Listing>([listed(), repriced]).when(place(1, BUYER)).then_ok();
        assert!(matches!(&events[..], [Event::OrderPlaced { amount_cents, .. }] if amount_cents.cents() == 7000));
    }

    #[test]
    fn ordering_an_unknown_ticket_is_not_found() {
        given::<Listing>([]).when(place(1, BUYER)).then_err(ListingError::Order(OrderError::TicketNotFound));
        assert_eq!(OrderError::TicketNotFound.code(), ErrorCode::NotFound);
    }

    #[test]
    fn a_reserved_ticket_cannot_be_held_by_a_second_order() {
        given::<Listing>([listed(), placed(1, BUYER)])
            .when(place(2, 3))
            .then_err(ListingError::Order(OrderError::TicketUnavailable));
        assert_eq!(OrderError::TicketUnavailable.code(), ErrorCode::Conflict);
    }

    #[test]
    fn a_sold_ticket_cannot_be_ordered() {
        given::<Listing>([listed(), placed(1, BUYER), started(), paid()])
            .when(place(2, 3))
            .then_err(ListingError::Order(OrderError::TicketUnavailable));
    }

    #[test]
    fn a_seller_cannot_order_their_own_ticket() {
        given::<Listing>([listed()]).when(place(1, SELLER)).then_err(ListingError::Order(OrderError::OwnTicket));
        assert_eq!(OrderError::OwnTicket.code(), ErrorCode::Forbidden);
    }

    #[test]
    fn a_hold_that_would_lapse_before_it_is_placed_is_refused() {
        let late = ListingCommand::Order(OrderCommand::Place {
            order_id: order(1),
            buyer: account(BUYER),
            expires_at: at(900),
            idempotency_key: Some("k".into()),
            at: at(900),
        });
        given::<Listing>([listed()]).when(late).then_err(ListingError::Order(OrderError::HoldLapsed));
        assert_eq!(OrderError::HoldLapsed.code(), ErrorCode::Conflict);
    }

    #[test]
    fn a_retried_order_with_the_same_idempotency_key_returns_the_first_one() {
        given::<Listing>([listed(), placed(1, BUYER)]).when(place(1, BUYER)).then_nothing();
        given::<Listing>([listed(), placed(1, BUYER)])
            .when(place(1, 3))
            .then_err(ListingError::Order(OrderError::IdInUse));
    }

    #[test]
    fn the_buyer_may_cancel_and_the_ticket_is_released() {
        let state = given::<Listing>([listed(), placed(1, BUYER)]).when(cancel(Actor::user(account(BUYER)))).then([
            Event::OrderCancelled {
                order_id: order(1),
                ticket_id: ticket(1),
                reason: CancelReason::User,
                by: Some(account(BUYER)),
                at: at(10),
            },
        ]);
        assert_eq!(state.orders[&order(1)].cancel_reason, Some(CancelReason::User));
        assert_eq!(state.ticket.map(|t| t.status), Some(TicketStatus::Available));
    }

    #[test]
    fn an_admin_may_cancel_any_order_with_reason_admin() {
        given::<Listing>([listed(), placed(1, BUYER)]).when(cancel(Actor::admin(account(ADMIN)))).then([
            Event::OrderCancelled {
                order_id: order(1),
                ticket_id: ticket(1),
                reason: CancelReason::Admin,
                by: Some(account(ADMIN)),
                at: at(10),
            },
        ]);
    }

    #[test]
    fn another_user_may_not_cancel_the_order() {
        given::<Listing>([listed(), placed(1, BUYER)])
            .when(cancel(Actor::user(account(SELLER))))
            .then_err(ListingError::Order(OrderError::NotOwner));
    }

    #[test]
    fn a_complete_order_cannot_be_cancelled() {
        given::<Listing>([listed(), placed(1, BUYER), started(), paid()])
            .when(cancel(Actor::admin(account(ADMIN))))
            .then_err(ListingError::Order(OrderError::AlreadyComplete));
    }

    #[test]
    fn cancelling_a_cancelled_order_returns_it_unchanged() {
        let cancelled = Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: CancelReason::User,
            by: Some(account(BUYER)),
            at: at(5),
        };
        given::<Listing>([listed(), placed(1, BUYER), cancelled])
            .when(cancel(Actor::user(account(BUYER))))
            .then_nothing();
    }

    #[test]
    fn cancelling_an_unknown_order_is_not_found() {
        given::<Listing>([listed()])
            .when(cancel(Actor::admin(account(ADMIN))))
            .then_err(ListingError::Order(OrderError::NotFound));
    }

    #[test]
    fn an_unpaid_hold_expires_at_its_expiry_and_releases_the_ticket() {
        let state = given::<Listing>([listed(), placed(1, BUYER)]).when(expire(900)).then([Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: CancelReason::Expired,
            by: None,
            at: at(900),
        }]);
        assert_eq!(state.ticket.map(|t| t.status), Some(TicketStatus::Available));
    }

    #[test]
    fn an_order_awaiting_an_asynchronous_payment_still_expires() {
        given::<Listing>([listed(), placed(1, BUYER), started()]).when(expire(901)).then([Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: CancelReason::Expired,
            by: None,
            at: at(901),
        }]);
    }

    #[test]
    fn an_expiry_that_fires_early_changes_nothing() {
        given::<Listing>([listed(), placed(1, BUYER)]).when(expire(899)).then_nothing();
    }

    #[test]
    fn an_expiry_after_payment_is_ignored() {
        given::<Listing>([listed(), placed(1, BUYER), started(), paid()]).when(expire(900)).then_nothing();
    }

    #[test]
    fn an_expiry_of_a_cancelled_or_unknown_order_is_ignored() {
        let cancelled = Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: CancelReason::User,
            by: Some(account(BUYER)),
            at: at(5),
        };
        given::<Listing>([listed(), placed(1, BUYER), cancelled]).when(expire(900)).then_nothing();
        given::<Listing>([listed()]).when(expire(900)).then_nothing();
    }

    #[test]
    fn after_a_cancellation_the_ticket_can_be_held_again() {
        let cancelled = Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: CancelReason::Expired,
            by: None,
            at: at(900),
        };
        given::<Listing>([listed(), placed(1, BUYER), cancelled]).when(place(2, 3)).then_ok();
    }

    #[test]
    fn a_ticket_listing_command_cannot_hold_a_ticket() {
        // Placing is the only way to reserve: a re-list of a held ticket is refused.
        given::<Listing>([listed(), placed(1, BUYER)])
            .when(ListingCommand::Ticket(TicketCommand::List {
                ticket_id: ticket(1),
                seller: account(SELLER),
                title: Title::parse("x").unwrap_or_else(|e| panic!("{e}")),
                price: Price::from_cents(1).unwrap_or_else(|e| panic!("{e}")),
                at: at(1),
            }))
            .then_err(ListingError::Ticket(crate::TicketError::AlreadyListed));
    }
}
