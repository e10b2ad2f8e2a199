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
pub use domain::{CancelReason, OrderStatus, PaymentStatus, TicketStatus};

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
}

impl TicketList {
    /// An empty list of tickets with `filter`, optionally of one seller.
    pub fn new(filter: Option<TicketStatus>, seller: Option<String>) -> Self {
        Self { filter, seller, items: Vec::new(), next: None, loaded: false }
    }

    fn belongs(&self, ticket: &Ticket) -> bool {
        self.filter.is_none_or(|status| status == ticket.status)
            && self.seller.as_ref().is_none_or(|seller| *seller == ticket.seller_id)
    }
}

/// What changes a [`TicketList`].
#[derive(Debug, Clone, PartialEq)]
pub enum ListAction {
    /// Start over with another status filter (rows come with the next `First`).
    Reset(Option<TicketStatus>),
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
            ListAction::Reset(filter) => return Rc::new(TicketList::new(filter, list.seller)),
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
