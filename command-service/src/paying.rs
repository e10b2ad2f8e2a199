//! Paying for an order, wherever it lives: charging, settling, refunding late money,
//! reconciling with the provider and applying its webhooks. The rules are the domain's
//! (`domain::listing::payment`), decided inside the order's own boundary: a ticket's listing, or
//! a show's order subject through the show's desk ([`Till`]).

use domain::{
    AccountId, Actor, Listing, ListingCommand, OrderId, Payment, PaymentCommand, PaymentError, PaymentId,
    PaymentOutcome, PaymentStatus, ShowCommand, ShowId, TicketId, subjects,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Outcome, Success};
use crate::expiry::Handled;
use crate::listings::{WebhookEffect, listing};
use crate::payments::webhook::{Notice, WebhookEvent};
use crate::payments::{ChargeRequest, ChargeResult, Lookup, LookupRequest, ProviderError};
use crate::{CommandError, Refused, Service, now};

/// How long a payment attempt may wait for its provider before a retry with the same key takes
/// over (longer than the provider client's timeout).
const IN_FLIGHT: time::Duration = time::Duration::seconds(30);

/// Where an order and its payments are decided (and so where a command about the order goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Till {
    /// A ticket's listing (`ticketing.ticket.<ticket>.>`).
    Listing(TicketId),
    /// An order subject of a show (`ticketing.show.<show>.order.<order>`), through its desk.
    Show(ShowId),
}

impl Till {
    fn ticket(self) -> Option<TicketId> {
        match self {
            Self::Listing(ticket) => Some(ticket),
            Self::Show(_) => None,
        }
    }

    fn show(self) -> Option<ShowId> {
        match self {
            Self::Listing(_) => None,
            Self::Show(show) => Some(show),
        }
    }
}

/// What a payment's reconciliation schedule carries to its firing: the payment, and where its
/// order lives (a ticket's listing, or a show; the show's order is named too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReconcileDue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<TicketId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_id: Option<ShowId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub payment_id: PaymentId,
}

impl ReconcileDue {
    pub(crate) fn till(&self) -> Option<Till> {
        match (self.show_id, self.ticket_id) {
            (Some(show), _) => Some(Till::Show(show)),
            (None, Some(ticket)) => Some(Till::Listing(ticket)),
            (None, None) => None,
        }
    }
}

/// An order's payments as a decision or a fresh read left them.
struct Paid {
    /// The payment asked about.
    payment: Option<Payment>,
    /// The order's buyer, when the order exists.
    buyer: Option<AccountId>,
    /// The order's latest payment attempt.
    latest: Option<PaymentId>,
    /// Every payment attempt of the order.
    payments: Vec<Payment>,
    /// The stream position reflecting it.
    position: u64,
    /// How many events the boundary holds (listings; 0 for shows).
    event_count: u64,
    /// Whether the decision wrote an event.
    wrote: bool,
}

impl Paid {
    fn from_listing(listing: &Listing, order_id: Option<OrderId>, payment_id: Option<PaymentId>) -> Self {
        let payment = payment_id.and_then(|id| listing.payments.get(&id)).cloned();
        let order_id = order_id.or(payment.as_ref().map(|p| p.order_id));
        let order = order_id.and_then(|id| listing.orders.get(&id));
        Self {
            payment,
            buyer: order.map(|o| o.buyer),
            latest: order.and_then(|o| o.payment),
            payments: listing.payments.values().filter(|p| Some(p.order_id) == order_id).cloned().collect(),
            position: 0,
            event_count: 0,
            wrote: false,
        }
    }

    fn from_show(view: crate::desk::OrderView, payment_id: Option<PaymentId>, position: u64) -> Self {
        Self {
            payment: payment_id.and_then(|id| view.payment(id)).cloned(),
            buyer: view.order.as_ref().map(|o| o.placed.buyer),
            latest: view.order.as_ref().and_then(|o| o.payment),
            wrote: view.wrote,
            payments: view.payments,
            position,
            event_count: 0,
        }
    }

    /// The client's answer about the payment.
    fn outcome(&self, till: Till) -> Result<Success, CommandError> {
        let payment = self.payment.as_ref().ok_or_else(|| CommandError::refused(PaymentError::NotFound))?;
        Ok(Success {
            position: self.position,
            event_count: self.event_count,
            result: Outcome::Payment {
                payment_id: payment.id,
                order_id: payment.order_id,
                ticket_id: till.ticket(),
                event_id: till.show(),
                status: payment.status,
                provider_ref: payment.provider_ref.clone(),
                amount_cents: payment.amount_cents,
            },
        })
    }
}

/// Why a charge the provider answered did not go through: decides the caller's error. (The
/// event keeps the provider's reason as text; this is never read back from it.)
enum ChargeFailed {
    /// The provider does not know the token: the caller's input (`BAD_USER_INPUT`, `token`).
    InvalidToken,
    /// The bank said no (`PAYMENT_DECLINED`).
    Declined,
}

fn declined() -> CommandError {
    CommandError::refused(PaymentError::Declined)
}

impl Service {
    /// Decides a payment command where the order lives.
    async fn decide_payment(&self, till: Till, command: PaymentCommand) -> Result<Paid, CommandError> {
        let payment_id = match &command {
            PaymentCommand::Start { payment_id, .. } | PaymentCommand::Settle { payment_id, .. } => *payment_id,
        };
        match till {
            Till::Listing(ticket) => {
                let done =
                    self.execute::<Listing, _>(&listing(ticket), |_| ListingCommand::Payment(command.clone())).await?;
                let mut paid = Paid::from_listing(&done.state, None, Some(payment_id));
                (paid.position, paid.event_count, paid.wrote) =
                    (done.position, done.event_count, !done.events.is_empty());
                Ok(paid)
            }
            Till::Show(show) => {
                let seen = self.inner.desks.order(show, ShowCommand::Payment(command)).await?;
                Ok(Paid::from_show(seen.value, Some(payment_id), seen.position))
            }
        }
    }

    /// An order's payments as they are now (read after this call).
    async fn read_payments(
        &self,
        till: Till,
        order_id: Option<OrderId>,
        payment_id: Option<PaymentId>,
    ) -> Result<Paid, CommandError> {
        match till {
            Till::Listing(ticket) => {
                let loaded = self.inner.store.load::<Listing>(&subjects::listing(ticket)).await?;
                let mut paid = Paid::from_listing(&loaded.state, order_id, payment_id);
                paid.position = loaded.last_sequence;
                paid.event_count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
                Ok(paid)
            }
            Till::Show(show) => {
                let order_id =
                    order_id.ok_or_else(|| CommandError::Internal("a show's payment without its order".into()))?;
                let seen = self.inner.desks.find(show, order_id).await?;
                Ok(Paid::from_show(seen.value, payment_id, seen.position))
            }
        }
    }

    pub(crate) async fn pay_order(
        &self,
        actor: Actor,
        order_id: OrderId,
        hints: (Option<TicketId>, Option<ShowId>),
        token: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Success, CommandError> {
        if !self.inner.provider.accepts_token(token) {
            return Err(Refused::UnknownToken.into());
        }
        if let Some(key) = idempotency_key {
            // The payment id is derived from the key: a replay finds the first attempt where the
            // order lives, which is always decided on a fresh state before "already done" is
            // answered.
            self.claim_idempotency_key(actor.id, key, &format!("payOrder {order_id} {token}")).await?;
        }
        let till = self.order_home(actor, order_id, hints.0, hints.1).await?;
        let key = idempotency_key.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let payment_id = PaymentId::for_idempotency_key(order_id, &key);
        let start = PaymentCommand::Start { payment_id, order_id, actor, idempotency_key: key.clone(), at: now() };
        let started = self.decide_payment(till, start).await?;
        let payment = started.payment.clone().ok_or_else(|| CommandError::Internal("payment vanished".into()))?;
        if !started.wrote {
            // The same key again: the first attempt's result, waiting for it while it is still
            // talking to the provider. An attempt abandoned long ago (a crash, a lost reply) is
            // resumed below with the same idempotency key, which cannot charge twice.
            if let Some(first) = self.first_attempt(till, order_id, payment_id).await? {
                return first;
            }
        }
        let request = ChargeRequest {
            payment_id,
            order_id,
            ticket_id: till.ticket(),
            event_id: till.show(),
            amount_cents: payment.amount_cents,
            currency: payment.currency.code().to_lowercase(),
            token: token.to_owned(),
            idempotency_key: payment_id.to_string(),
        };
        let (outcome, failed) = match self.inner.provider.charge(request).await {
            Ok(ChargeResult::Succeeded { provider_ref }) => (PaymentOutcome::Succeeded { provider_ref }, None),
            Ok(ChargeResult::Pending { provider_ref }) => (PaymentOutcome::Pending { provider_ref }, None),
            Ok(ChargeResult::Declined { reason }) => (PaymentOutcome::Failed { reason }, Some(ChargeFailed::Declined)),
            Err(ProviderError::InvalidToken) => {
                (PaymentOutcome::Failed { reason: "invalid_token".into() }, Some(ChargeFailed::InvalidToken))
            }
            Err(ProviderError::Unavailable(detail)) => {
                // Whether it charged is unknown (a timeout after charging looks just like this):
                // recording a failure would let the buyer pay again and be charged twice. The
                // payment stays pending, the order awaits payment, and reconciliation asks the
                // provider once the payment is old enough.
                tracing::warn!(%payment_id, %detail, "payment outcome unknown; left pending for reconciliation");
                return started.outcome(till);
            }
        };
        let settled = self.settle(till, payment_id, outcome).await?;
        let refunded = settled.payment.as_ref().is_some_and(|p| p.refund_due || p.status == PaymentStatus::Refunded);
        // What was written is answered with its position, refusals included.
        let written = |error: CommandError| error.written_at(settled.position);
        match failed {
            // The hold lapsed while the provider was charging: the money went back.
            None if refunded => Err(written(CommandError::refused(PaymentError::OrderClosed))),
            None => settled.outcome(till),
            Some(ChargeFailed::InvalidToken) => Err(written(Refused::UnknownToken.into())),
            Some(ChargeFailed::Declined) => Err(written(declined())),
        }
    }

    /// Waits while the first attempt with this key is still in flight (started less than
    /// [`IN_FLIGHT`] ago, no provider answer yet). Returns its answer once it has one, or `None`
    /// when the attempt looks abandoned and should be resumed.
    async fn first_attempt(
        &self,
        till: Till,
        order_id: OrderId,
        payment_id: PaymentId,
    ) -> Result<Option<Result<Success, CommandError>>, CommandError> {
        loop {
            let paid = self.read_payments(till, Some(order_id), Some(payment_id)).await?;
            let Some(payment) = &paid.payment else { return Ok(None) };
            let answered = payment.status != PaymentStatus::Pending || payment.provider_ref.is_some();
            if answered {
                let refunded = payment.refund_due || payment.status == PaymentStatus::Refunded;
                return Ok(Some(match payment.status {
                    PaymentStatus::Failed => Err(declined().written_at(paid.position)),
                    _ if refunded => Err(CommandError::refused(PaymentError::OrderClosed).written_at(paid.position)),
                    _ => paid.outcome(till),
                }));
            }
            if now() - payment.created_at > IN_FLIGHT {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Records a provider outcome, then does what follows from it: a completed order frees the
    /// buyer's slot; money that came too late goes back.
    async fn settle(&self, till: Till, payment_id: PaymentId, outcome: PaymentOutcome) -> Result<Paid, CommandError> {
        let settled = self.decide_payment(till, PaymentCommand::Settle { payment_id, outcome, at: now() }).await?;
        let Some(payment) = settled.payment.clone() else { return Ok(settled) };
        if payment.status == PaymentStatus::Succeeded
            && !payment.refund_due
            && let Some(buyer) = settled.buyer
        {
            self.release_slot(buyer, payment.order_id).await;
        }
        if payment.refund_due {
            return self.refund(till, &payment).await;
        }
        Ok(settled)
    }

    /// Gives late money back through the provider, then records the refund.
    async fn refund(&self, till: Till, payment: &Payment) -> Result<Paid, CommandError> {
        let fresh = self.read_payments(till, Some(payment.order_id), Some(payment.id)).await?;
        let Some(provider_ref) = fresh.payment.and_then(|p| p.provider_ref) else {
            return Err(CommandError::Internal("refund without a provider reference".into()));
        };
        self.inner
            .provider
            .refund(provider_ref, format!("refund-{}", payment.id))
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let refunded = PaymentCommand::Settle { payment_id: payment.id, outcome: PaymentOutcome::Refunded, at: now() };
        self.decide_payment(till, refunded).await
    }

    /// How old a pending payment must be before the provider is asked about it.
    pub(crate) fn reconcile_after(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.inner.config.payment_reconcile_after_seconds).unwrap_or(60))
    }

    /// One reconciliation firing: a refund still due is made; a payment still pending (its answer
    /// lost, or still processing) is settled from what the provider says. Safe with several
    /// replicas and repeats: every outcome is decided where the order lives, and the provider
    /// calls carry idempotency keys.
    pub(crate) async fn handle_reconcile(&self, due: &ReconcileDue) -> Result<Handled, CommandError> {
        let Some(till) = due.till() else { return Ok(Handled::Done) };
        let paid = self.read_payments(till, due.order_id, Some(due.payment_id)).await?;
        let Some(payment) = paid.payment else { return Ok(Handled::Done) };
        if payment.refund_due {
            self.refund(till, &payment).await?;
            reconciled("refunded");
            return Ok(Handled::Done);
        }
        if payment.status != PaymentStatus::Pending {
            return Ok(Handled::Done);
        }
        let after = self.reconcile_after();
        let again =
            || Handled::Later(std::time::Duration::try_from(after).unwrap_or(std::time::Duration::from_secs(60)));
        let age = now() - payment.created_at;
        if age < after {
            return Ok(Handled::Later(std::time::Duration::try_from(after - age).unwrap_or_default()));
        }
        let request = LookupRequest {
            payment_id: payment.id,
            idempotency_key: payment.id.to_string(),
            provider_ref: payment.provider_ref.clone(),
        };
        let outcome = match self.inner.provider.lookup(request).await {
            Ok(Lookup::Charged { provider_ref }) => PaymentOutcome::Succeeded { provider_ref },
            Ok(Lookup::Failed { reason }) => PaymentOutcome::Failed { reason },
            Ok(Lookup::NotCharged)
                if age
                    < time::Duration::try_from(self.inner.provider.not_charged_is_final_after())
                        .unwrap_or(time::Duration::ZERO) =>
            {
                // Not believed yet (the provider's index may lag): ask again later.
                reconciled("retry");
                return Ok(again());
            }
            Ok(Lookup::NotCharged) => PaymentOutcome::Failed { reason: "not_charged".into() },
            Ok(Lookup::Processing { provider_ref }) => {
                // Still settling: remember its reference and ask again later.
                self.settle(till, due.payment_id, PaymentOutcome::Pending { provider_ref }).await?;
                reconciled("still_processing");
                return Ok(again());
            }
            Err(error) => {
                tracing::warn!(payment = %due.payment_id, %error, "reconciliation could not reach the provider");
                reconciled("provider_unreachable");
                return Ok(again());
            }
        };
        tracing::info!(payment = %due.payment_id, ?outcome, "payment reconciled with the provider");
        let action =
            if matches!(outcome, PaymentOutcome::Succeeded { .. }) { "settled_paid" } else { "settled_failed" };
        self.settle(till, due.payment_id, outcome).await?;
        reconciled(action);
        Ok(Handled::Done)
    }

    pub(crate) async fn apply_webhook(&self, event: &WebhookEvent) -> Result<WebhookEffect, CommandError> {
        let settlement = match event.notice() {
            Notice::Settles(settlement) => settlement,
            Notice::Ignored(why) => {
                tracing::info!(event = %event.id, kind = %event.kind, why, "webhook ignored");
                return Ok(WebhookEffect::Ignored);
            }
        };
        let order_id = settlement.order_id;
        // A webhook comes after its payment started, which is written on the order's subject.
        let Some(till) = self.till_in_stream(order_id, settlement.ticket_hint, settlement.event_hint).await? else {
            tracing::info!(event = %event.id, %order_id, "webhook for an unknown order ignored");
            return Ok(WebhookEffect::Ignored);
        };
        let paid = match self.read_payments(till, Some(order_id), None).await {
            Ok(paid) => paid,
            Err(CommandError::Refused { .. }) => return Ok(WebhookEffect::Ignored),
            Err(error) => return Err(error),
        };
        let payment = paid
            .payments
            .iter()
            .find(|p| p.provider_ref.as_deref() == Some(settlement.provider_ref.as_str()))
            .or_else(|| settlement.payment_hint.and_then(|id| paid.payments.iter().find(|p| p.id == id)))
            .or_else(|| paid.latest.and_then(|id| paid.payments.iter().find(|p| p.id == id)));
        let Some(payment) = payment else {
            tracing::info!(event = %event.id, %order_id, "webhook for an order without payments ignored");
            return Ok(WebhookEffect::Ignored);
        };
        // Money that moves must be this payment's, in full.
        let same_amount = |amount: i64| amount == payment.amount_cents;
        let same_currency = |currency: &str| currency.eq_ignore_ascii_case(payment.currency.code());
        let matches = match (settlement.amount_cents, settlement.currency.as_deref()) {
            (Some(amount), Some(currency)) => same_amount(amount) && same_currency(currency),
            (None, None) => !settlement.moves_money(),
            (Some(amount), None) => !settlement.moves_money() && same_amount(amount),
            (None, Some(currency)) => !settlement.moves_money() && same_currency(currency),
        };
        if !matches {
            tracing::error!(
                event = %event.id, payment_id = %payment.id, amount = ?settlement.amount_cents,
                currency = ?settlement.currency, expected = payment.amount_cents,
                "webhook amount or currency is not the payment's; refused"
            );
            return Ok(WebhookEffect::Mismatch);
        }
        let settled = self.settle(till, payment.id, settlement.outcome).await?;
        Ok(WebhookEffect::Applied(settled.position))
    }
}

/// Counts one action of the payment reconciler (`ticketing_reconciler_actions_total{action}`).
fn reconciled(action: &'static str) {
    metrics::counter!("ticketing_reconciler_actions_total", "action" => action).increment(1);
}
