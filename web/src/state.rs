//! What the pages show, and how it changes: view types and reducers.
//!
//! Reducers are plain functions of (state, action), so `cargo test` checks the live-update rules
//! (a change replaces the row it names, an older version never overwrites a newer one, a new
//! ticket appears on top when it matches the filter) without a browser.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use yew::Reducible;

use crate::graphql;

// The statuses and cancel reasons are the domain's own types: their serde form is the GraphQL
// enums' (SCREAMING_SNAKE_CASE), so `graphql-client` decodes into them (`extern_enums`).
pub use domain::{CancelReason, OrderStatus, PaymentStatus, SeatStatus, TicketStatus};

/// A user's role (GraphQL `Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Every account.
    User,
    /// Administrators.
    Admin,
}

/// The signed-in user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Account id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Whether the account is an administrator.
    pub admin: bool,
}

impl User {
    fn new(id: String, email: Option<String>, roles: &[Role]) -> Self {
        Self { id, email: email.unwrap_or_default(), admin: roles.contains(&Role::Admin) }
    }
}

macro_rules! user_from {
    ($($source:ty),*) => {$(
        impl From<$source> for User {
            fn from(u: $source) -> Self {
                User::new(u.id, u.email, &u.roles.unwrap_or_default())
            }
        }
    )*};
}
user_from!(graphql::me::MeMe, graphql::sign_up::SignUpSignUp, graphql::sign_in::SignInSignIn);

/// A ticket as the pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// The ticket's id: its page's address and the key lists merge pushes by.
    pub id: String,
    /// The title shown.
    pub title: String,
    /// The price in cents, formatted with `currency`.
    pub price_cents: i64,
    /// The ISO 4217 code the price is in.
    pub currency: String,
    /// Where it is in its life: its badge, and which lists it belongs to.
    pub status: TicketStatus,
    /// Changes seen; a higher version is newer.
    pub version: i64,
    /// Listed at (RFC 3339).
    pub created_at: String,
    /// Last changed at (RFC 3339).
    pub updated_at: String,
    /// The seller's account id.
    pub seller_id: String,
    /// The seller's email, when the viewer may see it.
    pub seller_email: Option<String>,
    /// Whether the viewer may edit it now (the gateway asks the domain's rules).
    pub viewer_can_edit: bool,
    /// Whether the viewer may hold it now (the gateway asks the domain's rules).
    pub viewer_can_hold: bool,
    /// Whether the viewer may read its history (the gateway asks the domain's rules).
    pub viewer_can_read_history: bool,
}

macro_rules! ticket_from {
    ($($source:ty),*) => {$(
        impl From<$source> for Ticket {
            fn from(t: $source) -> Self {
                Ticket {
                    id: t.id,
                    title: t.title,
                    price_cents: t.price_cents,
                    currency: t.currency,
                    status: t.status,
                    version: t.version,
                    created_at: t.created_at,
                    updated_at: t.updated_at,
                    seller_id: t.seller.id,
                    seller_email: t.seller.email,
                    viewer_can_edit: t.viewer_can_edit,
                    viewer_can_hold: t.viewer_can_hold,
                    viewer_can_read_history: t.viewer_can_read_history,
                }
            }
        }
    )*};
}
ticket_from!(
    graphql::tickets::TicketsTicketsNodes,
    graphql::my_tickets::MyTicketsMyTicketsNodes,
    graphql::tickets_changed::TicketsChangedTicketChanged,
    graphql::ticket_detail::TicketDetailTicket,
    graphql::ticket_changed::TicketChangedTicketChanged
);

/// An order as the pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The order's id: its page's address and the key lists merge pushes by.
    pub id: String,
    /// Where it is in its life: its badge and which part of the page shows.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// When the hold lapses (RFC 3339).
    pub expires_at: String,
    /// Placed at (RFC 3339).
    pub created_at: String,
    /// Changes seen.
    pub version: i64,
    /// The buyer's account id.
    pub buyer_id: String,
    /// The ticket's id (an order on a ticket).
    pub ticket_id: Option<String>,
    /// The event's id (an order on an event).
    pub event_id: Option<String>,
    /// The ticket's or the event's title.
    pub ticket_title: String,
    /// What the buyer pays, in cents.
    pub price_cents: i64,
    /// An event order's tickets: what each is (a tier's name, or a seat) and its price.
    pub items: Vec<(String, i64)>,
    /// The ISO 4217 code the price is in.
    pub currency: String,
    /// The latest payment's status.
    pub payment: Option<PaymentStatus>,
    /// Whether the viewer may cancel it now (the gateway asks the domain's rules).
    pub viewer_can_cancel: bool,
    /// Whether the viewer may pay for it now (the gateway asks the domain's rules).
    pub viewer_can_pay: bool,
}

macro_rules! order_from {
    ($($source:ty),*) => {$(
        impl From<$source> for Order {
            fn from(o: $source) -> Self {
                Order {
                    id: o.id,
                    status: o.status,
                    cancel_reason: o.cancel_reason,
                    expires_at: o.expires_at,
                    created_at: o.created_at,
                    version: o.version,
                    buyer_id: o.buyer.id,
                    ticket_title: o
                        .ticket
                        .as_ref()
                        .map(|t| t.title.clone())
                        .or_else(|| o.event.as_ref().map(|e| e.title.clone()))
                        .unwrap_or_default(),
                    currency: o.ticket.as_ref().map_or_else(|| "USD".to_owned(), |t| t.currency.clone()),
                    ticket_id: o.ticket.map(|t| t.id),
                    event_id: o.event.map(|e| e.id),
                    price_cents: o.amount_cents,
                    items: o
                        .items
                        .into_iter()
                        .map(|i| {
                            let what = i.seat.map(|seat| format!("Seat {seat}"));
                            (what.or(i.ticket_type.map(|t| t.name)).unwrap_or_default(), i.price_cents)
                        })
                        .collect(),
                    payment: o.payment.map(|p| p.status),
                    viewer_can_cancel: o.viewer_can_cancel,
                    viewer_can_pay: o.viewer_can_pay,
                }
            }
        }
    )*};
}
order_from!(
    graphql::order_detail::OrderDetailOrder,
    graphql::order_changed::OrderChangedOrderChanged,
    graphql::my_orders::MyOrdersMyOrdersNodes
);

/// An event in a list: enough for a card.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    /// The event's id: its page's address.
    pub id: String,
    /// The title.
    pub title: String,
    /// Where it takes place.
    pub venue: String,
    /// When it starts (RFC 3339).
    pub starts_at: String,
    /// Tickets left in all.
    pub available: i32,
    /// The lowest price of a ticket type or a section, in cents.
    pub from_cents: Option<i64>,
}

macro_rules! event_summary_from {
    ($($source:ty),*) => {$(
        impl From<$source> for EventSummary {
            fn from(e: $source) -> Self {
                let prices = e.ticket_types.iter().map(|t| t.price_cents).chain(e.sections.iter().map(|s| s.price_cents));
                EventSummary {
                    from_cents: prices.min(),
                    id: e.id,
                    title: e.title,
                    venue: e.venue,
                    starts_at: e.starts_at,
                    available: e.available as i32,
                }
            }
        }
    )*};
}
event_summary_from!(graphql::events::EventsEventsNodes, graphql::my_events::MyEventsMyEventsNodes);

/// A general-admission ticket type as the event page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketTypeView {
    /// Its id (`ticketTypeId` of an order item).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The price of one ticket, in cents.
    pub price_cents: i64,
    /// The ISO 4217 code the price is in.
    pub currency: String,
    /// How many tickets it has.
    pub capacity: i32,
    /// How many are left.
    pub available: i32,
    /// How many open orders hold.
    pub held: i32,
    /// How many are sold.
    pub sold: i32,
}

/// One seat of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatView {
    /// Its id (`A-3-17`).
    pub id: String,
    /// Its row, from 1.
    pub row: i32,
    /// Its number in the row, from 1.
    pub number: i32,
    /// Available, held or sold.
    pub status: SeatStatus,
}

/// A section of numbered seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionView {
    /// Its name.
    pub name: String,
    /// The price of each seat, in cents.
    pub price_cents: i64,
    /// How many rows.
    pub rows: i32,
    /// How many seats each row has.
    pub seats_per_row: i32,
    /// How many seats are available.
    pub available: i32,
    /// Its seats, row by row.
    pub seats: Vec<SeatView>,
}

impl SectionView {
    /// The seat at `row` and `number`, if the section has it (seats are kept row by row).
    pub fn at(&self, row: i32, number: i32) -> Option<&SeatView> {
        let inside = (1..=self.rows).contains(&row) && (1..=self.seats_per_row).contains(&number);
        let index = usize::try_from((row - 1) * self.seats_per_row + number - 1).ok().filter(|_| inside)?;
        self.seats.get(index).filter(|seat| seat.row == row && seat.number == number)
    }

    /// How many of its seats have `status`.
    pub fn count(&self, status: SeatStatus) -> usize {
        self.seats.iter().filter(|s| s.status == status).count()
    }
}

/// An event as its page shows it, kept live by `eventChanged`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id.
    pub id: String,
    /// The title.
    pub title: String,
    /// Where it takes place.
    pub venue: String,
    /// When it starts (RFC 3339).
    pub starts_at: String,
    /// Tickets left in all.
    pub available: i32,
    /// Changes seen; a higher version is newer.
    pub version: i64,
    /// The organiser's account id.
    pub organizer_id: String,
    /// Whether the viewer may change it (the organiser's sales view).
    pub viewer_can_edit: bool,
    /// Whether the viewer may order tickets to it now.
    pub viewer_can_order: bool,
    /// Its ticket types, in the organiser's order.
    pub ticket_types: Vec<TicketTypeView>,
    /// Its sections, in the organiser's order (shared: a render clones the event, not its seats).
    pub sections: Vec<Rc<SectionView>>,
}

impl Event {
    /// The seat with `id`, and its section's price.
    pub fn seat(&self, id: &str) -> Option<(&SeatView, i64)> {
        self.sections.iter().find_map(|s| s.seats.iter().find(|seat| seat.id == id).map(|seat| (seat, s.price_cents)))
    }

    /// What the API's `extensions.unavailable` ids are, in words: a ticket type's name with how
    /// many are left, or a seat's id.
    pub fn describe_unavailable(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .map(|id| match self.ticket_types.iter().find(|t| &t.id == id) {
                Some(t) if t.available == 0 => format!("{} (sold out)", t.name),
                Some(t) => format!("{} (only {} left)", t.name, t.available),
                None => format!("seat {id}"),
            })
            .collect()
    }
}

impl Versioned for Event {
    fn version(&self) -> i64 {
        self.version
    }
}

/// A section's seats from its `seatMap` (one letter per seat, row by row: `A` available, `R`
/// reserved, `S` sold). A map of another length than `rows × seatsPerRow` is not believed: its
/// seats would land in the wrong places, so none is shown.
pub fn seats_of_map(section: &str, rows: i32, seats_per_row: i32, map: &str) -> Vec<SeatView> {
    let per_row = seats_per_row.max(1);
    if usize::try_from(rows * per_row).ok() != Some(map.len()) {
        return Vec::new();
    }
    map.chars()
        .enumerate()
        .map(|(i, letter)| {
            let (row, number) = (i as i32 / per_row + 1, i as i32 % per_row + 1);
            let status = match letter {
                'A' => SeatStatus::Available,
                'R' => SeatStatus::Reserved,
                _ => SeatStatus::Sold,
            };
            SeatView { id: format!("{section}-{row}-{number}"), row, number, status }
        })
        .collect()
}

macro_rules! event_from {
    ($module:ident, $event:ident, $types:ident, $sections:ident) => {
        impl From<graphql::$module::$event> for Event {
            fn from(e: graphql::$module::$event) -> Self {
                Event {
                    id: e.id,
                    title: e.title,
                    venue: e.venue,
                    starts_at: e.starts_at,
                    available: e.available as i32,
                    version: e.version,
                    organizer_id: e.organizer.id,
                    viewer_can_edit: e.viewer_can_edit,
                    viewer_can_order: e.viewer_can_order,
                    ticket_types: e
                        .ticket_types
                        .into_iter()
                        .map(|t: graphql::$module::$types| TicketTypeView {
                            id: t.id,
                            name: t.name,
                            price_cents: t.price_cents,
                            currency: t.currency,
                            capacity: t.capacity as i32,
                            available: t.available as i32,
                            held: t.held as i32,
                            sold: t.sold as i32,
                        })
                        .collect(),
                    sections: e
                        .sections
                        .into_iter()
                        .map(|s: graphql::$module::$sections| {
                            Rc::new(SectionView {
                                seats: seats_of_map(&s.name, s.rows as i32, s.seats_per_row as i32, &s.seat_map),
                                name: s.name,
                                price_cents: s.price_cents,
                                rows: s.rows as i32,
                                seats_per_row: s.seats_per_row as i32,
                                available: s.available as i32,
                            })
                        })
                        .collect(),
                }
            }
        }
    };
}
event_from!(event_detail, EventDetailEvent, EventDetailEventTicketTypes, EventDetailEventSections);
event_from!(
    event_changed,
    EventChangedEventChanged,
    EventChangedEventChangedTicketTypes,
    EventChangedEventChangedSections
);

/// The most tickets one order may hold (PRODUCT.md: 1..=10 per order).
pub const MAX_TICKETS_PER_ORDER: u32 = 10;

/// What a buyer has chosen on an event page: tickets per type and seats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Basket {
    /// Tickets wanted per ticket type id (only types with at least one).
    pub quantities: Vec<(String, u32)>,
    /// Seat ids chosen, in the order they were picked.
    pub seats: Vec<String>,
    /// How many times the choice changed: each choice is held with an idempotency key of its own,
    /// so a retry of the same choice can never hold twice and another choice is never taken for
    /// a retry.
    pub generation: u64,
    /// Whether the last change was cut short by the limit of 10 tickets per order.
    pub full: bool,
}

/// What changes a [`Basket`].
#[derive(Debug, Clone, PartialEq)]
pub enum BasketAction {
    /// Wants this many tickets of a type.
    Quantity(String, u32),
    /// Picks or unpicks a seat.
    Seat(String),
    /// Drops seats someone else has taken.
    Drop(Vec<String>),
}

impl Reducible for Basket {
    type Action = BasketAction;
    fn reduce(self: Rc<Self>, action: BasketAction) -> Rc<Self> {
        let mut next = (*self).clone();
        let fitted = match &action {
            BasketAction::Quantity(id, quantity) => next.set_quantity(id, *quantity),
            BasketAction::Seat(id) => next.toggle_seat(id),
            BasketAction::Drop(ids) => {
                next.seats.retain(|seat| !ids.contains(seat));
                true
            }
        };
        next.full = !fitted;
        if next.quantities != self.quantities || next.seats != self.seats {
            next.generation += 1;
        }
        Rc::new(next)
    }
}

impl Basket {
    /// How many tickets in all.
    pub fn count(&self) -> u32 {
        self.quantities.iter().map(|(_, q)| q).sum::<u32>() + self.seats.len() as u32
    }

    /// How many of ticket type `id` are wanted.
    pub fn quantity(&self, id: &str) -> u32 {
        self.quantities.iter().find(|(t, _)| t == id).map_or(0, |(_, q)| *q)
    }

    /// Wants `quantity` of type `id`, as far as the per-order limit allows; false when it was cut.
    pub fn set_quantity(&mut self, id: &str, quantity: u32) -> bool {
        let others = self.count() - self.quantity(id);
        let allowed = quantity.min(MAX_TICKETS_PER_ORDER.saturating_sub(others));
        self.quantities.retain(|(t, _)| t != id);
        if allowed > 0 {
            self.quantities.push((id.to_owned(), allowed));
        }
        allowed == quantity
    }

    /// Picks or unpicks seat `id`; picking fails (false) once the order is full.
    pub fn toggle_seat(&mut self, id: &str) -> bool {
        if let Some(at) = self.seats.iter().position(|s| s == id) {
            self.seats.remove(at);
            true
        } else if self.count() < MAX_TICKETS_PER_ORDER {
            self.seats.push(id.to_owned());
            true
        } else {
            false
        }
    }

    /// The total at the event's current prices, in cents.
    pub fn total_cents(&self, event: &Event) -> i64 {
        let tickets: i64 = self
            .quantities
            .iter()
            .filter_map(|(id, q)| {
                event.ticket_types.iter().find(|t| &t.id == id).map(|t| t.price_cents * i64::from(*q))
            })
            .sum();
        let seats: i64 = self.seats.iter().filter_map(|id| event.seat(id).map(|(_, price)| price)).sum();
        tickets + seats
    }

    /// The chosen seats the event now says are taken (or gone).
    pub fn taken(&self, event: &Event) -> Vec<String> {
        self.seats
            .iter()
            .filter(|id| event.seat(id).is_none_or(|(seat, _)| seat.status != SeatStatus::Available))
            .cloned()
            .collect()
    }
}

/// Where the signed-in user is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// Whether `me` has answered yet.
    pub known: bool,
    /// The user, when signed in.
    pub user: Option<User>,
}

/// What changes a [`Session`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionAction {
    /// `me` answered, or a sign-in or sign-out happened.
    Set(Option<User>),
}

impl Reducible for Session {
    type Action = SessionAction;
    fn reduce(self: Rc<Self>, action: SessionAction) -> Rc<Self> {
        match action {
            SessionAction::Set(user) => Rc::new(Session { known: true, user }),
        }
    }
}

/// A page of things, newest first, kept live.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketList {
    /// Only tickets with this status belong (none: all).
    pub filter: Option<TicketStatus>,
    /// Only tickets of this seller belong (for "my tickets").
    pub seller: Option<String>,
    /// The tickets shown.
    pub items: Vec<Ticket>,
    /// The cursor after the last one loaded, when more exist.
    pub next: Option<String>,
    /// Whether the first page has arrived.
    pub loaded: bool,
    /// Whether these are a search's results: a new listing does not join them (whether it
    /// matches is the server's to say).
    pub searching: bool,
}

impl TicketList {
    /// An empty list of tickets with `filter`, optionally of one seller.
    pub fn new(filter: Option<TicketStatus>, seller: Option<String>) -> Self {
        Self { filter, seller, items: Vec::new(), next: None, loaded: false, searching: false }
    }

    /// The same list, as a search's results (or not).
    #[must_use]
    pub fn searching(self, searching: bool) -> Self {
        Self { searching, ..self }
    }

    fn belongs(&self, ticket: &Ticket) -> bool {
        !self.searching
            && self.filter.is_none_or(|status| status == ticket.status)
            && self.seller.as_ref().is_none_or(|seller| *seller == ticket.seller_id)
    }
}

/// What changes a [`TicketList`].
#[derive(Debug, Clone, PartialEq)]
pub enum ListAction {
    /// Start over with another status filter, searching or not (rows come with the next `First`).
    Reset(Option<TicketStatus>, bool),
    /// The first page (replaces everything).
    First(Vec<Ticket>, Option<String>),
    /// A further page (appended; rows already shown are skipped).
    More(Vec<Ticket>, Option<String>),
    /// The first page again, after a (re)connected subscription: merged, so pages loaded
    /// further down stay.
    Refresh(Vec<Ticket>, Option<String>),
    /// A ticket changed (from a subscription or a mutation).
    Changed(Ticket),
}

impl Reducible for TicketList {
    type Action = ListAction;
    fn reduce(self: Rc<Self>, action: ListAction) -> Rc<Self> {
        let mut list = (*self).clone();
        match action {
            ListAction::Reset(filter, searching) => {
                return Rc::new(TicketList::new(filter, list.seller).searching(searching));
            }
            ListAction::First(items, next) => {
                list.items = items;
                list.next = next;
                list.loaded = true;
            }
            ListAction::More(items, next) => {
                for item in items {
                    if !list.items.iter().any(|t| t.id == item.id) {
                        list.items.push(item);
                    }
                }
                list.next = next;
            }
            ListAction::Refresh(items, next) if !list.loaded => {
                return Rc::new(list).reduce(ListAction::First(items, next));
            }
            ListAction::Refresh(items, _) => {
                let mut list = Rc::new(list);
                for ticket in items.into_iter().rev() {
                    list = list.reduce(ListAction::Changed(ticket));
                }
                return list;
            }
            ListAction::Changed(ticket) => match list.items.iter().position(|t| t.id == ticket.id) {
                Some(at) if list.items[at].version > ticket.version => {}
                // A filtered list keeps a row that left the filter until reload: rows do not
                // vanish under the reader's pointer; its badge shows the new status.
                Some(at) => list.items[at] = ticket,
                // New tickets arrive on top; one that only changed status joins there too.
                None if list.belongs(&ticket) && list.loaded => list.items.insert(0, ticket),
                None => {}
            },
        }
        Rc::new(list)
    }
}

/// One ticket or order kept live: the newest version wins.
#[derive(Debug, Clone, PartialEq)]
pub enum Live<T> {
    /// Not answered yet.
    Loading,
    /// Unknown, or not the viewer's to see.
    Missing,
    /// The latest seen.
    Ready(T),
}

/// Something with a version that only grows.
pub trait Versioned {
    /// The version.
    fn version(&self) -> i64;
}

impl Versioned for Ticket {
    fn version(&self) -> i64 {
        self.version
    }
}

impl Versioned for Order {
    fn version(&self) -> i64 {
        self.version
    }
}

/// What changes a [`Live`] value.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveAction<T> {
    /// A query answered (`None`: not found).
    Loaded(Option<T>),
    /// A subscription or mutation brought a newer copy.
    Changed(T),
}

impl<T: Versioned + Clone> Reducible for Live<T> {
    type Action = LiveAction<T>;
    fn reduce(self: Rc<Self>, action: LiveAction<T>) -> Rc<Self> {
        let newer = |incoming: &T| match &*self {
            Live::Ready(current) => incoming.version() >= current.version(),
            _ => true,
        };
        match action {
            LiveAction::Loaded(None) if matches!(*self, Live::Loading) => Rc::new(Live::Missing),
            LiveAction::Loaded(None) => self,
            LiveAction::Loaded(Some(value)) | LiveAction::Changed(value) if newer(&value) => {
                Rc::new(Live::Ready(value))
            }
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: &str, status: TicketStatus, version: i64) -> Ticket {
        Ticket {
            id: id.into(),
            title: format!("Ticket {id}"),
            price_cents: 1500,
            currency: "USD".into(),
            status,
            version,
            created_at: "2026-11-24T10:00:00Z".into(),
            updated_at: "2026-11-24T10:00:00Z".into(),
            seller_id: "seller".into(),
            seller_email: None,
            viewer_can_edit: false,
            viewer_can_hold: false,
            viewer_can_read_history: false,
        }
    }

    fn reduce(list: TicketList, action: ListAction) -> TicketList {
        (*Rc::new(list).reduce(action)).clone()
    }

    #[test]
    fn a_change_replaces_its_row_in_place() {
        let list = TicketList::new(None, None);
        let list = reduce(
            list,
            ListAction::First(
                vec![ticket("b", TicketStatus::Available, 1), ticket("a", TicketStatus::Available, 1)],
                None,
            ),
        );
        let list = reduce(list, ListAction::Changed(ticket("a", TicketStatus::Reserved, 2)));
        assert_eq!(
            list.items.iter().map(|t| (t.id.as_str(), t.status)).collect::<Vec<_>>(),
            [("b", TicketStatus::Available), ("a", TicketStatus::Reserved)]
        );
    }

    #[test]
    fn an_older_version_never_overwrites_a_newer_one() {
        let list =
            reduce(TicketList::new(None, None), ListAction::First(vec![ticket("a", TicketStatus::Sold, 4)], None));
        let list = reduce(list, ListAction::Changed(ticket("a", TicketStatus::Reserved, 3)));
        assert_eq!(list.items[0].status, TicketStatus::Sold);
    }

    #[test]
    fn a_search_keeps_its_results_and_takes_no_new_listings() {
        let list = TicketList::new(None, None).searching(true);
        let list = reduce(list, ListAction::First(vec![ticket("a", TicketStatus::Available, 1)], None));
        let list = reduce(list, ListAction::Changed(ticket("new", TicketStatus::Available, 1)));
        assert_eq!(list.items.len(), 1, "whether a new listing matches is the server's to say");
        let list = reduce(list, ListAction::Changed(ticket("a", TicketStatus::Sold, 2)));
        assert_eq!(list.items[0].status, TicketStatus::Sold, "a result still changes live");
        let list = reduce(list, ListAction::Reset(None, false));
        let list = reduce(list, ListAction::First(vec![], None));
        let list = reduce(list, ListAction::Changed(ticket("new", TicketStatus::Available, 1)));
        assert_eq!(list.items.len(), 1, "without a search new listings arrive again");
    }

    #[test]
    fn new_tickets_arrive_on_top_when_they_match_the_filter() {
        let list = TicketList::new(Some(TicketStatus::Available), None);
        let list = reduce(list, ListAction::First(vec![ticket("a", TicketStatus::Available, 1)], None));
        let list = reduce(list, ListAction::Changed(ticket("n", TicketStatus::Available, 1)));
        let list = reduce(list, ListAction::Changed(ticket("s", TicketStatus::Sold, 5)));
        assert_eq!(list.items.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["n", "a"]);
    }

    #[test]
    fn another_sellers_ticket_stays_out_of_my_list() {
        let list = TicketList::new(None, Some("me".into()));
        let list = reduce(list, ListAction::First(vec![], None));
        let list = reduce(list, ListAction::Changed(ticket("x", TicketStatus::Available, 1)));
        assert!(list.items.is_empty());
    }

    #[test]
    fn changes_before_the_first_page_are_left_to_the_page() {
        let list = reduce(TicketList::new(None, None), ListAction::Changed(ticket("x", TicketStatus::Available, 1)));
        assert!(list.items.is_empty());
    }

    #[test]
    fn a_refresh_merges_and_keeps_further_pages() {
        let list = reduce(
            TicketList::new(None, None),
            ListAction::First(vec![ticket("b", TicketStatus::Available, 1)], Some("1".into())),
        );
        let list = reduce(list, ListAction::More(vec![ticket("a", TicketStatus::Available, 1)], None));
        let list = reduce(
            list,
            ListAction::Refresh(
                vec![
                    ticket("d", TicketStatus::Available, 1),
                    ticket("c", TicketStatus::Available, 1),
                    ticket("b", TicketStatus::Sold, 3),
                ],
                Some("x".into()),
            ),
        );
        assert_eq!(list.items.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["d", "c", "b", "a"]);
        assert_eq!(list.items[2].status, TicketStatus::Sold);
        assert_eq!(list.next, None, "the cursor of the pages loaded further down stays");
    }

    #[test]
    fn further_pages_skip_rows_already_shown() {
        let list = reduce(
            TicketList::new(None, None),
            ListAction::First(vec![ticket("c", TicketStatus::Available, 1)], Some("2".into())),
        );
        let list = reduce(
            list,
            ListAction::More(
                vec![ticket("c", TicketStatus::Available, 1), ticket("b", TicketStatus::Available, 1)],
                None,
            ),
        );
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.next, None);
    }

    fn event(types: &[(&str, i32)], seats: &[(&str, SeatStatus)]) -> Event {
        Event {
            id: "e".into(),
            title: "Hamlet".into(),
            venue: "Globe".into(),
            starts_at: "2027-01-01T19:30:00Z".into(),
            available: 0,
            version: 1,
            organizer_id: "o".into(),
            viewer_can_edit: false,
            viewer_can_order: true,
            ticket_types: types
                .iter()
                .map(|(name, available)| TicketTypeView {
                    id: format!("t-{name}"),
                    name: (*name).into(),
                    price_cents: 2500,
                    currency: "USD".into(),
                    capacity: 100,
                    available: *available,
                    held: 0,
                    sold: 100 - available,
                })
                .collect(),
            sections: vec![Rc::new(SectionView {
                name: "A".into(),
                price_cents: 4000,
                rows: 1,
                seats_per_row: seats.len() as i32,
                available: 0,
                seats: seats
                    .iter()
                    .enumerate()
                    .map(|(i, (id, status))| SeatView {
                        id: (*id).into(),
                        row: 1,
                        number: i as i32 + 1,
                        status: *status,
                    })
                    .collect(),
            })],
        }
    }

    fn act(basket: Basket, action: BasketAction) -> Basket {
        (*Rc::new(basket).reduce(action)).clone()
    }

    #[test]
    fn a_basket_never_holds_more_than_ten_tickets_and_says_so() {
        let basket = act(Basket::default(), BasketAction::Quantity("t-Floor".into(), 8));
        let basket = act(basket, BasketAction::Seat("A-1-1".into()));
        let basket = act(basket, BasketAction::Seat("A-1-2".into()));
        let basket = act(basket, BasketAction::Seat("A-1-3".into()));
        assert!(basket.full && !basket.seats.contains(&"A-1-3".to_owned()), "an eleventh ticket was taken");
        let basket = act(basket, BasketAction::Quantity("t-Floor".into(), 12));
        assert_eq!((basket.quantity("t-Floor"), basket.full), (8, true));
        let basket = act(basket, BasketAction::Seat("A-1-2".into()));
        assert!(!basket.full, "unpicking a seat always works");
        let basket = act(basket, BasketAction::Quantity("t-Floor".into(), 0));
        assert_eq!((basket.count(), basket.quantities.len()), (1, 0));
    }

    #[test]
    fn every_other_choice_is_a_new_generation_and_the_same_choice_is_not() {
        let first = act(Basket::default(), BasketAction::Seat("A-1-1".into()));
        let same = act(first.clone(), BasketAction::Drop(vec!["A-9-9".into()]));
        assert_eq!(same.generation, first.generation, "nothing changed, so a retry keeps its key");
        let capped = act(first.clone(), BasketAction::Quantity("t-Floor".into(), 0));
        assert_eq!(capped.generation, first.generation);
        let other = act(first.clone(), BasketAction::Quantity("t-Floor".into(), 1));
        assert!(other.generation > first.generation);
        let dropped = act(first.clone(), BasketAction::Drop(vec!["A-1-1".into()]));
        assert!(dropped.generation > first.generation && dropped.seats.is_empty());
    }

    #[test]
    fn a_basket_totals_at_current_prices_and_drops_seats_others_took() {
        let event = event(&[("Floor", 5)], &[("A-1-1", SeatStatus::Available), ("A-1-2", SeatStatus::Reserved)]);
        let mut basket = Basket::default();
        basket.set_quantity("t-Floor", 2);
        basket.toggle_seat("A-1-1");
        basket.toggle_seat("A-1-2");
        assert_eq!(basket.total_cents(&event), 2 * 2500 + 2 * 4000);
        assert_eq!(basket.taken(&event), ["A-1-2"]);
        assert_eq!(event.sections[0].at(1, 2).map(|s| s.id.as_str()), Some("A-1-2"));
        assert_eq!(
            (event.sections[0].at(1, 3), event.sections[0].at(2, 1), event.sections[0].at(0, 1)),
            (None, None, None)
        );
    }

    #[test]
    fn a_seat_map_reads_row_by_row() {
        assert!(seats_of_map("A", 2, 3, "ARSAA").is_empty(), "a map of the wrong length was believed");
        let seats = seats_of_map("Upper Circle", 2, 3, "ARSAAA");
        let view: Vec<_> = seats.iter().map(|s| (s.id.as_str(), s.row, s.number, s.status)).collect();
        assert_eq!(
            view[..4],
            [
                ("Upper Circle-1-1", 1, 1, SeatStatus::Available),
                ("Upper Circle-1-2", 1, 2, SeatStatus::Reserved),
                ("Upper Circle-1-3", 1, 3, SeatStatus::Sold),
                ("Upper Circle-2-1", 2, 1, SeatStatus::Available),
            ]
        );
        assert_eq!(seats.len(), 6);
    }

    #[test]
    fn unavailable_ids_are_named_with_what_is_left() {
        let event = event(&[("Floor", 3), ("VIP", 0)], &[("A-1-1", SeatStatus::Sold)]);
        let words = event.describe_unavailable(&["A-1-1".into(), "t-Floor".into(), "t-VIP".into()]);
        assert_eq!(words, ["seat A-1-1", "Floor (only 3 left)", "VIP (sold out)"]);
    }

    #[test]
    fn a_live_value_keeps_the_newest_version() {
        let live = Rc::new(Live::Loading);
        let live = live.reduce(LiveAction::Changed(ticket("a", TicketStatus::Reserved, 2)));
        let live = live.reduce(LiveAction::Loaded(Some(ticket("a", TicketStatus::Available, 1))));
        assert_eq!(*live, Live::Ready(ticket("a", TicketStatus::Reserved, 2)));
        let live = live.reduce(LiveAction::Loaded(None));
        assert!(matches!(*live, Live::Ready(_)));
        let missing = Rc::new(Live::<Ticket>::Loading).reduce(LiveAction::Loaded(None));
        assert_eq!(*missing, Live::Missing);
    }
}
