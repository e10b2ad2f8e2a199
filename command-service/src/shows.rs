//! Shows (the API's events): putting one on sale, changing it, and orders on it. Everything that
//! writes a show's stock or one of its orders goes through the show's desk ([`crate::desk`]).

use domain::{
    Account, AccountCommand, Actor, Held, HoldRequest, OrderId, ShowCommand, ShowDraft, ShowError, ShowId, ShowOrder,
    TicketId, subjects,
};
use uuid::Uuid;

use crate::api::{OrderItemInput, Outcome, SectionInput, Success, TicketTypeInput};
use crate::desk::{OrderView, Seen};
use crate::paying::Till;
use crate::{CommandError, Service, Target, now};

/// What `createEvent` and `updateEvent` carry besides their ids.
pub(crate) struct EventFields<'a> {
    pub title: Option<&'a str>,
    pub venue: Option<&'a str>,
    pub starts_at: Option<domain::Timestamp>,
}

fn event_outcome(show_id: ShowId, seen: &Seen<()>) -> Success {
    Success { position: seen.position, event_count: 0, result: Outcome::Event { event_id: show_id } }
}

/// The answer about an event order.
pub(crate) fn event_order_outcome(show_id: ShowId, order: &ShowOrder, position: u64) -> Success {
    Success {
        position,
        event_count: 0,
        result: Outcome::EventOrder {
            order_id: order.placed.order_id,
            event_id: show_id,
            status: order.status,
            cancel_reason: order.cancel_reason,
            expires_at: order.placed.expires_at,
            amount_cents: order.placed.amount_cents,
        },
    }
}

/// The key an event order's idempotency record is checked against: the same key with other
/// arguments is a reuse. Items are read in the order given (a client retrying sends the same).
fn order_request_text(show_id: ShowId, items: &[OrderItemInput], seats: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("{}x{}", i.ticket_type_id, i.quantity)).collect();
    format!("createEventOrder {show_id} [{}] [{}]", items.join(","), seats.join(","))
}

impl Service {
    pub(crate) async fn create_event(
        &self,
        actor: Actor,
        fields: &EventFields<'_>,
        ticket_types: &[TicketTypeInput],
        sections: &[SectionInput],
    ) -> Result<Success, CommandError> {
        // Every event stays in the stream for good: a few a minute per organiser, like listings.
        let limit = self.inner.config.create_ticket_per_minute;
        if limit > 0 {
            let key = format!("show.{}.{}", actor.id, crate::throttle::minute(now()));
            self.admit(&key, limit, "too many events this minute; try again shortly").await?;
        }
        let draft = ShowDraft {
            title: fields.title.unwrap_or_default().to_owned(),
            venue: fields.venue.unwrap_or_default().to_owned(),
            starts_at: fields.starts_at.unwrap_or_else(now),
            ticket_types: ticket_types
                .iter()
                .map(|t| domain::show::definition::TicketTypeDraft {
                    name: t.name.clone(),
                    price_cents: t.price_cents,
                    capacity: t.capacity,
                })
                .collect(),
            sections: sections
                .iter()
                .map(|s| domain::show::definition::SectionDraft {
                    name: s.name.clone(),
                    price_cents: s.price_cents,
                    rows: s.rows,
                    seats_per_row: s.seats_per_row,
                })
                .collect(),
        };
        let show_id = ShowId(Uuid::new_v4());
        let command = ShowCommand::Create { show_id, organizer: actor.id, draft, at: now() };
        let seen = self.inner.desks.stock(show_id, command).await?;
        Ok(event_outcome(show_id, &seen))
    }

    pub(crate) async fn update_event(
        &self,
        actor: Actor,
        show_id: ShowId,
        fields: &EventFields<'_>,
    ) -> Result<Success, CommandError> {
        let command = ShowCommand::Update {
            actor,
            title: fields.title.map(str::to_owned),
            venue: fields.venue.map(str::to_owned),
            starts_at: fields.starts_at,
            at: now(),
        };
        let seen = self.inner.desks.stock(show_id, command).await?;
        Ok(event_outcome(show_id, &seen))
    }

    /// Places a hold on an event: checked on the desk's state first (so that what is refused
    /// anyway takes no slot), then the buyer's slot, then the hold itself, decided together with
    /// the holds that arrive with it. The slot's claim arms the hold's expiry, as for a ticket.
    pub(crate) async fn create_event_order(
        &self,
        actor: Actor,
        show_id: ShowId,
        items: &[OrderItemInput],
        seats: &[String],
        idempotency_key: Option<&str>,
    ) -> Result<Success, CommandError> {
        let order_id = match idempotency_key {
            Some(key) => {
                self.claim_idempotency_key(actor.id, key, &order_request_text(show_id, items, seats)).await?;
                OrderId::for_show_idempotency_key(actor.id, show_id, key)
            }
            None => OrderId(Uuid::new_v4()),
        };
        let request = |expires_at| HoldRequest {
            order_id,
            buyer: actor.id,
            tickets: items.iter().map(|i| (i.ticket_type_id, i.quantity)).collect(),
            seats: seats.to_vec(),
            expires_at,
            idempotency_key: idempotency_key.map(str::to_owned),
        };
        let wanted_expiry = now() + self.inner.config.hold();
        let desks = &self.inner.desks;
        // Refused anyway (unknown, taken, the organiser's own): refused before any slot is taken.
        // The same key again is answered its order, as a state read after this request has it,
        // and writes nothing (not even a slot: the first request's may be given back already).
        if desks.check(show_id, request(wanted_expiry)).await?.value == Held::AlreadyPlaced {
            let seen = desks.find(show_id, order_id).await?;
            if let Some(order) = seen.value.order.filter(|o| o.placed.buyer == actor.id) {
                return Ok(event_order_outcome(show_id, &order, seen.position));
            }
        }

        let max_active = usize::try_from(self.inner.config.max_active_holds).unwrap_or(usize::MAX);
        let slot_target = Target { boundary: subjects::account(actor.id), wildcard: false };
        let claimed = self
            .execute::<Account, _>(&slot_target, |_| AccountCommand::ClaimHoldSlot {
                order_id,
                ticket_id: None,
                show_id: Some(show_id),
                expires_at: wanted_expiry,
                max_active,
                at: now(),
            })
            .await?;
        let expires_at = claimed.state.hold_slots.get(&order_id).map_or(wanted_expiry, |slot| slot.expires_at);

        match desks.hold(show_id, request(expires_at)).await {
            Ok(seen) => Ok(event_order_outcome(show_id, &seen.value, seen.position)),
            Err(error) => {
                if crate::listings::slot_after_failed_hold(&error) == crate::listings::SlotAfterFailedHold::GiveBack
                    && !self.placed_already(show_id, order_id).await
                {
                    self.release_slot(actor.id, order_id).await;
                }
                Err(error)
            }
        }
    }

    /// Whether the order is placed (a simultaneous request with the same key may have placed it
    /// while this one failed), on a state read now. Unknown counts as placed: the slot then stays,
    /// and its expiry gives it back if there is no order.
    async fn placed_already(&self, show_id: ShowId, order_id: OrderId) -> bool {
        !matches!(self.inner.desks.find(show_id, order_id).await, Ok(Seen { value: OrderView { order: None, .. }, .. }))
    }

    /// Where an order lives, from the caller's hints (the gateway reads them from the read
    /// model) or the stream: the ticket's order subject, else the show order's own subject (once
    /// anything was written there). `None` when neither names it.
    pub(crate) async fn till_in_stream(
        &self,
        order_id: OrderId,
        ticket: Option<TicketId>,
        show: Option<ShowId>,
    ) -> Result<Option<Till>, CommandError> {
        match (ticket, show) {
            (_, Some(show)) => return Ok(Some(Till::Show(show))),
            (Some(ticket), None) => return Ok(Some(Till::Listing(ticket))),
            (None, None) => {}
        }
        let store = &self.inner.store;
        let on_ticket = store.read_counted(&subjects::order_anywhere(order_id)).await?;
        if let Some(ticket) = on_ticket.first().and_then(|e| subjects::ticket_of(&e.subject)) {
            return Ok(Some(Till::Listing(ticket)));
        }
        let on_show = store.read_counted(&subjects::show_order_anywhere(order_id)).await?;
        Ok(on_show.first().and_then(|e| subjects::show_of(&e.subject)).map(Till::Show))
    }

    /// Where an order of `actor`'s (or one an admin names) lives: as [`Service::till_in_stream`]
    /// finds it, else the hold slot the actor holds for it (an open order on a show has nothing
    /// on its own subject yet).
    pub(crate) async fn order_home(
        &self,
        actor: Actor,
        order_id: OrderId,
        ticket: Option<TicketId>,
        show: Option<ShowId>,
    ) -> Result<Till, CommandError> {
        if let Some(till) = self.till_in_stream(order_id, ticket, show).await? {
            return Ok(till);
        }
        let account = self.inner.store.load::<Account>(&subjects::account(actor.id)).await?;
        let slot = account.state.hold_slots.get(&order_id);
        match (slot.and_then(|s| s.show_id), slot.and_then(|s| s.ticket_id)) {
            (Some(show), _) => Ok(Till::Show(show)),
            (None, Some(ticket)) => Ok(Till::Listing(ticket)),
            (None, None) => Err(CommandError::refused(domain::OrderError::NotFound)),
        }
    }

    pub(crate) async fn cancel_event_order(
        &self,
        actor: Actor,
        show_id: ShowId,
        order_id: OrderId,
    ) -> Result<Success, CommandError> {
        let seen = self.inner.desks.order(show_id, ShowCommand::Cancel { order_id, actor, at: now() }).await?;
        let order = seen.value.order.ok_or_else(|| CommandError::refused(ShowError::OrderNotFound))?;
        self.release_slot(order.placed.buyer, order_id).await;
        Ok(event_order_outcome(show_id, &order, seen.position))
    }

    /// The hold's expiry fired: the order after it (`None`: never placed).
    pub(crate) async fn expire_event_order(
        &self,
        show_id: ShowId,
        order_id: OrderId,
    ) -> Result<Option<ShowOrder>, CommandError> {
        let seen = self.inner.desks.order(show_id, ShowCommand::Expire { order_id, at: now() }).await?;
        Ok(seen.value.order)
    }
}
