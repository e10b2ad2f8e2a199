//! Payments: charging for a held order, settling, and refunding money that came too late.
//!
//! A charge is recorded as [`Event::PaymentStarted`] *before* the provider is called, inside the
//! listing's consistency boundary: two simultaneous `payOrder` calls cannot both start, so the
//! buyer is charged at most once. The provider then gets the payment's idempotency key, so a
//! retried call after a crash never charges twice either.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Refusal};
use crate::ids::{OrderId, PaymentId, TicketId};
use crate::listing::Listing;
use crate::listing::order::OrderStatus;
use crate::money::Currency;
use crate::{Actor, Event, Timestamp};

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Being charged, or accepted and settling asynchronously.
    Pending,
    /// The money arrived.
    Succeeded,
    /// The charge failed.
    Failed,
    /// The money went back to the buyer.
    Refunded,
}

/// One attempt to pay for an order: started, then settled by the provider (at once or later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Its id: derived from the order and the idempotency key, and the provider call's key.
    pub id: PaymentId,
    /// The order it pays for.
    pub order_id: OrderId,
    /// The order's ticket (an order on a ticket; none for an order on a show).
    pub ticket_id: Option<TicketId>,
    /// The amount charged, in cents.
    pub amount_cents: i64,
    /// The currency of the amount (USD only, for now).
    pub currency: Currency,
    /// Where it stands in its lifecycle.
    pub status: PaymentStatus,
    /// The provider's reference, once known.
    pub provider_ref: Option<String>,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
    /// Money arrived for a cancelled order and must be refunded.
    pub refund_due: bool,
    /// When it started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What the payment provider said about a charge (from its answer or a webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Accepted; settles later.
    Pending {
        /// The provider's reference.
        provider_ref: String,
    },
    /// The money arrived.
    Succeeded {
        /// The provider's reference.
        provider_ref: String,
    },
    /// The charge failed.
    Failed {
        /// The provider's short reason.
        reason: String,
    },
    /// The money went back to the buyer.
    Refunded,
}

/// Commands on payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Begin paying for an order.
    Start {
        /// The payment's id (derived from the order and idempotency key).
        payment_id: PaymentId,
        /// The order.
        order_id: OrderId,
        /// Who pays: only the buyer may.
        actor: Actor,
        /// The idempotency key sent to the provider.
        idempotency_key: String,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Record what the provider said.
    Settle {
        /// The payment.
        payment_id: PaymentId,
        /// The provider's answer.
        outcome: PaymentOutcome,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
}

/// Why a payment command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// No such order (`NOT_FOUND`).
    #[error("order not found")]
    OrderNotFound,
    /// No such payment (`NOT_FOUND`).
    #[error("payment not found")]
    NotFound,
    /// Only the buyer may pay (`FORBIDDEN`).
    #[error("only the buyer may pay for this order")]
    NotBuyer,
    /// The order was cancelled or its hold lapsed (`CONFLICT`).
    #[error("the order is cancelled or its hold has expired")]
    OrderClosed,
    /// The order is paid already (`CONFLICT`).
    #[error("the order is already paid")]
    AlreadyPaid,
    /// Another payment for this order is under way (`CONFLICT`).
    #[error("a payment for this order is already in progress")]
    InProgress,
    /// The provider declined the charge (`PAYMENT_DECLINED`); the buyer may try again.
    #[error("the payment was declined")]
    Declined,
}

impl Refusal for PaymentError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::OrderNotFound | Self::NotFound => ErrorCode::NotFound,
            Self::NotBuyer => ErrorCode::Forbidden,
            Self::OrderClosed | Self::AlreadyPaid | Self::InProgress => ErrorCode::Conflict,
            Self::Declined => ErrorCode::PaymentDeclined,
        }
    }
}

/// The rules of starting a payment, on the order's facts and whether an attempt with this
/// payment's id (its idempotency key) exists already: `Ok(true)` to start one, `Ok(false)` when
/// the first attempt's result stands. The same for orders on tickets and on shows.
pub(crate) fn may_start(
    order: &crate::OrderAccess,
    actor: &Actor,
    exists: bool,
    at: Timestamp,
) -> Result<bool, PaymentError> {
    if !order.is_paid_by(actor) {
        return Err(PaymentError::NotBuyer);
    }
    if exists {
        // Same idempotency key: the first attempt's result stands.
        return Ok(false);
    }
    match order.status {
        OrderStatus::Complete => Err(PaymentError::AlreadyPaid),
        OrderStatus::Cancelled => Err(PaymentError::OrderClosed),
        OrderStatus::AwaitingPayment => Err(PaymentError::InProgress),
        OrderStatus::Created if order.has_lapsed(at) => Err(PaymentError::OrderClosed),
        OrderStatus::Created => Ok(true),
    }
}

/// What a provider's answer means for a payment, whatever its order is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Accepted, settling later: its reference.
    Pending(String),
    /// The money arrived while the order still holds what it pays for: it is sold.
    Succeeded(String),
    /// The money arrived after the order let go of it: it must go back.
    Late(String),
    /// The charge failed.
    Failed(String),
    /// The money went back.
    Refunded,
    /// A repeat, or a contradiction of what is settled: no effect.
    Nothing,
}

/// The rules of settling: what `outcome` does to `payment`, given whether its order still holds
/// what it pays for (money counts only then; otherwise it goes back, and whoever holds the goods
/// now keeps them).
pub(crate) fn settlement(payment: &Payment, outcome: PaymentOutcome, still_holds: bool) -> Settlement {
    match (outcome, payment.status) {
        (PaymentOutcome::Pending { provider_ref }, PaymentStatus::Pending) if payment.provider_ref.is_none() => {
            Settlement::Pending(provider_ref)
        }
        (PaymentOutcome::Succeeded { provider_ref }, PaymentStatus::Pending | PaymentStatus::Failed) => {
            if still_holds {
                Settlement::Succeeded(provider_ref)
            } else {
                Settlement::Late(provider_ref)
            }
        }
        (PaymentOutcome::Failed { reason }, PaymentStatus::Pending) => Settlement::Failed(reason),
        (PaymentOutcome::Refunded, PaymentStatus::Succeeded) => Settlement::Refunded,
        _ => Settlement::Nothing,
    }
}

impl Settlement {
    /// The event it is, for a payment of `order_id`; `succeeded` makes the boundary's own
    /// event for money that arrived in time (it names the ticket, or the show).
    pub(crate) fn event(
        self,
        payment_id: PaymentId,
        order_id: OrderId,
        at: Timestamp,
        succeeded: impl FnOnce(String) -> Event,
    ) -> Option<Event> {
        Some(match self {
            Self::Pending(provider_ref) => Event::PaymentPending { payment_id, order_id, provider_ref, at },
            Self::Succeeded(provider_ref) => succeeded(provider_ref),
            Self::Late(provider_ref) => Event::LatePaymentReceived { payment_id, order_id, provider_ref, at },
            Self::Failed(reason) => Event::PaymentFailed { payment_id, order_id, reason, at },
            Self::Refunded => Event::PaymentRefunded { payment_id, order_id, at },
            Self::Nothing => return None,
        })
    }
}

pub(crate) fn decide(listing: &Listing, command: PaymentCommand) -> Result<Vec<Event>, PaymentError> {
    match command {
        PaymentCommand::Start { payment_id, order_id, actor, idempotency_key, at } => {
            let order = listing.orders.get(&order_id).ok_or(PaymentError::OrderNotFound)?;
            if !may_start(&order.access(), &actor, listing.payments.contains_key(&payment_id), at)? {
                return Ok(vec![]);
            }
            Ok(vec![Event::PaymentStarted {
                payment_id,
                order_id,
                ticket_id: order.ticket_id,
                amount_cents: order.amount,
                currency: order.currency,
                idempotency_key,
                at,
            }])
        }
        PaymentCommand::Settle { payment_id, outcome, at } => {
            let payment = listing.payments.get(&payment_id).ok_or(PaymentError::NotFound)?;
            let order = listing.orders.get(&payment.order_id).ok_or(PaymentError::OrderNotFound)?;
            let order_id = order.id;
            let holds_ticket = order.is_open() && listing.ticket.as_ref().and_then(|t| t.holder) == Some(order_id);
            let ticket_id = order.ticket_id;
            let succeeded =
                |provider_ref| Event::PaymentSucceeded { payment_id, order_id, ticket_id, provider_ref, at };
            Ok(settlement(payment, outcome, holds_ticket)
                .event(payment_id, order_id, at, succeeded)
                .into_iter()
                .collect())
        }
    }
}

impl Payment {
    /// The payment after one event about it: the write model's fold, which the read model's
    /// projector runs too. `None` until the payment starts.
    pub fn evolve(payment: Option<Self>, event: &Event) -> Option<Self> {
        // A start repeated (which `decide` never writes) changes nothing of the first.
        let started = match event {
            Event::PaymentStarted { payment_id, order_id, ticket_id, amount_cents, currency, at, .. } => {
                Some((*payment_id, *order_id, Some(*ticket_id), amount_cents.cents(), *currency, *at))
            }
            Event::ShowPaymentStarted { payment_id, order_id, amount_cents, currency, at, .. } => {
                Some((*payment_id, *order_id, None, *amount_cents, *currency, *at))
            }
            _ => None,
        };
        if let (None, Some((payment_id, order_id, ticket_id, amount_cents, currency, at))) = (&payment, started) {
            return Some(Self {
                id: payment_id,
                order_id,
                ticket_id,
                amount_cents,
                currency,
                status: PaymentStatus::Pending,
                provider_ref: None,
                failure_reason: None,
                refund_due: false,
                created_at: at,
                updated_at: at,
            });
        }
        let mut payment = payment?;
        match event {
            Event::PaymentPending { provider_ref, .. } => payment.provider_ref = Some(provider_ref.clone()),
            Event::PaymentSucceeded { provider_ref, .. } | Event::ShowPaymentSucceeded { provider_ref, .. } => {
                payment.status = PaymentStatus::Succeeded;
                payment.provider_ref = Some(provider_ref.clone());
            }
            Event::LatePaymentReceived { provider_ref, .. } => {
                payment.status = PaymentStatus::Succeeded;
                payment.provider_ref = Some(provider_ref.clone());
                payment.refund_due = true;
            }
            Event::PaymentFailed { reason, .. } => {
                payment.status = PaymentStatus::Failed;
                payment.failure_reason = Some(reason.clone());
            }
            Event::PaymentRefunded { .. } => {
                payment.status = PaymentStatus::Refunded;
                payment.refund_due = false;
            }
            _ => {}
        }
        payment.updated_at = event.at();
        Some(payment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::order::CancelReason;
    use crate::listing::{ListingCommand, ListingError};
    use crate::money::Price;
    use crate::testing::{account, at, given, order, payment, ticket};
    use crate::{OrderCommand, TicketStatus, Title};

    const SELLER: u128 = 1;
    const BUYER: u128 = 2;

    fn price() -> Price {
        Price::from_cents(5000).unwrap_or_else(|e| panic!("{e}"))
    }

    fn listed() -> Event {
        Event::TicketListed {
            ticket_id: ticket(1),
            seller: account(SELLER),
            title: Title::parse("Opera").unwrap_or_else(|e| panic!("{e}")),
            price_cents: price(),
            currency: Currency::Usd,
            at: at(0),
        }
    }

    fn placed(n: u128) -> Event {
        Event::OrderPlaced {
            order_id: order(n),
            ticket_id: ticket(1),
            buyer: account(BUYER),
            seller: account(SELLER),
            amount_cents: price(),
            currency: Currency::Usd,
            idempotency_key: None,
            expires_at: at(900),
            at: at(0),
        }
    }

    fn started(p: u128, o: u128) -> Event {
        Event::PaymentStarted {
            payment_id: payment(p),
            order_id: order(o),
            ticket_id: ticket(1),
            amount_cents: price(),
            currency: Currency::Usd,
            idempotency_key: format!("k{p}"),
            at: at(10),
        }
    }

    fn start(p: u128, actor: u128, now: i64) -> ListingCommand {
        ListingCommand::Payment(PaymentCommand::Start {
            payment_id: payment(p),
            order_id: order(1),
            actor: Actor::user(account(actor)),
            idempotency_key: format!("k{p}"),
            at: at(now),
        })
    }

    fn settle(p: u128, outcome: PaymentOutcome, now: i64) -> ListingCommand {
        ListingCommand::Payment(PaymentCommand::Settle { payment_id: payment(p), outcome, at: at(now) })
    }

    fn succeeded() -> PaymentOutcome {
        PaymentOutcome::Succeeded { provider_ref: "pi_1".into() }
    }

    fn expired(o: u128) -> Event {
        Event::OrderCancelled {
            order_id: order(o),
            ticket_id: ticket(1),
            reason: CancelReason::Expired,
            by: None,
            at: at(900),
        }
    }

    #[test]
    fn paying_charges_the_amount_of_the_hold_and_awaits_the_provider() {
        let state = given::<Listing>([listed(), placed(1)]).when(start(1, BUYER, 10)).then([started(1, 1)]);
        assert_eq!(state.orders[&order(1)].status, OrderStatus::AwaitingPayment);
        assert_eq!(state.payments[&payment(1)].status, PaymentStatus::Pending);
    }

    #[test]
    fn only_the_buyer_may_pay_not_even_an_admin() {
        given::<Listing>([listed(), placed(1)])
            .when(start(1, SELLER, 10))
            .then_err(ListingError::Payment(PaymentError::NotBuyer));
        let admin_pays = ListingCommand::Payment(PaymentCommand::Start {
            payment_id: payment(1),
            order_id: order(1),
            actor: Actor::admin(account(9)),
            idempotency_key: "k".into(),
            at: at(10),
        });
        given::<Listing>([listed(), placed(1)])
            .when(admin_pays)
            .then_err(ListingError::Payment(PaymentError::NotBuyer));
    }

    #[test]
    fn paying_an_unknown_order_is_not_found() {
        given::<Listing>([listed()])
            .when(start(1, BUYER, 10))
            .then_err(ListingError::Payment(PaymentError::OrderNotFound));
    }

    #[test]
    fn a_cancelled_or_lapsed_order_cannot_be_paid() {
        given::<Listing>([listed(), placed(1), expired(1)])
            .when(start(1, BUYER, 901))
            .then_err(ListingError::Payment(PaymentError::OrderClosed));
        // Lapsed but the expiry has not been processed yet: still refused.
        given::<Listing>([listed(), placed(1)])
            .when(start(1, BUYER, 900))
            .then_err(ListingError::Payment(PaymentError::OrderClosed));
    }

    #[test]
    fn a_complete_order_cannot_be_paid_again() {
        let paid = Event::PaymentSucceeded {
            payment_id: payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            provider_ref: "pi_1".into(),
            at: at(11),
        };
        given::<Listing>([listed(), placed(1), started(1, 1), paid])
            .when(start(2, BUYER, 12))
            .then_err(ListingError::Payment(PaymentError::AlreadyPaid));
    }

    #[test]
    fn a_second_simultaneous_payment_is_refused_so_the_buyer_is_charged_once() {
        given::<Listing>([listed(), placed(1), started(1, 1)])
            .when(start(2, BUYER, 11))
            .then_err(ListingError::Payment(PaymentError::InProgress));
        assert_eq!(PaymentError::InProgress.code(), ErrorCode::Conflict);
    }

    #[test]
    fn the_same_idempotency_key_returns_the_first_payment_without_a_new_charge() {
        given::<Listing>([listed(), placed(1), started(1, 1)]).when(start(1, BUYER, 11)).then_nothing();
    }

    #[test]
    fn a_successful_charge_completes_the_order_and_sells_the_ticket() {
        let state = given::<Listing>([listed(), placed(1), started(1, 1)]).when(settle(1, succeeded(), 11)).then([
            Event::PaymentSucceeded {
                payment_id: payment(1),
                order_id: order(1),
                ticket_id: ticket(1),
                provider_ref: "pi_1".into(),
                at: at(11),
            },
        ]);
        assert_eq!(state.orders[&order(1)].status, OrderStatus::Complete);
        assert_eq!(state.ticket.map(|t| t.status), Some(TicketStatus::Sold));
        assert_eq!(state.payments[&payment(1)].status, PaymentStatus::Succeeded);
    }

    #[test]
    fn a_declined_charge_leaves_the_order_open_for_another_try() {
        let state = given::<Listing>([listed(), placed(1), started(1, 1)])
            .when(settle(1, PaymentOutcome::Failed { reason: "card_declined".into() }, 11))
            .then([Event::PaymentFailed {
                payment_id: payment(1),
                order_id: order(1),
                reason: "card_declined".into(),
                at: at(11),
            }]);
        assert_eq!(state.orders[&order(1)].status, OrderStatus::Created);
        assert_eq!(state.ticket.as_ref().map(|t| t.status), Some(TicketStatus::Reserved));
        assert_eq!(PaymentError::Declined.code(), ErrorCode::PaymentDeclined);
        given::<Listing>([
            listed(),
            placed(1),
            started(1, 1),
            Event::PaymentFailed {
                payment_id: payment(1),
                order_id: order(1),
                reason: "card_declined".into(),
                at: at(11),
            },
        ])
        .when(start(2, BUYER, 12))
        .then_ok();
    }

    #[test]
    fn an_asynchronous_payment_waits_for_the_webhook() {
        let state = given::<Listing>([listed(), placed(1), started(1, 1)])
            .when(settle(1, PaymentOutcome::Pending { provider_ref: "pi_1".into() }, 11))
            .then([Event::PaymentPending {
                payment_id: payment(1),
                order_id: order(1),
                provider_ref: "pi_1".into(),
                at: at(11),
            }]);
        assert_eq!(state.orders[&order(1)].status, OrderStatus::AwaitingPayment);
        assert_eq!(state.payments[&payment(1)].provider_ref.as_deref(), Some("pi_1"));
    }

    #[test]
    fn a_failed_asynchronous_payment_reopens_the_hold() {
        let pending = Event::PaymentPending {
            payment_id: payment(1),
            order_id: order(1),
            provider_ref: "pi_1".into(),
            at: at(11),
        };
        let (_, state) = given::<Listing>([listed(), placed(1), started(1, 1), pending])
            .when(settle(1, PaymentOutcome::Failed { reason: "insufficient_funds".into() }, 12))
            .then_ok();
        assert_eq!(state.orders[&order(1)].status, OrderStatus::Created);
        assert_eq!(state.payments[&payment(1)].status, PaymentStatus::Failed);
    }

    #[test]
    fn money_arriving_after_the_hold_expired_is_marked_for_refund_and_the_order_stays_cancelled() {
        let state = given::<Listing>([listed(), placed(1), started(1, 1), expired(1)])
            .when(settle(1, succeeded(), 950))
            .then([Event::LatePaymentReceived {
                payment_id: payment(1),
                order_id: order(1),
                provider_ref: "pi_1".into(),
                at: at(950),
            }]);
        assert!(state.payments[&payment(1)].refund_due);
        assert_eq!(state.orders[&order(1)].status, OrderStatus::Cancelled);
        assert_eq!(state.ticket.map(|t| t.status), Some(TicketStatus::Available));
    }

    #[test]
    fn late_money_never_takes_the_ticket_from_its_new_holder() {
        let second = Event::OrderPlaced {
            order_id: order(2),
            ticket_id: ticket(1),
            buyer: account(3),
            seller: account(SELLER),
            amount_cents: price(),
            currency: Currency::Usd,
            idempotency_key: None,
            expires_at: at(1800),
            at: at(920),
        };
        let state = given::<Listing>([listed(), placed(1), started(1, 1), expired(1), second])
            .when(settle(1, succeeded(), 950))
            .then_ok()
            .1;
        assert_eq!(state.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Reserved, Some(order(2)))));
    }

    #[test]
    fn a_refund_is_recorded_once() {
        let late = Event::LatePaymentReceived {
            payment_id: payment(1),
            order_id: order(1),
            provider_ref: "pi_1".into(),
            at: at(950),
        };
        let state = given::<Listing>([listed(), placed(1), started(1, 1), expired(1), late.clone()])
            .when(settle(1, PaymentOutcome::Refunded, 951))
            .then([Event::PaymentRefunded { payment_id: payment(1), order_id: order(1), at: at(951) }]);
        assert_eq!(state.payments[&payment(1)].status, PaymentStatus::Refunded);
        assert!(!state.payments[&payment(1)].refund_due);
        given::<Listing>([
            listed(),
            placed(1),
            started(1, 1),
            expired(1),
            late,
            Event::PaymentRefunded { payment_id: payment(1), order_id: order(1), at: at(951) },
        ])
        .when(settle(1, PaymentOutcome::Refunded, 952))
        .then_nothing();
    }

    #[test]
    fn a_repeated_success_changes_nothing() {
        let paid = Event::PaymentSucceeded {
            payment_id: payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            provider_ref: "pi_1".into(),
            at: at(11),
        };
        given::<Listing>([listed(), placed(1), started(1, 1), paid]).when(settle(1, succeeded(), 12)).then_nothing();
    }

    #[test]
    fn settling_an_unknown_payment_is_not_found() {
        given::<Listing>([listed(), placed(1)])
            .when(settle(1, succeeded(), 12))
            .then_err(ListingError::Payment(PaymentError::NotFound));
    }

    #[test]
    fn a_payment_started_before_expiry_wins_over_an_expiry_processed_after_it_succeeded() {
        let paid = Event::PaymentSucceeded {
            payment_id: payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            provider_ref: "pi_1".into(),
            at: at(899),
        };
        given::<Listing>([listed(), placed(1), started(1, 1), paid])
            .when(ListingCommand::Order(OrderCommand::Expire { order_id: order(1), at: at(900) }))
            .then_nothing();
    }
}
