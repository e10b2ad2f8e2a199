//! Tickets, orders, payments and payment webhooks: everything decided inside a listing.

use async_nats::jetstream::kv;
use domain::{
    Account, AccountCommand, AccountId, Actor, Listing, ListingCommand, Order, OrderCommand, OrderError, OrderId,
    PaymentCommand, PaymentError, PaymentId, PaymentOutcome, PaymentStatus, Price, TicketCommand, TicketError,
    TicketId, Title, subjects,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Outcome, Success};
use crate::expiry::Handled;
use crate::payments::webhook::{self, Notice, WebhookEvent};
use crate::payments::{ChargeRequest, ChargeResult, Lookup, LookupRequest, ProviderError};
use crate::{CommandError, Executed, Refused, Service, Target, now};

/// How long a payment attempt may wait for its provider before a retry with the same key takes
/// over (longer than the provider client's timeout).
const IN_FLIGHT: time::Duration = time::Duration::seconds(30);

/// The listing boundary of a ticket.
fn listing(ticket: TicketId) -> Target {
    Target { boundary: subjects::listing(ticket), wildcard: true }
}

/// What an expiry schedule carries to its firing: the order, and the ticket or the show it is on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExpiryDue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<TicketId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_id: Option<domain::ShowId>,
    pub order_id: OrderId,
    pub buyer: AccountId,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: domain::Timestamp,
}

/// What becomes of a hold slot when the hold's own append failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotAfterFailedHold {
    /// Certainly not placed (refused, or lost every race): give the slot back now. Should that
    /// fail, the slot's own expiry gives it back.
    GiveBack,
    /// The hold may have been written (a lost acknowledgement, a store timeout): the slot stays,
    /// and its expiry either expires the hold or, finding none, gives the slot back.
    Keep,
}

pub(crate) fn slot_after_failed_hold(error: &CommandError) -> SlotAfterFailedHold {
    match error {
        // An event that could not be encoded was never sent.
        CommandError::Refused { .. }
        | CommandError::Contended
        | CommandError::Store(event_store::StoreError::Encode(_)) => SlotAfterFailedHold::GiveBack,
        CommandError::Store(_) | CommandError::Internal(_) => SlotAfterFailedHold::Keep,
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

/// What a payment's reconciliation schedule carries to its firing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReconcileDue {
    pub ticket_id: TicketId,
    pub payment_id: PaymentId,
}

fn ticket_outcome(done: &Executed<Listing>) -> Result<Success, CommandError> {
    let ticket = done.state.ticket.as_ref().ok_or_else(|| CommandError::refused(TicketError::NotFound))?;
    Ok(Success {
        position: done.position,
        event_count: done.event_count,
        result: Outcome::Ticket { ticket_id: ticket.id, status: ticket.status },
    })
}

fn order_outcome(done: &Executed<Listing>, order_id: OrderId) -> Result<Success, CommandError> {
    let order = done.state.orders.get(&order_id).ok_or_else(|| CommandError::refused(OrderError::NotFound))?;
    Ok(Success { position: done.position, event_count: done.event_count, result: order_result(order) })
}

fn order_result(order: &Order) -> Outcome {
    Outcome::Order {
        order_id: order.id,
        ticket_id: order.ticket_id,
        status: order.status,
        cancel_reason: order.cancel_reason,
        expires_at: order.expires_at,
        amount_cents: order.amount.cents(),
    }
}

fn payment_outcome(done: &Executed<Listing>, payment_id: PaymentId) -> Result<Success, CommandError> {
    let payment = done.state.payments.get(&payment_id).ok_or_else(|| CommandError::refused(PaymentError::NotFound))?;
    Ok(Success {
        position: done.position,
        event_count: done.event_count,
        result: Outcome::Payment {
            payment_id,
            order_id: payment.order_id,
            ticket_id: payment.ticket_id,
            status: payment.status,
            provider_ref: payment.provider_ref.clone(),
            amount_cents: payment.amount.cents(),
        },
    })
}

fn declined() -> CommandError {
    CommandError::refused(PaymentError::Declined)
}

impl Service {
    pub(crate) async fn create_ticket(
        &self,
        actor: Actor,
        title: &str,
        price_cents: i64,
    ) -> Result<Success, CommandError> {
        let title = Title::parse(title).map_err(|e| CommandError::refused(TicketError::from(e)))?;
        let price = Price::from_cents(price_cents).map_err(|e| CommandError::refused(TicketError::from(e)))?;
        // Every listing stays in the stream for good: a spammer gets a few a minute, not millions.
        let limit = self.inner.config.create_ticket_per_minute;
        if limit > 0 {
            let key = format!("listing.{}.{}", actor.id, crate::throttle::minute(now()));
            self.admit(&key, limit, "too many listings this minute; try again shortly").await?;
        }
        let ticket_id = TicketId(Uuid::new_v4());
        let done = self
            .execute::<Listing, _>(&listing(ticket_id), |_| {
                ListingCommand::Ticket(TicketCommand::List {
                    ticket_id,
                    seller: actor.id,
                    title: title.clone(),
                    price,
                    at: now(),
                })
            })
            .await?;
        ticket_outcome(&done)
    }

    pub(crate) async fn update_ticket(
        &self,
        actor: Actor,
        ticket_id: TicketId,
        title: Option<&str>,
        price_cents: Option<i64>,
    ) -> Result<Success, CommandError> {
        let title = title.map(Title::parse).transpose().map_err(|e| CommandError::refused(TicketError::from(e)))?;
        let price =
            price_cents.map(Price::from_cents).transpose().map_err(|e| CommandError::refused(TicketError::from(e)))?;
        let done = self
            .execute::<Listing, _>(&listing(ticket_id), |_| {
                ListingCommand::Ticket(TicketCommand::Update { actor, title: title.clone(), price, at: now() })
            })
            .await?;
        ticket_outcome(&done)
    }

    /// Places a hold: the buyer's slot, then the hold itself (see the README, "How a hold is
    /// written"). The slot's claim arms the hold's expiry (see [`crate::expiry`]).
    pub(crate) async fn create_order(
        &self,
        actor: Actor,
        ticket_id: TicketId,
        idempotency_key: Option<&str>,
    ) -> Result<Success, CommandError> {
        let (order_id, replayed) = match idempotency_key {
            Some(key) => {
                let replayed = self.claim_idempotency_key(actor.id, key, &format!("createOrder {ticket_id}")).await?;
                (OrderId::for_idempotency_key(actor.id, ticket_id, key), replayed)
            }
            None => (OrderId(Uuid::new_v4()), false),
        };
        let place = |expires_at: domain::Timestamp| {
            move |_: &Listing| {
                ListingCommand::Order(OrderCommand::Place {
                    order_id,
                    buyer: actor.id,
                    expires_at,
                    idempotency_key: idempotency_key.map(str::to_owned),
                    at: now(),
                })
            }
        };
        let wanted_expiry = now() + self.inner.config.hold();

        // Refuse early what is refused anyway (unknown, taken, own ticket), before taking a slot;
        // a retry with the same key finds its order here. When this replica's cached listing
        // accepts the hold, that is enough to go on (the hold's own append is guarded); anything
        // else is checked on a fresh load.
        let boundary = subjects::listing(ticket_id);
        // A replay's first request may have been answered by another replica: only a fresh load
        // is sure to show what it wrote.
        let accepted = !replayed
            && self.inner.cache.get::<Listing>(&boundary).is_some_and(|cached| {
                domain::Aggregate::decide(&cached.state, place(wanted_expiry)(&cached.state))
                    .is_ok_and(|events| !events.is_empty())
            });
        if !accepted {
            let store = self.inner.store.clone();
            let shared = self.inner.loads.load(&boundary, {
                let (store, boundary) = (store.clone(), boundary.clone());
                move || {
                    let (store, boundary) = (store.clone(), boundary.clone());
                    async move { store.load::<Listing>(&boundary).await.ok().map(std::sync::Arc::new) }
                }
            });
            let before = match shared.await {
                Some(loaded) => loaded,
                None => std::sync::Arc::new(store.load::<Listing>(&boundary).await?),
            };
            let decided = domain::Aggregate::decide(&before.state, place(wanted_expiry)(&before.state))
                .map_err(CommandError::refused)?;
            if decided.is_empty() {
                let event_count = u64::try_from(before.history.len()).unwrap_or(u64::MAX);
                return order_outcome(
                    &Executed {
                        state: before.state.clone(),
                        events: vec![],
                        position: before.last_sequence,
                        event_count,
                    },
                    order_id,
                );
            }
        }

        let max_active = usize::try_from(self.inner.config.max_active_holds).unwrap_or(usize::MAX);
        let slot_target = Target { boundary: subjects::account(actor.id), wildcard: false };
        let claimed = self
            .execute::<Account, _>(&slot_target, |_| AccountCommand::ClaimHoldSlot {
                order_id,
                ticket_id: Some(ticket_id),
                show_id: None,
                expires_at: wanted_expiry,
                max_active,
                at: now(),
            })
            .await?;
        // A retry whose first attempt's slot is still claimed keeps that slot's time: the expiry
        // armed from the claim fires exactly when the hold lapses.
        let expires_at = claimed.state.hold_slots.get(&order_id).map_or(wanted_expiry, |slot| slot.expires_at);

        match self.execute::<Listing, _>(&listing(ticket_id), place(expires_at)).await {
            Ok(done) => order_outcome(&done, order_id),
            Err(error) => {
                if slot_after_failed_hold(&error) == SlotAfterFailedHold::GiveBack {
                    // Unless a simultaneous request with the same key placed it meanwhile.
                    let placed = self
                        .inner
                        .store
                        .load::<Listing>(&boundary)
                        .await
                        .map(|l| l.state.orders.contains_key(&order_id));
                    if !matches!(placed, Ok(true)) {
                        self.release_slot(actor.id, order_id).await;
                    }
                }
                Err(error)
            }
        }
    }

    /// Gives a hold slot back, logging a failure: for callers whose slot also has an expiry that
    /// gives it back later.
    pub(crate) async fn release_slot(&self, buyer: AccountId, order_id: OrderId) {
        if let Err(error) = self.give_slot_back(buyer, order_id).await {
            tracing::warn!(%buyer, %order_id, %error, "could not release a hold slot; its expiry releases it");
        }
    }

    /// Gives a hold slot back (nothing to do when it is not held).
    ///
    /// # Errors
    /// When the release could not be written.
    pub(crate) async fn give_slot_back(&self, buyer: AccountId, order_id: OrderId) -> Result<(), CommandError> {
        let target = Target { boundary: subjects::account(buyer), wildcard: false };
        match self.execute::<Account, _>(&target, |_| AccountCommand::ReleaseHoldSlot { order_id, at: now() }).await {
            // An account that does not exist holds no slot.
            Ok(_) | Err(CommandError::Refused { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The ticket an order belongs to: the caller's hint, or the stream's order subject.
    async fn resolve_ticket(&self, order_id: OrderId, hint: Option<TicketId>) -> Result<TicketId, CommandError> {
        if let Some(ticket) = hint {
            return Ok(ticket);
        }
        let history = self.inner.store.read_counted(&subjects::order_anywhere(order_id)).await?;
        history
            .first()
            .and_then(|e| subjects::ticket_of(&e.subject))
            .ok_or_else(|| CommandError::refused(OrderError::NotFound))
    }

    pub(crate) async fn cancel_order(
        &self,
        actor: Actor,
        order_id: OrderId,
        ticket_hint: Option<TicketId>,
    ) -> Result<Success, CommandError> {
        let ticket_id = self.resolve_ticket(order_id, ticket_hint).await?;
        let done = self
            .execute::<Listing, _>(&listing(ticket_id), |_| {
                ListingCommand::Order(OrderCommand::Cancel { order_id, actor, at: now() })
            })
            .await?;
        if let Some(order) = done.state.orders.get(&order_id) {
            self.release_slot(order.buyer, order_id).await;
        }
        order_outcome(&done, order_id)
    }

    pub(crate) async fn expire_order(
        &self,
        ticket_id: TicketId,
        due: &ExpiryDue,
    ) -> Result<Executed<Listing>, CommandError> {
        self.execute::<Listing, _>(&listing(ticket_id), |_| {
            ListingCommand::Order(OrderCommand::Expire { order_id: due.order_id, at: now() })
        })
        .await
    }

    pub(crate) async fn pay_order(
        &self,
        actor: Actor,
        order_id: OrderId,
        ticket_hint: Option<TicketId>,
        token: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Success, CommandError> {
        if !self.inner.provider.accepts_token(token) {
            return Err(Refused::UnknownToken.into());
        }
        if let Some(key) = idempotency_key {
            // The payment id is derived from the key: a replay finds the first attempt in the
            // listing, which is always decided on a fresh load before "already done" is answered.
            self.claim_idempotency_key(actor.id, key, &format!("payOrder {order_id} {token}")).await?;
        }
        let ticket_id = self.resolve_ticket(order_id, ticket_hint).await?;
        let key = idempotency_key.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let payment_id = PaymentId::for_idempotency_key(order_id, &key);
        let started = self
            .execute::<Listing, _>(&listing(ticket_id), |_| {
                ListingCommand::Payment(PaymentCommand::Start {
                    payment_id,
                    order_id,
                    actor,
                    idempotency_key: key.clone(),
                    at: now(),
                })
            })
            .await?;
        let payment =
            started.state.payments.get(&payment_id).ok_or_else(|| CommandError::Internal("payment vanished".into()))?;
        if started.events.is_empty() {
            // The same key again: the first attempt's result, waiting for it while it is still
            // talking to the provider. An attempt abandoned long ago (a crash, a lost reply) is
            // resumed below with the same idempotency key, which cannot charge twice.
            if let Some(first) = self.first_attempt(ticket_id, payment_id).await? {
                return first;
            }
        }
        let request = ChargeRequest {
            payment_id,
            order_id,
            ticket_id,
            amount_cents: payment.amount.cents(),
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
                return payment_outcome(&started, payment_id);
            }
        };
        let settled = self.settle(ticket_id, payment_id, outcome).await?;
        let refunded = settled
            .state
            .payments
            .get(&payment_id)
            .is_some_and(|p| p.refund_due || p.status == PaymentStatus::Refunded);
        // What was written is answered with its position, refusals included.
        let written = |error: CommandError| error.written_at(settled.position);
        match failed {
            // The hold lapsed while the provider was charging: the money went back.
            None if refunded => Err(written(CommandError::refused(PaymentError::OrderClosed))),
            None => payment_outcome(&settled, payment_id),
            Some(ChargeFailed::InvalidToken) => Err(written(Refused::UnknownToken.into())),
            Some(ChargeFailed::Declined) => Err(written(declined())),
        }
    }

    /// Waits while the first attempt with this key is still in flight (started less than
    /// [`IN_FLIGHT`] ago, no provider answer yet). Returns its answer once it has one, or `None`
    /// when the attempt looks abandoned and should be resumed.
    async fn first_attempt(
        &self,
        ticket_id: TicketId,
        payment_id: PaymentId,
    ) -> Result<Option<Result<Success, CommandError>>, CommandError> {
        loop {
            let loaded = self.inner.store.load::<Listing>(&subjects::listing(ticket_id)).await?;
            let event_count = u64::try_from(loaded.history.len()).unwrap_or(u64::MAX);
            let Some(payment) = loaded.state.payments.get(&payment_id) else { return Ok(None) };
            let answered = payment.status != PaymentStatus::Pending || payment.provider_ref.is_some();
            if answered {
                let done = Executed {
                    state: loaded.state.clone(),
                    events: vec![],
                    position: loaded.last_sequence,
                    event_count,
                };
                let refunded = payment.refund_due || payment.status == PaymentStatus::Refunded;
                return Ok(Some(match payment.status {
                    PaymentStatus::Failed => Err(declined().written_at(loaded.last_sequence)),
                    _ if refunded => {
                        Err(CommandError::refused(PaymentError::OrderClosed).written_at(loaded.last_sequence))
                    }
                    _ => payment_outcome(&done, payment_id),
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
    async fn settle(
        &self,
        ticket_id: TicketId,
        payment_id: PaymentId,
        outcome: PaymentOutcome,
    ) -> Result<Executed<Listing>, CommandError> {
        let settled = self
            .execute::<Listing, _>(&listing(ticket_id), |_| {
                ListingCommand::Payment(PaymentCommand::Settle { payment_id, outcome: outcome.clone(), at: now() })
            })
            .await?;
        let Some(payment) = settled.state.payments.get(&payment_id) else { return Ok(settled) };
        if payment.status == PaymentStatus::Succeeded
            && !payment.refund_due
            && let Some(order) = settled.state.orders.get(&payment.order_id)
        {
            self.release_slot(order.buyer, order.id).await;
        }
        if payment.refund_due {
            return self.refund(ticket_id, payment_id).await;
        }
        Ok(settled)
    }

    /// Gives late money back through the provider, then records the refund.
    async fn refund(&self, ticket_id: TicketId, payment_id: PaymentId) -> Result<Executed<Listing>, CommandError> {
        let loaded = self.inner.store.load::<Listing>(&subjects::listing(ticket_id)).await?;
        let Some(provider_ref) = loaded.state.payments.get(&payment_id).and_then(|p| p.provider_ref.clone()) else {
            return Err(CommandError::Internal("refund without a provider reference".into()));
        };
        self.inner
            .provider
            .refund(provider_ref, format!("refund-{payment_id}"))
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        self.execute::<Listing, _>(&listing(ticket_id), |_| {
            ListingCommand::Payment(PaymentCommand::Settle { payment_id, outcome: PaymentOutcome::Refunded, at: now() })
        })
        .await
    }

    /// How old a pending payment must be before the provider is asked about it.
    pub(crate) fn reconcile_after(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.inner.config.payment_reconcile_after_seconds).unwrap_or(60))
    }

    /// One reconciliation firing: a refund still due is made; a payment still pending (its answer
    /// lost, or still processing) is settled from what the provider says. Safe with several
    /// replicas and repeats: every outcome is decided in the listing, and the provider calls
    /// carry idempotency keys.
    pub(crate) async fn handle_reconcile(&self, due: &ReconcileDue) -> Result<Handled, CommandError> {
        let loaded = self.inner.store.load::<Listing>(&subjects::listing(due.ticket_id)).await?;
        let Some(payment) = loaded.state.payments.get(&due.payment_id) else { return Ok(Handled::Done) };
        if payment.refund_due {
            self.refund(due.ticket_id, due.payment_id).await?;
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
                return Ok(again());
            }
            Ok(Lookup::NotCharged) => PaymentOutcome::Failed { reason: "not_charged".into() },
            Ok(Lookup::Processing { provider_ref }) => {
                // Still settling: remember its reference and ask again later.
                self.settle(due.ticket_id, due.payment_id, PaymentOutcome::Pending { provider_ref }).await?;
                return Ok(again());
            }
            Err(error) => {
                tracing::warn!(payment = %due.payment_id, %error, "reconciliation could not reach the provider");
                return Ok(again());
            }
        };
        tracing::info!(payment = %due.payment_id, ?outcome, "payment reconciled with the provider");
        self.settle(due.ticket_id, due.payment_id, outcome).await?;
        Ok(Handled::Done)
    }

    /// Handles a provider webhook: verify, dedupe by event id, apply. Answers an HTTP status.
    pub(crate) async fn payment_webhook(&self, body: &str, signature: Option<&str>) -> Result<Success, CommandError> {
        let answer = |http_status| Success { position: 0, event_count: 0, result: Outcome::Webhook { http_status } };
        let secret = &self.inner.config.payment_webhook_secret;
        if secret.is_empty() {
            tracing::warn!("webhook refused: PAYMENT_WEBHOOK_SECRET is not set");
            return Ok(answer(400));
        }
        if let Err(error) = webhook::verify(secret, signature, body, now().unix_timestamp()) {
            tracing::info!(%error, "webhook refused");
            return Ok(answer(400));
        }
        let Ok(event) = serde_json::from_str::<WebhookEvent>(body) else {
            return Ok(answer(400));
        };
        let seen_key = format!("evt.{}", hex::encode(&event.id));
        let revision = match self.claim_webhook(&seen_key).await? {
            WebhookClaim::Mine(revision) => revision,
            WebhookClaim::Done => return Ok(answer(200)),
            // Another delivery of this event is being applied: the provider retries later.
            WebhookClaim::Busy => return Ok(answer(409)),
        };
        let position = match self.apply_webhook(&event).await {
            Ok(WebhookEffect::Applied(done)) => done.position,
            Ok(WebhookEffect::Ignored) => 0,
            Ok(WebhookEffect::Mismatch) => {
                self.release_webhook(&seen_key, revision).await;
                return Ok(answer(400));
            }
            Err(error) => {
                // Not applied: the provider's retry may apply it.
                self.release_webhook(&seen_key, revision).await;
                return Err(error);
            }
        };
        // Marked done only after its effect is stored: a crash in between leaves the claim to go
        // stale, and the provider's retry applies it again, which changes nothing the second time.
        if let Err(error) = self.inner.webhooks_seen.update(&seen_key, WEBHOOK_DONE.into(), revision).await {
            // Another delivery took the claim over meanwhile (this one was slow): it marks it.
            tracing::warn!(%error, event = %event.id, "could not mark a webhook event done");
        }
        Ok(Success { position, event_count: 0, result: Outcome::Webhook { http_status: 200 } })
    }

    /// Claims a webhook event id before applying it, so two simultaneous deliveries of one event
    /// apply it once: the second waits for the first (a little), then answers as it did. A claim
    /// left by a process that died while applying is taken over once it is stale.
    async fn claim_webhook(&self, key: &str) -> Result<WebhookClaim, CommandError> {
        let bucket = &self.inner.webhooks_seen;
        let gave_up_at = std::time::Instant::now() + WEBHOOK_WAIT;
        loop {
            let entry = bucket.entry(key).await.map_err(|e| CommandError::Internal(e.to_string()))?;
            let take_over = match &entry {
                None => Some(0),
                Some(entry) if entry.operation != kv::Operation::Put => Some(entry.revision),
                Some(entry) if entry.value.as_ref() != WEBHOOK_APPLYING.as_bytes() => return Ok(WebhookClaim::Done),
                Some(entry) if now() - entry.created > WEBHOOK_CLAIM_STALE => Some(entry.revision),
                Some(_) => None,
            };
            if let Some(revision) = take_over {
                if let Ok(revision) = bucket.update(key, WEBHOOK_APPLYING.into(), revision).await {
                    return Ok(WebhookClaim::Mine(revision));
                }
                continue;
            }
            if std::time::Instant::now() >= gave_up_at {
                return Ok(WebhookClaim::Busy);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Gives up a claim whose event was not applied, so that a retry may apply it.
    async fn release_webhook(&self, key: &str, revision: u64) {
        let bucket = &self.inner.webhooks_seen;
        if let Err(error) = bucket.delete_expect_revision(key, Some(revision)).await {
            tracing::warn!(%error, "could not release a webhook claim; it is taken over once stale");
        }
    }

    async fn apply_webhook(&self, event: &WebhookEvent) -> Result<WebhookEffect, CommandError> {
        let settlement = match event.notice() {
            Notice::Settles(settlement) => settlement,
            Notice::Ignored(why) => {
                tracing::info!(event = %event.id, kind = %event.kind, why, "webhook ignored");
                return Ok(WebhookEffect::Ignored);
            }
        };
        let order_id = settlement.order_id;
        let ticket_id = match self.resolve_ticket(order_id, settlement.ticket_hint).await {
            Ok(ticket_id) => ticket_id,
            Err(CommandError::Refused { .. }) => {
                tracing::info!(event = %event.id, %order_id, "webhook for an unknown order ignored");
                return Ok(WebhookEffect::Ignored);
            }
            Err(error) => return Err(error),
        };
        let loaded = self.inner.store.load::<Listing>(&subjects::listing(ticket_id)).await?;
        let payment_id = loaded
            .state
            .payments
            .values()
            .find(|p| p.provider_ref.as_deref() == Some(settlement.provider_ref.as_str()))
            .map(|p| p.id)
            .or(settlement.payment_hint.filter(|id| loaded.state.payments.contains_key(id)))
            .or_else(|| loaded.state.orders.get(&order_id).and_then(|o| o.payment));
        let Some(payment_id) = payment_id else {
            tracing::info!(event = %event.id, %order_id, "webhook for an order without payments ignored");
            return Ok(WebhookEffect::Ignored);
        };
        if let Some(payment) = loaded.state.payments.get(&payment_id) {
            // Money that moves must be this payment's, in full.
            let same_amount = |amount: i64| amount == payment.amount.cents();
            let same_currency = |currency: &str| currency.eq_ignore_ascii_case(payment.currency.code());
            let matches = match (settlement.amount_cents, settlement.currency.as_deref()) {
                (Some(amount), Some(currency)) => same_amount(amount) && same_currency(currency),
                (None, None) => !settlement.moves_money(),
                (Some(amount), None) => !settlement.moves_money() && same_amount(amount),
                (None, Some(currency)) => !settlement.moves_money() && same_currency(currency),
            };
            if !matches {
                tracing::error!(
                    event = %event.id, %payment_id, amount = ?settlement.amount_cents, currency = ?settlement.currency,
                    expected = payment.amount.cents(), "webhook amount or currency is not the payment's; refused"
                );
                return Ok(WebhookEffect::Mismatch);
            }
        }
        self.settle(ticket_id, payment_id, settlement.outcome).await.map(|done| WebhookEffect::Applied(Box::new(done)))
    }
}

/// A webhook event id's claim while it is applied, and its mark once done.
const WEBHOOK_APPLYING: &str = "applying";
const WEBHOOK_DONE: &str = "done";
/// How long a second delivery waits for the first to be applied before answering 409.
const WEBHOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How old a claim must be before another delivery takes it over (its process died applying).
const WEBHOOK_CLAIM_STALE: time::Duration = time::Duration::seconds(30);

/// Who applies a webhook event.
enum WebhookClaim {
    /// This delivery, holding the claim at this revision.
    Mine(u64),
    /// Nobody: it was applied before.
    Done,
    /// Another delivery, still applying it.
    Busy,
}

/// What a verified webhook did.
enum WebhookEffect {
    /// It settled a payment.
    Applied(Box<Executed<Listing>>),
    /// Nothing to do (another type, an order not ours, no payment).
    Ignored,
    /// Its amount or currency is not the payment's: refused, not applied.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_whose_append_timed_out_keeps_its_slot_and_a_refused_one_gives_it_back() {
        let keep = [CommandError::Store(event_store::StoreError::Timeout), CommandError::Internal("lost".into())];
        for error in &keep {
            assert_eq!(slot_after_failed_hold(error), SlotAfterFailedHold::Keep, "{error}");
        }
        let refused = CommandError::refused(OrderError::TicketUnavailable);
        assert_eq!(slot_after_failed_hold(&refused), SlotAfterFailedHold::GiveBack);
        assert_eq!(slot_after_failed_hold(&CommandError::Contended), SlotAfterFailedHold::GiveBack);
        let unsent = CommandError::Store(event_store::StoreError::Encode("a field failed".into()));
        assert_eq!(slot_after_failed_hold(&unsent), SlotAfterFailedHold::GiveBack, "nothing was sent");
    }
}
