//! The show: an organiser's event on sale, with general-admission ticket types (a capacity each)
//! and sections of numbered seats, and the orders that hold them (the API's `Event`).
//!
//! Two kinds of consistency boundary share the show's subjects (see [`crate::subjects`]):
//! - the **stock** (`ticketing.show.<show>.show`): the definition and every placement. Each
//!   append there is guarded by that subject's last sequence, so placements are serialized and a
//!   ticket type can never be sold past its capacity, nor a seat twice. Placements that arrive
//!   together are decided together ([`Show::decide_holds`]) and written as one
//!   [`Event::ShowOrdersPlaced`]: one guarded append for a whole group of buyers (group commit),
//!   and an order with many items is all or nothing because it is one event.
//! - each **order** (`ticketing.show.<show>.order.<order>`): its cancellation, expiry and
//!   payments, guarded by the order's own subject, so orders never contend with each other nor
//!   with placements.
//!
//! A placement decided on a state that has not seen a cancellation yet only counts the freed
//! items as still held: it may refuse (and a refusal is only ever answered from a fresh state),
//! never oversell. A cancellation only ever frees what its own order held.

pub mod definition;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use self::definition::{Definition, SeatId, Section, ShowDraft, TicketType};
use crate::error::{ErrorCode, Refusal};
use crate::ids::{AccountId, OrderId, PaymentId, ShowId, TicketTypeId};
use crate::listing::order::{CancelReason, OrderStatus};
use crate::listing::payment::{self, Payment, PaymentCommand, PaymentError};
use crate::money::{Currency, Price};
use crate::{Actor, Aggregate, Event, Timestamp, Title};

/// The most tickets (general admission and seats together) one order may hold.
pub const MAX_TICKETS_PER_ORDER: u32 = 10;

/// The most orders one [`Event::ShowOrdersPlaced`] carries: a group of holds decided together is
/// cut to this size (it keeps one message well under NATS's payload limit).
pub const MAX_ORDERS_PER_PLACEMENT: usize = 256;

/// Readers that sort orders by where they were placed in the stream give each its own place:
/// its message's sequence times this, plus its index in the message (a ticket order is index 0).
pub const ORDER_SLOTS: i64 = 1024;

/// What a seat is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    /// Nobody holds it.
    Available,
    /// An open order holds it.
    Reserved,
    /// A paid order has it.
    Sold,
}

/// A ticket type and how many of its tickets are held and sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeStock {
    /// The ticket type.
    pub ticket_type: TicketType,
    /// Tickets held by open orders.
    pub held: u32,
    /// Tickets of paid orders.
    pub sold: u32,
}

impl TypeStock {
    /// Capacity − held − sold.
    pub fn available(&self) -> u32 {
        self.ticket_type.capacity.saturating_sub(self.held + self.sold)
    }
}

/// A section and the status of each of its seats (row-major, see [`Section::seat_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStock {
    /// The section.
    pub section: Section,
    /// Each seat's status.
    pub seats: Vec<SeatStatus>,
    /// How many of them are available.
    pub available: u32,
}

/// A ticket type's tickets in an order: how many, at what price each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLine {
    /// The ticket type.
    pub ticket_type_id: TicketTypeId,
    /// How many tickets.
    pub quantity: u32,
    /// The price of each at the time of the hold.
    pub price_cents: Price,
}

/// A seat in an order, at its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatLine {
    /// The seat.
    pub seat: SeatId,
    /// Its price at the time of the hold.
    pub price_cents: Price,
}

/// One order of a [`Event::ShowOrdersPlaced`]: a hold on tickets and seats of the show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    /// The new order.
    pub order_id: OrderId,
    /// The buyer.
    pub buyer: AccountId,
    /// General-admission tickets, one line per ticket type.
    pub tickets: Vec<TicketLine>,
    /// Seats.
    pub seats: Vec<SeatLine>,
    /// The sum of the items' prices: what the buyer will pay, in cents (ten tickets may cost
    /// more than one ticket's highest price, so this is not a [`Price`]).
    pub amount_cents: i64,
    /// The currency of the amount (USD only, for now).
    pub currency: Currency,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// When the hold lapses unless paid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// An order on a show, from its placement until it is paid, cancelled or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowOrder {
    /// What was placed.
    pub placed: PlacedOrder,
    /// Where it stands in its lifecycle (the same as a ticket order's).
    pub status: OrderStatus,
    /// Why it was cancelled, once cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// The latest payment attempt.
    pub payment: Option<PaymentId>,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// When anything about it last happened.
    pub updated_at: Timestamp,
}

impl ShowOrder {
    /// Whether the hold is still open (neither paid nor cancelled).
    pub fn is_open(&self) -> bool {
        matches!(self.status, OrderStatus::Created | OrderStatus::AwaitingPayment)
    }

    /// Whether its hold has lapsed at `now`.
    pub fn has_lapsed(&self, now: Timestamp) -> bool {
        now >= self.placed.expires_at
    }

    /// The order after one event about it (its own cancellation, and later its payments'): the
    /// fold [`Show::evolve`] uses, which the command side and the read model run too.
    #[must_use]
    pub fn evolve(mut self, event: &Event) -> Self {
        if event.order_id() != Some(self.placed.order_id) {
            return self;
        }
        match event {
            Event::ShowOrderCancelled { reason, .. } if self.is_open() => {
                self.status = OrderStatus::Cancelled;
                self.cancel_reason = Some(*reason);
            }
            Event::ShowPaymentStarted { payment_id, .. } => {
                self.status = OrderStatus::AwaitingPayment;
                self.payment = Some(*payment_id);
            }
            Event::ShowPaymentSucceeded { .. } if self.is_open() => self.status = OrderStatus::Complete,
            // Only the failure of the attempt under way reopens the order for another one.
            Event::PaymentFailed { payment_id, .. }
                if self.status == OrderStatus::AwaitingPayment && self.payment == Some(*payment_id) =>
            {
                self.status = OrderStatus::Created;
            }
            _ => {}
        }
        self.updated_at = event.at();
        self
    }

    /// How many tickets it holds (general admission and seats).
    pub fn ticket_count(&self) -> u32 {
        self.placed.tickets.iter().map(|l| l.quantity).sum::<u32>()
            + u32::try_from(self.placed.seats.len()).unwrap_or(0)
    }
}

/// The show's own facts: who organises it, what, where and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowInfo {
    /// The show.
    pub id: ShowId,
    /// Its organiser.
    pub organizer: AccountId,
    /// Its title.
    pub title: Title,
    /// Its venue.
    pub venue: Title,
    /// When it starts.
    pub starts_at: Timestamp,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its title, venue or time last changed.
    pub updated_at: Timestamp,
}

impl ShowInfo {
    /// The facts the rules about who may do what with it need.
    pub fn access(&self) -> crate::ShowAccess {
        crate::ShowAccess { organizer: self.organizer }
    }
}

impl ShowOrder {
    /// The facts the rules about an order need (the same rules as a ticket order's).
    pub fn access(&self) -> crate::OrderAccess {
        crate::OrderAccess { buyer: self.placed.buyer, status: self.status, expires_at: self.placed.expires_at }
    }
}

/// A show with its stock and orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Show {
    /// The show, once created.
    pub info: Option<ShowInfo>,
    /// Its ticket types with their counts, in the organiser's order.
    pub ticket_types: Vec<TypeStock>,
    /// Its sections with their seats, in the organiser's order.
    pub sections: Vec<SectionStock>,
    /// Every order ever placed on it.
    pub orders: BTreeMap<OrderId, ShowOrder>,
    /// Every payment attempt for those orders.
    pub payments: BTreeMap<PaymentId, Payment>,
    /// Each order's payment attempts, oldest first (an index of `payments`).
    pub order_payments: BTreeMap<OrderId, Vec<PaymentId>>,
}

/// A buyer's request for tickets and seats of a show, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The new order's id (derived from the idempotency key when one is given).
    pub order_id: OrderId,
    /// The signed-in buyer.
    pub buyer: AccountId,
    /// Ticket types and how many of each (a type named twice counts both).
    pub tickets: Vec<(TicketTypeId, i64)>,
    /// Seat ids, as sent.
    pub seats: Vec<String>,
    /// Now plus the hold duration (`ORDER_HOLD_SECONDS`).
    pub expires_at: Timestamp,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
}

/// What became of one request of a group decided together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// It is one of the orders of the event written for the group.
    Placed,
    /// Its order was placed before (the same idempotency key): nothing more is written for it.
    AlreadyPlaced,
}

/// Commands decided inside a show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowCommand {
    /// Put a show on sale.
    Create {
        /// The new show's id.
        show_id: ShowId,
        /// The signed-in organiser.
        organizer: AccountId,
        /// What the organiser typed.
        draft: ShowDraft,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Change the title, venue or start time.
    Update {
        /// Who asks: the organiser or an admin.
        actor: Actor,
        /// The new title, if it changes.
        title: Option<String>,
        /// The new venue, if it changes.
        venue: Option<String>,
        /// The new start time, if it changes.
        starts_at: Option<Timestamp>,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Hold tickets and seats for one buyer (a group of them is decided by
    /// [`Show::decide_holds`]).
    Place {
        /// What the buyer asked for.
        request: HoldRequest,
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
    /// Start or settle a payment for an order (the rules of a ticket order's payments).
    Payment(PaymentCommand),
}

/// Why a show command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShowError {
    /// Input that breaks a rule (`BAD_USER_INPUT`); `field` is a path such as
    /// `ticketTypes.1.capacity`.
    #[error("{reason}")]
    Invalid {
        /// The input field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such event (`NOT_FOUND`).
    #[error("event not found")]
    NotFound,
    /// No such ticket type in the event (`NOT_FOUND`).
    #[error("ticket type not found")]
    TicketTypeNotFound,
    /// No such seat in the event (`NOT_FOUND`).
    #[error("seat not found")]
    SeatNotFound,
    /// No such order (`NOT_FOUND`).
    #[error("order not found")]
    OrderNotFound,
    /// Only the organiser or an admin may change the event (`FORBIDDEN`).
    #[error("only the organiser or an admin may change this event")]
    NotOrganizer,
    /// Organisers cannot buy tickets to their own event (`FORBIDDEN`).
    #[error("you cannot order tickets to your own event")]
    OwnShow,
    /// Only the buyer or an admin may change this order (`FORBIDDEN`).
    #[error("only the buyer or an admin may change this order")]
    NotOwner,
    /// Some of what was asked for is taken (`CONFLICT`): nothing was held. `seats` and
    /// `ticket_types` list what is not available (`extensions.unavailable`).
    #[error("not available: {}", unavailable_text(.seats, .ticket_types))]
    Unavailable {
        /// Seats held or sold by others.
        seats: Vec<SeatId>,
        /// Ticket types with fewer tickets left than asked for.
        ticket_types: Vec<TicketTypeId>,
    },
    /// The event has started: its tickets are no longer sold (`CONFLICT`).
    #[error("the event has started; tickets are no longer sold")]
    SalesClosed,
    /// The order id is already used by another buyer (`CONFLICT`).
    #[error("order id already in use")]
    IdInUse,
    /// The hold would lapse before it is placed (`CONFLICT`): a retry that came too late.
    #[error("this hold request has lapsed; try again")]
    HoldLapsed,
    /// A paid order cannot be cancelled (`CONFLICT`).
    #[error("the order is complete and cannot be cancelled")]
    AlreadyComplete,
    /// A payment rule (the same as for ticket orders).
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

fn unavailable_text(seats: &[SeatId], ticket_types: &[TicketTypeId]) -> String {
    let mut names: Vec<String> = seats.iter().map(ToString::to_string).collect();
    names.extend(ticket_types.iter().map(ToString::to_string));
    names.join(", ")
}

impl ShowError {
    /// The ids of what was not available (seat ids, then ticket type ids), for
    /// `extensions.unavailable`; empty for other refusals.
    pub fn unavailable(&self) -> Vec<String> {
        match self {
            Self::Unavailable { seats, ticket_types } => {
                seats.iter().map(ToString::to_string).chain(ticket_types.iter().map(ToString::to_string)).collect()
            }
            _ => vec![],
        }
    }
}

impl Refusal for ShowError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::BadUserInput,
            Self::NotFound | Self::TicketTypeNotFound | Self::SeatNotFound | Self::OrderNotFound => ErrorCode::NotFound,
            Self::NotOrganizer | Self::OwnShow | Self::NotOwner => ErrorCode::Forbidden,
            Self::Unavailable { .. } | Self::SalesClosed | Self::IdInUse | Self::HoldLapsed | Self::AlreadyComplete => {
                ErrorCode::Conflict
            }
            Self::Payment(rule) => rule.code(),
        }
    }

    fn field_path(&self) -> Option<String> {
        match self {
            Self::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        }
    }
}

fn invalid(field: &str, reason: &str) -> ShowError {
    ShowError::Invalid { field: field.to_owned(), reason: reason.to_owned() }
}

/// What a group's requests have taken so far, on top of the show's state.
#[derive(Default)]
struct Taken {
    tickets: HashMap<usize, u32>,
    seats: HashSet<(usize, usize)>,
    orders: HashMap<OrderId, AccountId>,
}

impl Show {
    /// The show's id, once created.
    pub fn id(&self) -> Option<ShowId> {
        self.info.as_ref().map(|i| i.id)
    }

    /// Where a seat is: its section's index and its own index in that section.
    pub fn locate(&self, seat: &SeatId) -> Option<(usize, usize)> {
        let section = self.sections.iter().position(|s| s.section.name == seat.section)?;
        Some((section, self.sections[section].section.seat_index(seat.row, seat.number)?))
    }

    /// The status of a seat; `None` for a seat the show does not have.
    pub fn seat_status(&self, seat: &SeatId) -> Option<SeatStatus> {
        let (section, index) = self.locate(seat)?;
        Some(self.sections[section].seats[index])
    }

    /// Decides a group of hold requests that arrived together, in order, as if each came after
    /// the ones before it: what one takes, the next cannot. Returns the event that places every
    /// accepted order (none when nothing is to be written) and each request's own answer.
    ///
    /// Written as one event, the group is one guarded append: either every order in it is
    /// placed, or (the append lost a race) none is and the group is decided again.
    pub fn decide_holds(
        &self,
        requests: &[HoldRequest],
        at: Timestamp,
    ) -> (Option<Event>, Vec<Result<Held, ShowError>>) {
        let mut taken = Taken::default();
        let mut placed = Vec::new();
        let answers = requests
            .iter()
            .map(|request| {
                let held = self.decide_hold(request, at, &taken)?;
                if let Some(order) = held {
                    for line in &order.tickets {
                        if let Some(index) =
                            self.ticket_types.iter().position(|t| t.ticket_type.id == line.ticket_type_id)
                        {
                            *taken.tickets.entry(index).or_default() += line.quantity;
                        }
                    }
                    taken.seats.extend(order.seats.iter().filter_map(|line| self.locate(&line.seat)));
                    taken.orders.insert(order.order_id, order.buyer);
                    placed.push(order);
                    Ok(Held::Placed)
                } else {
                    Ok(Held::AlreadyPlaced)
                }
            })
            .collect();
        let event = match (&self.info, placed.is_empty()) {
            (Some(info), false) => Some(Event::ShowOrdersPlaced { show_id: info.id, orders: placed, at }),
            _ => None,
        };
        (event, answers)
    }

    /// One request against the state plus what the group took before it: the order to place, or
    /// `None` when it was placed already.
    fn decide_hold(
        &self,
        request: &HoldRequest,
        at: Timestamp,
        taken: &Taken,
    ) -> Result<Option<PlacedOrder>, ShowError> {
        let info = self.info.as_ref().ok_or(ShowError::NotFound)?;
        let earlier = self
            .orders
            .get(&request.order_id)
            .map(|o| o.placed.buyer)
            .or_else(|| taken.orders.get(&request.order_id).copied());
        if let Some(buyer) = earlier {
            // A retry with the same idempotency key finds its own order.
            return if buyer == request.buyer { Ok(None) } else { Err(ShowError::IdInUse) };
        }
        if !info.access().may_order(request.buyer) {
            return Err(ShowError::OwnShow);
        }
        // The shape of the request: 1..=10 tickets in all, each quantity at least 1, no seat twice.
        let items_field = if request.tickets.is_empty() { "seats" } else { "items" };
        if request.tickets.iter().any(|(_, quantity)| *quantity < 1) {
            return Err(invalid("items", "each quantity must be at least 1"));
        }
        let general = request.tickets.iter().fold(0_i64, |sum, (_, quantity)| sum.saturating_add(*quantity));
        let total = general.saturating_add(i64::try_from(request.seats.len()).unwrap_or(i64::MAX));
        if total < 1 {
            return Err(invalid(items_field, "an order holds at least one ticket"));
        }
        if total > i64::from(MAX_TICKETS_PER_ORDER) {
            return Err(invalid(items_field, "an order holds at most 10 tickets"));
        }
        let mut seats = Vec::with_capacity(request.seats.len());
        for raw in &request.seats {
            let seat: SeatId = raw.parse().map_err(|_| ShowError::SeatNotFound)?;
            if seats.contains(&seat) {
                return Err(invalid("seats", "a seat is asked for twice"));
            }
            seats.push(seat);
        }
        // What it names must exist.
        let mut wanted: Vec<(usize, u32)> = Vec::new();
        for (ticket_type, quantity) in &request.tickets {
            let index = self
                .ticket_types
                .iter()
                .position(|t| t.ticket_type.id == *ticket_type)
                .ok_or(ShowError::TicketTypeNotFound)?;
            let quantity = u32::try_from(*quantity).unwrap_or(u32::MAX);
            match wanted.iter_mut().find(|(i, _)| *i == index) {
                Some((_, q)) => *q += quantity,
                None => wanted.push((index, quantity)),
            }
        }
        let located =
            seats.iter().map(|seat| self.locate(seat).ok_or(ShowError::SeatNotFound)).collect::<Result<Vec<_>, _>>()?;
        if at >= info.starts_at {
            return Err(ShowError::SalesClosed);
        }
        if at >= request.expires_at {
            // A retry that kept its first attempt's expiry too long (see the ticket's rule).
            return Err(ShowError::HoldLapsed);
        }
        // All or nothing: name everything that is missing.
        let short_types: Vec<TicketTypeId> = wanted
            .iter()
            .filter(|(index, quantity)| {
                let left = self.ticket_types[*index]
                    .available()
                    .saturating_sub(taken.tickets.get(index).copied().unwrap_or(0));
                *quantity > left
            })
            .map(|(index, _)| self.ticket_types[*index].ticket_type.id)
            .collect();
        let taken_seats: Vec<SeatId> = seats
            .iter()
            .zip(&located)
            .filter(|(_, (section, index))| {
                self.sections[*section].seats[*index] != SeatStatus::Available
                    || taken.seats.contains(&(*section, *index))
            })
            .map(|(seat, _)| seat.clone())
            .collect();
        if !short_types.is_empty() || !taken_seats.is_empty() {
            return Err(ShowError::Unavailable { seats: taken_seats, ticket_types: short_types });
        }
        let tickets: Vec<TicketLine> = wanted
            .iter()
            .map(|(index, quantity)| {
                let t = &self.ticket_types[*index].ticket_type;
                TicketLine { ticket_type_id: t.id, quantity: *quantity, price_cents: t.price_cents }
            })
            .collect();
        let seats: Vec<SeatLine> = seats
            .into_iter()
            .zip(&located)
            .map(|(seat, (section, _))| SeatLine { seat, price_cents: self.sections[*section].section.price_cents })
            .collect();
        let amount_cents = tickets.iter().map(|l| l.price_cents.cents() * i64::from(l.quantity)).sum::<i64>()
            + seats.iter().map(|l| l.price_cents.cents()).sum::<i64>();
        Ok(Some(PlacedOrder {
            order_id: request.order_id,
            buyer: request.buyer,
            tickets,
            seats,
            amount_cents,
            currency: Currency::Usd,
            idempotency_key: request.idempotency_key.clone(),
            expires_at: request.expires_at,
        }))
    }

    /// A payment command, by the rules every order's payments follow (see
    /// [`crate::listing::payment`]); the events name the show.
    fn decide_payment(&self, command: PaymentCommand) -> Result<Vec<Event>, ShowError> {
        let info = self.info.as_ref().ok_or(ShowError::NotFound)?;
        let show_id = info.id;
        match command {
            PaymentCommand::Start { payment_id, order_id, actor, idempotency_key, at } => {
                let order = self.orders.get(&order_id).ok_or(PaymentError::OrderNotFound)?;
                if !payment::may_start(&order.access(), &actor, self.payments.contains_key(&payment_id), at)? {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ShowPaymentStarted {
                    show_id,
                    payment_id,
                    order_id,
                    amount_cents: order.placed.amount_cents,
                    currency: order.placed.currency,
                    idempotency_key,
                    at,
                }])
            }
            PaymentCommand::Settle { payment_id, outcome, at } => {
                let payment = self.payments.get(&payment_id).ok_or(PaymentError::NotFound)?;
                let order = self.orders.get(&payment.order_id).ok_or(PaymentError::OrderNotFound)?;
                let order_id = order.placed.order_id;
                // An open order keeps its items until it is paid or closed.
                let succeeded =
                    |provider_ref| Event::ShowPaymentSucceeded { show_id, payment_id, order_id, provider_ref, at };
                Ok(payment::settlement(payment, outcome, order.is_open())
                    .event(payment_id, order_id, at, succeeded)
                    .into_iter()
                    .collect())
            }
        }
    }

    fn free(&mut self, placed: &PlacedOrder, to: Option<SeatStatus>) {
        for line in &placed.tickets {
            if let Some(stock) = self.ticket_types.iter_mut().find(|t| t.ticket_type.id == line.ticket_type_id) {
                stock.held = stock.held.saturating_sub(line.quantity);
                if to == Some(SeatStatus::Sold) {
                    stock.sold += line.quantity;
                }
            }
        }
        for line in &placed.seats {
            if let Some((section, index)) = self.locate(&line.seat) {
                let stock = &mut self.sections[section];
                match to {
                    Some(SeatStatus::Sold) => stock.seats[index] = SeatStatus::Sold,
                    _ => {
                        if stock.seats[index] != SeatStatus::Available {
                            stock.available += 1;
                        }
                        stock.seats[index] = SeatStatus::Available;
                    }
                }
            }
        }
    }
}

impl Aggregate for Show {
    type Command = ShowCommand;
    type Error = ShowError;

    fn decide(&self, command: ShowCommand) -> Result<Vec<Event>, ShowError> {
        match command {
            ShowCommand::Create { show_id, organizer, draft, at } => {
                if self.info.is_some() {
                    return Err(ShowError::IdInUse);
                }
                let Definition { title, venue, starts_at, ticket_types, sections } =
                    definition::check(show_id, &draft, at)?;
                Ok(vec![Event::ShowCreated { show_id, organizer, title, venue, starts_at, ticket_types, sections, at }])
            }
            ShowCommand::Update { actor, title, venue, starts_at, at } => {
                let info = self.info.as_ref().ok_or(ShowError::NotFound)?;
                if !info.access().may_edit(&actor) {
                    return Err(ShowError::NotOrganizer);
                }
                let title =
                    title.map(|t| definition::parse_title("title", &t)).transpose()?.filter(|t| *t != info.title);
                let venue =
                    venue.map(|v| definition::parse_title("venue", &v)).transpose()?.filter(|v| *v != info.venue);
                let starts_at =
                    starts_at.map(|s| definition::check_starts_at(s, at)).transpose()?.filter(|s| *s != info.starts_at);
                if title.is_none() && venue.is_none() && starts_at.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ShowUpdated { show_id: info.id, by: actor.id, title, venue, starts_at, at }])
            }
            ShowCommand::Place { request, at } => {
                let (event, mut answers) = self.decide_holds(std::slice::from_ref(&request), at);
                answers.pop().unwrap_or(Err(ShowError::NotFound))?;
                Ok(event.into_iter().collect())
            }
            ShowCommand::Cancel { order_id, actor, at } => {
                let info = self.info.as_ref().ok_or(ShowError::NotFound)?;
                let order = self.orders.get(&order_id).ok_or(ShowError::OrderNotFound)?;
                if !order.access().is_owned_by(&actor) {
                    return Err(ShowError::NotOwner);
                }
                match order.status {
                    OrderStatus::Complete => Err(ShowError::AlreadyComplete),
                    OrderStatus::Cancelled => Ok(vec![]),
                    OrderStatus::Created | OrderStatus::AwaitingPayment => {
                        let reason =
                            if order.placed.buyer == actor.id { CancelReason::User } else { CancelReason::Admin };
                        Ok(vec![Event::ShowOrderCancelled {
                            show_id: info.id,
                            order_id,
                            reason,
                            by: Some(actor.id),
                            at,
                        }])
                    }
                }
            }
            ShowCommand::Payment(command) => self.decide_payment(command),
            ShowCommand::Expire { order_id, at } => {
                // As for a ticket: an order never placed, paid or cancelled already is not expired.
                let (Some(info), Some(order)) = (&self.info, self.orders.get(&order_id)) else { return Ok(vec![]) };
                if !order.is_open() || !order.has_lapsed(at) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ShowOrderCancelled {
                    show_id: info.id,
                    order_id,
                    reason: CancelReason::Expired,
                    by: None,
                    at,
                }])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Some(payment_id) = event.payment_id() {
            // A payment of an order of this show (its start names the order).
            let ours = self.payments.contains_key(&payment_id)
                || event.order_id().is_some_and(|o| self.orders.contains_key(&o));
            if ours && let Some(payment) = Payment::evolve(self.payments.remove(&payment_id), event) {
                let attempts = self.order_payments.entry(payment.order_id).or_default();
                if !attempts.contains(&payment_id) {
                    attempts.push(payment_id);
                }
                self.payments.insert(payment_id, payment);
            }
        }
        match event {
            Event::ShowCreated { show_id, organizer, title, venue, starts_at, ticket_types, sections, at } => {
                if self.info.is_some() {
                    return self;
                }
                self.info = Some(ShowInfo {
                    id: *show_id,
                    organizer: *organizer,
                    title: title.clone(),
                    venue: venue.clone(),
                    starts_at: *starts_at,
                    created_at: *at,
                    updated_at: *at,
                });
                self.ticket_types =
                    ticket_types.iter().map(|t| TypeStock { ticket_type: t.clone(), held: 0, sold: 0 }).collect();
                self.sections = sections
                    .iter()
                    .map(|s| SectionStock {
                        section: s.clone(),
                        seats: vec![SeatStatus::Available; usize::try_from(s.seat_count()).unwrap_or(0)],
                        available: s.seat_count(),
                    })
                    .collect();
            }
            Event::ShowUpdated { title, venue, starts_at, at, .. } => {
                if let Some(info) = &mut self.info {
                    if let Some(title) = title {
                        info.title = title.clone();
                    }
                    if let Some(venue) = venue {
                        info.venue = venue.clone();
                    }
                    if let Some(starts_at) = starts_at {
                        info.starts_at = *starts_at;
                    }
                    info.updated_at = *at;
                }
            }
            Event::ShowOrdersPlaced { orders, at, .. } => {
                for placed in orders {
                    if self.orders.contains_key(&placed.order_id) {
                        continue;
                    }
                    for line in &placed.tickets {
                        if let Some(stock) =
                            self.ticket_types.iter_mut().find(|t| t.ticket_type.id == line.ticket_type_id)
                        {
                            stock.held += line.quantity;
                        }
                    }
                    for line in &placed.seats {
                        if let Some((section, index)) = self.locate(&line.seat) {
                            let stock = &mut self.sections[section];
                            if stock.seats[index] == SeatStatus::Available {
                                stock.available = stock.available.saturating_sub(1);
                            }
                            stock.seats[index] = SeatStatus::Reserved;
                        }
                    }
                    self.orders.insert(
                        placed.order_id,
                        ShowOrder {
                            placed: placed.clone(),
                            status: OrderStatus::Created,
                            cancel_reason: None,
                            payment: None,
                            placed_at: *at,
                            updated_at: *at,
                        },
                    );
                }
            }
            _ => {
                // The order's own events (cancelled, paid, payment failed): what it held is freed
                // when it is cancelled, sold when it is complete.
                let Some(order_id) = event.order_id() else { return self };
                let Some(order) = self.orders.remove(&order_id) else { return self };
                let was_open = order.is_open();
                let order = order.evolve(event);
                match (was_open, order.status) {
                    (true, OrderStatus::Cancelled) => self.free(&order.placed, None),
                    (true, OrderStatus::Complete) => self.free(&order.placed, Some(SeatStatus::Sold)),
                    _ => {}
                }
                self.orders.insert(order_id, order);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::definition::{SectionDraft, TicketTypeDraft};
    use super::*;
    use crate::testing::{account, at, given, order};

    const ORGANIZER: u128 = 1;
    const BUYER: u128 = 2;

    fn show_id() -> ShowId {
        ShowId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn ga() -> TicketTypeId {
        TicketTypeId::of(show_id(), 0)
    }

    fn vip() -> TicketTypeId {
        TicketTypeId::of(show_id(), 1)
    }

    fn draft() -> ShowDraft {
        ShowDraft {
            title: "Rock Arena".into(),
            venue: "Town Hall".into(),
            starts_at: at(86_400),
            ticket_types: vec![
                TicketTypeDraft { name: "Standing".into(), price_cents: 2_500, capacity: 5 },
                TicketTypeDraft { name: "VIP".into(), price_cents: 10_000, capacity: 2 },
            ],
            sections: vec![SectionDraft { name: "A".into(), price_cents: 9_000, rows: 2, seats_per_row: 3 }],
        }
    }

    fn created() -> Event {
        let command =
            ShowCommand::Create { show_id: show_id(), organizer: account(ORGANIZER), draft: draft(), at: at(0) };
        Show::default().decide(command).unwrap_or_else(|e| panic!("{e}")).remove(0)
    }

    fn request(n: u128, buyer: u128, tickets: Vec<(TicketTypeId, i64)>, seats: &[&str]) -> HoldRequest {
        HoldRequest {
            order_id: order(n),
            buyer: account(buyer),
            tickets,
            seats: seats.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: at(1_000),
            idempotency_key: None,
        }
    }

    fn place(request: HoldRequest) -> ShowCommand {
        ShowCommand::Place { request, at: at(100) }
    }

    fn placed(n: u128, tickets: Vec<(TicketTypeId, i64)>, seats: &[&str]) -> Event {
        let show = Show::replay(&[created()]);
        let (event, _) = show.decide_holds(&[request(n, BUYER, tickets, seats)], at(100));
        event.unwrap_or_else(|| panic!("placed"))
    }

    fn seat(s: &str) -> SeatId {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_order_holds_its_tickets_and_seats_at_their_prices_and_pays_their_sum() {
        let (events, show) = given::<Show>([created()])
            .when(place(request(1, BUYER, vec![(ga(), 2), (vip(), 1)], &["A-1-2"])))
            .then_ok();
        let Some(Event::ShowOrdersPlaced { orders, .. }) = events.first() else { panic!("{events:?}") };
        assert_eq!(orders[0].amount_cents, 2 * 2_500 + 10_000 + 9_000);
        assert_eq!((show.ticket_types[0].available(), show.ticket_types[1].available()), (3, 1));
        assert_eq!(show.seat_status(&seat("A-1-2")), Some(SeatStatus::Reserved));
        assert_eq!(show.sections[0].available, 5);
        assert_eq!(show.orders[&order(1)].ticket_count(), 4);
    }

    #[test]
    fn a_type_named_twice_counts_both_quantities() {
        let show =
            given::<Show>([created()]).when(place(request(1, BUYER, vec![(ga(), 2), (ga(), 3)], &[]))).then_ok().1;
        assert_eq!(show.ticket_types[0].available(), 0);
        given::<Show>([created()])
            .when(place(request(1, BUYER, vec![(ga(), 3), (ga(), 3)], &[])))
            .then_err(ShowError::Unavailable { seats: vec![], ticket_types: vec![ga()] });
    }

    #[test]
    fn all_or_nothing_names_every_seat_and_type_that_is_short() {
        let first = placed(1, vec![(vip(), 2)], &["A-1-1"]);
        given::<Show>([created(), first])
            .when(place(request(2, 3, vec![(ga(), 1), (vip(), 1)], &["A-1-1", "A-1-2"])))
            .then_err(ShowError::Unavailable { seats: vec![seat("A-1-1")], ticket_types: vec![vip()] });
        let error = ShowError::Unavailable { seats: vec![seat("A-1-1")], ticket_types: vec![vip()] };
        assert_eq!(error.unavailable(), vec!["A-1-1".to_owned(), vip().to_string()]);
        assert_eq!(error.code(), ErrorCode::Conflict);
    }

    #[test]
    fn an_order_holds_one_to_ten_tickets_and_no_seat_twice() {
        let bad = |tickets, seats: &[&str], field: &str| {
            let result = Show::replay(&[created()]).decide(place(request(1, BUYER, tickets, seats)));
            assert!(
                matches!(&result, Err(ShowError::Invalid { field: f, .. }) if f == field),
                "{result:?}, expected {field}"
            );
        };
        bad(vec![], &[], "seats");
        bad(vec![(ga(), 0)], &[], "items");
        bad(vec![(ga(), -1), (vip(), 2)], &[], "items");
        bad(vec![(ga(), 5)], &["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3"], "items");
        bad(vec![], &["A-1-1", "A-1-1"], "seats");
        bad(vec![(ga(), i64::MAX), (vip(), i64::MAX)], &[], "items");
        given::<Show>([created()])
            .when(place(request(1, BUYER, vec![(ga(), 5), (vip(), 2)], &["A-1-1", "A-1-2", "A-1-3"])))
            .then_ok();
    }

    #[test]
    fn unknown_types_and_seats_are_not_found_and_an_unknown_show_too() {
        let other = TicketTypeId::of(ShowId::from_uuid(uuid::Uuid::from_u128(8)), 0);
        given::<Show>([created()])
            .when(place(request(1, BUYER, vec![(other, 1)], &[])))
            .then_err(ShowError::TicketTypeNotFound);
        for missing in ["A-3-1", "A-1-4", "B-1-1", "A-0-1", "nonsense"] {
            given::<Show>([created()])
                .when(place(request(1, BUYER, vec![], &[missing])))
                .then_err(ShowError::SeatNotFound);
        }
        given::<Show>([]).when(place(request(1, BUYER, vec![(ga(), 1)], &[]))).then_err(ShowError::NotFound);
    }

    #[test]
    fn the_organiser_cannot_buy_and_nobody_buys_once_it_started() {
        given::<Show>([created()])
            .when(place(request(1, ORGANIZER, vec![(ga(), 1)], &[])))
            .then_err(ShowError::OwnShow);
        given::<Show>([created()])
            .when(ShowCommand::Place { request: request(1, BUYER, vec![(ga(), 1)], &[]), at: at(86_400) })
            .then_err(ShowError::SalesClosed);
        given::<Show>([created()])
            .when(ShowCommand::Place { request: request(1, BUYER, vec![(ga(), 1)], &[]), at: at(1_000) })
            .then_err(ShowError::HoldLapsed);
    }

    #[test]
    fn the_same_order_again_is_already_placed_and_another_buyer_cannot_take_its_id() {
        let first = placed(1, vec![(ga(), 1)], &[]);
        given::<Show>([created(), first.clone()]).when(place(request(1, BUYER, vec![(ga(), 1)], &[]))).then_nothing();
        given::<Show>([created(), first]).when(place(request(1, 3, vec![(ga(), 1)], &[]))).then_err(ShowError::IdInUse);
    }

    #[test]
    fn a_group_decided_together_never_gives_one_seat_or_ticket_twice() {
        let show = Show::replay(&[created()]);
        let requests = [
            request(1, 2, vec![(ga(), 3)], &["A-1-1"]),
            request(2, 3, vec![(ga(), 3)], &[]),
            request(3, 4, vec![(ga(), 2)], &["A-1-1"]),
            request(4, 5, vec![(ga(), 2)], &["A-1-2"]),
            request(1, 2, vec![(ga(), 3)], &["A-1-1"]),
            request(1, 9, vec![(vip(), 1)], &[]),
        ];
        let (event, answers) = show.decide_holds(&requests, at(100));
        assert_eq!(
            answers,
            vec![
                Ok(Held::Placed),
                Err(ShowError::Unavailable { seats: vec![], ticket_types: vec![ga()] }),
                Err(ShowError::Unavailable { seats: vec![seat("A-1-1")], ticket_types: vec![] }),
                Ok(Held::Placed),
                Ok(Held::AlreadyPlaced),
                Err(ShowError::IdInUse),
            ]
        );
        let event = event.unwrap_or_else(|| panic!("placed"));
        let Event::ShowOrdersPlaced { orders, .. } = &event else { panic!("{event:?}") };
        assert_eq!(orders.iter().map(|o| o.order_id).collect::<Vec<_>>(), vec![order(1), order(4)]);
        let after = show.evolve(&event);
        assert_eq!(after.ticket_types[0].available(), 0);
        assert_eq!(after.sections[0].available, 4);
        let (nothing, _) = after.decide_holds(&[request(9, 2, vec![(ga(), 1)], &[])], at(100));
        assert_eq!(nothing, None, "a group with no order placed writes nothing");
    }

    #[test]
    fn cancelling_or_expiring_frees_every_item_at_once_and_only_once() {
        let first = placed(1, vec![(ga(), 2), (vip(), 2)], &["A-1-1", "A-2-3"]);
        let cancelled = Event::ShowOrderCancelled {
            show_id: show_id(),
            order_id: order(1),
            reason: CancelReason::User,
            by: Some(account(BUYER)),
            at: at(200),
        };
        given::<Show>([created(), first.clone()])
            .when(ShowCommand::Cancel { order_id: order(1), actor: Actor::user(account(BUYER)), at: at(200) })
            .then([cancelled.clone()]);
        let show = Show::replay(&[created(), first.clone(), cancelled.clone(), cancelled.clone()]);
        assert_eq!((show.ticket_types[0].available(), show.ticket_types[1].available()), (5, 2));
        assert_eq!(show.sections[0].available, 6);
        assert_eq!(show.seat_status(&seat("A-2-3")), Some(SeatStatus::Available));
        let expired = |now| ShowCommand::Expire { order_id: order(1), at: at(now) };
        given::<Show>([created(), first.clone()]).when(expired(999)).then_nothing();
        let (events, show) = given::<Show>([created(), first.clone()]).when(expired(1_000)).then_ok();
        assert!(matches!(events[..], [Event::ShowOrderCancelled { reason: CancelReason::Expired, by: None, .. }]));
        assert_eq!(show.ticket_types[1].available(), 2);
        given::<Show>([created(), first, cancelled]).when(expired(1_000)).then_nothing();
        given::<Show>([created()]).when(expired(1_000)).then_nothing();
    }

    #[test]
    fn only_the_buyer_or_an_admin_cancels_and_a_cancelled_order_is_returned_unchanged() {
        let first = placed(1, vec![(ga(), 1)], &[]);
        let cancel = |actor| ShowCommand::Cancel { order_id: order(1), actor, at: at(200) };
        given::<Show>([created(), first.clone()]).when(cancel(Actor::user(account(3)))).then_err(ShowError::NotOwner);
        let (events, _) = given::<Show>([created(), first.clone()]).when(cancel(Actor::admin(account(3)))).then_ok();
        assert!(matches!(events[..], [Event::ShowOrderCancelled { reason: CancelReason::Admin, .. }]));
        let done = events[0].clone();
        given::<Show>([created(), first, done]).when(cancel(Actor::user(account(BUYER)))).then_nothing();
        given::<Show>([created()]).when(cancel(Actor::user(account(BUYER)))).then_err(ShowError::OrderNotFound);
    }

    #[test]
    fn the_organiser_or_an_admin_updates_title_venue_and_time() {
        let update = |actor, title: Option<&str>, starts_at| ShowCommand::Update {
            actor,
            title: title.map(str::to_owned),
            venue: None,
            starts_at,
            at: at(10),
        };
        given::<Show>([created()])
            .when(update(Actor::user(account(BUYER)), Some("Mine"), None))
            .then_err(ShowError::NotOrganizer);
        let (_, show) = given::<Show>([created()])
            .when(update(Actor::admin(account(9)), Some(" Jazz Night "), Some(at(90_000))))
            .then_ok();
        let info = show.info.unwrap_or_else(|| panic!("created"));
        assert_eq!((info.title.as_str(), info.starts_at, info.updated_at), ("Jazz Night", at(90_000), at(10)));
        given::<Show>([created()])
            .when(update(Actor::user(account(ORGANIZER)), Some("Rock Arena"), None))
            .then_nothing();
        let result = Show::replay(&[created()]).decide(update(Actor::user(account(ORGANIZER)), None, Some(at(5))));
        assert!(matches!(result, Err(ShowError::Invalid { field, .. }) if field == "startsAt"));
        given::<Show>([]).when(update(Actor::user(account(ORGANIZER)), Some("x"), None)).then_err(ShowError::NotFound);
    }

    fn start(now: i64, actor: u128) -> ShowCommand {
        ShowCommand::Payment(PaymentCommand::Start {
            payment_id: crate::testing::payment(1),
            order_id: order(1),
            actor: Actor::user(account(actor)),
            idempotency_key: "k".into(),
            at: at(now),
        })
    }

    fn settle(outcome: crate::PaymentOutcome, now: i64) -> ShowCommand {
        ShowCommand::Payment(PaymentCommand::Settle { payment_id: crate::testing::payment(1), outcome, at: at(now) })
    }

    #[test]
    fn a_paid_order_sells_everything_it_held_and_keeps_it() {
        let first = placed(1, vec![(ga(), 2), (vip(), 1)], &["A-1-1"]);
        given::<Show>([created(), first.clone()])
            .when(start(200, 3))
            .then_err(ShowError::Payment(PaymentError::NotBuyer));
        let (events, _) = given::<Show>([created(), first.clone()]).when(start(200, BUYER)).then_ok();
        let [Event::ShowPaymentStarted { amount_cents, .. }] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(*amount_cents, 2 * 2_500 + 10_000 + 9_000, "the order's amount");
        let started = events[0].clone();
        let paid = crate::PaymentOutcome::Succeeded { provider_ref: "pi_1".into() };
        let (events, show) =
            given::<Show>([created(), first.clone(), started.clone()]).when(settle(paid.clone(), 300)).then_ok();
        assert!(matches!(events[..], [Event::ShowPaymentSucceeded { .. }]), "{events:?}");
        assert_eq!(show.orders[&order(1)].status, OrderStatus::Complete);
        assert_eq!((show.ticket_types[0].held, show.ticket_types[0].sold, show.ticket_types[0].available()), (0, 2, 3));
        assert_eq!(show.seat_status(&seat("A-1-1")), Some(SeatStatus::Sold));
        assert_eq!(show.sections[0].available, 5);
        assert_eq!(show.payments[&crate::testing::payment(1)].amount_cents, 24_000);
        // A paid order never expires nor cancels.
        let history = [created(), first, started, events[0].clone()];
        given::<Show>(history.clone()).when(ShowCommand::Expire { order_id: order(1), at: at(5_000) }).then_nothing();
        given::<Show>(history)
            .when(ShowCommand::Cancel { order_id: order(1), actor: Actor::user(account(BUYER)), at: at(400) })
            .then_err(ShowError::AlreadyComplete);
    }

    #[test]
    fn money_after_the_hold_closed_is_late_and_a_failure_reopens_the_order() {
        let first = placed(1, vec![(ga(), 1)], &[]);
        let started = Show::replay(&[created(), first.clone()]).decide(start(200, BUYER)).unwrap_or_default().remove(0);
        let expired = Event::ShowOrderCancelled {
            show_id: show_id(),
            order_id: order(1),
            reason: CancelReason::Expired,
            by: None,
            at: at(1_000),
        };
        let paid = crate::PaymentOutcome::Succeeded { provider_ref: "pi_1".into() };
        let (events, show) =
            given::<Show>([created(), first.clone(), started.clone(), expired]).when(settle(paid, 1_100)).then_ok();
        assert!(matches!(events[..], [Event::LatePaymentReceived { .. }]), "{events:?}");
        assert_eq!(show.orders[&order(1)].status, OrderStatus::Cancelled);
        assert_eq!((show.ticket_types[0].sold, show.ticket_types[0].available()), (0, 5), "nothing sold");
        assert!(show.payments[&crate::testing::payment(1)].refund_due);
        let failed = crate::PaymentOutcome::Failed { reason: "card_declined".into() };
        let (_, show) = given::<Show>([created(), first, started]).when(settle(failed, 300)).then_ok();
        assert_eq!(show.orders[&order(1)].status, OrderStatus::Created, "the buyer may pay again");
    }

    #[test]
    fn a_show_is_created_once() {
        given::<Show>([created()])
            .when(ShowCommand::Create { show_id: show_id(), organizer: account(ORGANIZER), draft: draft(), at: at(0) })
            .then_err(ShowError::IdInUse);
    }
}
