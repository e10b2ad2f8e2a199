//! Tickets, orders, payments and payment webhooks: everything decided inside a listing.

use async_nats::jetstream::kv;
use domain::{
    Account, AccountCommand, AccountId, Actor, Listing, ListingCommand, Order, OrderCommand, OrderError, OrderId,
    Price, TicketCommand, TicketError, TicketId, Title, subjects,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Outcome, Success};
use crate::payments::webhook::{self, WebhookEvent};
use crate::{CommandError, Executed, Service, Target, now};

/// The listing boundary of a ticket.
pub(crate) fn listing(ticket: TicketId) -> Target {
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

    pub(crate) async fn cancel_order(
        &self,
        actor: Actor,
        order_id: OrderId,
        ticket_id: TicketId,
    ) -> Result<Success, CommandError> {
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
            Ok(WebhookEffect::Applied(position)) => position,
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
pub(crate) enum WebhookEffect {
    /// It settled a payment; the position of what it wrote.
    Applied(u64),
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
