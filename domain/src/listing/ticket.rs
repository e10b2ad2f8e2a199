//! Tickets: listing, editing, and the status a hold or sale gives them.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Refusal};
use crate::ids::{AccountId, OrderId, TicketId};
use crate::listing::Listing;
use crate::money::{Currency, Price, PriceError};
use crate::title::{Title, TitleError};
use crate::{Actor, Event, Timestamp};

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    /// Anyone but the seller may hold it.
    Available,
    /// An open order holds it.
    Reserved,
    /// An order paid for it. Final.
    Sold,
}

/// A listed ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id: the listing boundary's subjects are named by it.
    pub id: TicketId,
    /// Who sells it.
    pub seller: AccountId,
    /// Its title.
    pub title: Title,
    /// Its current price.
    pub price: Price,
    /// The currency of the price (USD only, for now).
    pub currency: Currency,
    /// Where it stands in its lifecycle.
    pub status: TicketStatus,
    /// The order that holds or bought it.
    pub holder: Option<OrderId>,
    /// When it was listed.
    pub listed_at: Timestamp,
    /// When anything in its listing last happened: its own change, or an order or payment on it.
    pub updated_at: Timestamp,
}

/// Commands on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketCommand {
    /// List a new ticket for sale.
    List {
        /// Its new id.
        ticket_id: TicketId,
        /// The signed-in seller.
        seller: AccountId,
        /// Its title.
        title: Title,
        /// Its price.
        price: Price,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
    /// Change the title or price of an available ticket.
    Update {
        /// Who asks: the seller or an admin.
        actor: Actor,
        /// The new title, if it changes.
        title: Option<Title>,
        /// The new price, if it changes.
        price: Option<Price>,
        /// The command's time (the domain has no clock of its own).
        at: Timestamp,
    },
}

/// Why a ticket command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The title is empty or too long (`BAD_USER_INPUT`, field `title`).
    #[error(transparent)]
    InvalidTitle(#[from] TitleError),
    /// The price is out of range (`BAD_USER_INPUT`, field `priceCents`).
    #[error(transparent)]
    InvalidPrice(#[from] PriceError),
    /// No such ticket (`NOT_FOUND`).
    #[error("ticket not found")]
    NotFound,
    /// A ticket with this id exists already (`CONFLICT`).
    #[error("ticket already exists")]
    AlreadyListed,
    /// Only the seller or an admin may edit it (`FORBIDDEN`).
    #[error("only the seller or an admin may edit this ticket")]
    NotSeller,
    /// Held or sold tickets cannot be edited (`CONFLICT`).
    #[error("the ticket is {0:?} and can no longer be edited")]
    NotEditable(TicketStatus),
}

impl Refusal for TicketError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidTitle(_) | Self::InvalidPrice(_) => ErrorCode::BadUserInput,
            Self::NotFound => ErrorCode::NotFound,
            Self::AlreadyListed | Self::NotEditable(_) => ErrorCode::Conflict,
            Self::NotSeller => ErrorCode::Forbidden,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidTitle(_) => Some("title"),
            Self::InvalidPrice(_) => Some("priceCents"),
            _ => None,
        }
    }
}

pub(crate) fn decide(listing: &Listing, command: TicketCommand) -> Result<Vec<Event>, TicketError> {
    match command {
        TicketCommand::List { ticket_id, seller, title, price, at } => {
            if listing.ticket.is_some() {
                return Err(TicketError::AlreadyListed);
            }
            Ok(vec![Event::TicketListed { ticket_id, seller, title, price_cents: price, currency: Currency::Usd, at }])
        }
        TicketCommand::Update { actor, title, price, at } => {
            let ticket = listing.ticket.as_ref().ok_or(TicketError::NotFound)?;
            if !ticket.access().is_managed_by(&actor) {
                return Err(TicketError::NotSeller);
            }
            if !ticket.access().is_available() {
                return Err(TicketError::NotEditable(ticket.status));
            }
            let title = title.filter(|t| *t != ticket.title);
            let price = price.filter(|p| *p != ticket.price);
            if title.is_none() && price.is_none() {
                return Ok(vec![]);
            }
            Ok(vec![Event::TicketUpdated { ticket_id: ticket.id, by: actor.id, title, price_cents: price, at }])
        }
    }
}

impl Ticket {
    /// The ticket after one event of its listing: the write model's fold, which the read model's
    /// projector runs too. `None` until the ticket is listed.
    pub fn evolve(ticket: Option<Self>, event: &Event) -> Option<Self> {
        // A listing repeated (which `decide` never writes) changes nothing of the first.
        if let (None, Event::TicketListed { ticket_id, seller, title, price_cents, currency, at }) = (&ticket, event) {
            return Some(Self {
                id: *ticket_id,
                seller: *seller,
                title: title.clone(),
                price: *price_cents,
                currency: *currency,
                status: TicketStatus::Available,
                holder: None,
                listed_at: *at,
                updated_at: *at,
            });
        }
        let mut ticket = ticket?;
        match event {
            Event::TicketUpdated { title, price_cents, .. } => {
                if let Some(title) = title {
                    ticket.title = title.clone();
                }
                if let Some(price) = price_cents {
                    ticket.price = *price;
                }
            }
            Event::OrderPlaced { order_id, .. } => {
                ticket.status = TicketStatus::Reserved;
                ticket.holder = Some(*order_id);
            }
            // A cancellation frees the ticket only if this order still holds it.
            Event::OrderCancelled { order_id, .. } if ticket.holder == Some(*order_id) => {
                ticket.status = TicketStatus::Available;
                ticket.holder = None;
            }
            Event::PaymentSucceeded { order_id, .. } => {
                ticket.status = TicketStatus::Sold;
                ticket.holder = Some(*order_id);
            }
            _ => {}
        }
        ticket.updated_at = event.at();
        Some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::{ListingCommand, ListingError};
    use crate::testing::{account, at, given, order, ticket};

    fn title(raw: &str) -> Title {
        Title::parse(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    fn price(cents: i64) -> Price {
        Price::from_cents(cents).unwrap_or_else(|e| panic!("{e}"))
    }

    fn listed() -> Event {
        Event::TicketListed {
            ticket_id: ticket(1),
            seller: account(1),
            title: title("Opera"),
            price_cents: price(5000),
            currency: Currency::Usd,
            at: at(0),
        }
    }

    fn update(actor: Actor, new_title: Option<&str>, new_price: Option<i64>) -> ListingCommand {
        ListingCommand::Ticket(TicketCommand::Update {
            actor,
            title: new_title.map(title),
            price: new_price.map(price),
            at: at(10),
        })
    }

    fn placed() -> Event {
        Event::OrderPlaced {
            order_id: order(1),
            ticket_id: ticket(1),
            buyer: account(2),
            seller: account(1),
            amount_cents: price(5000),
            currency: Currency::Usd,
            idempotency_key: None,
            expires_at: at(900),
            at: at(5),
        }
    }

    #[test]
    fn listing_a_ticket_makes_it_available_in_usd() {
        let state = given::<Listing>([])
            .when(ListingCommand::Ticket(TicketCommand::List {
                ticket_id: ticket(1),
                seller: account(1),
                title: title("Opera"),
                price: price(5000),
                at: at(0),
            }))
            .then([listed()]);
        assert_eq!(state.ticket.map(|t| (t.status, t.currency)), Some((TicketStatus::Available, Currency::Usd)));
    }

    #[test]
    fn listing_the_same_ticket_twice_is_a_conflict() {
        given::<Listing>([listed()])
            .when(ListingCommand::Ticket(TicketCommand::List {
                ticket_id: ticket(1),
                seller: account(1),
                title: title("Opera"),
                price: price(5000),
                at: at(0),
            }))
            .then_err(ListingError::Ticket(TicketError::AlreadyListed));
    }

    #[test]
    fn invalid_titles_and_prices_name_their_field() {
        let title_error = TicketError::from(TitleError::Empty);
        let price_error = TicketError::from(PriceError::OutOfRange);
        assert_eq!((title_error.code(), title_error.field()), (ErrorCode::BadUserInput, Some("title")));
        assert_eq!((price_error.code(), price_error.field()), (ErrorCode::BadUserInput, Some("priceCents")));
    }

    #[test]
    fn the_seller_may_edit_an_available_ticket() {
        let state = given::<Listing>([listed()])
            .when(update(Actor::user(account(1)), Some("Opera, row 5"), Some(6000)))
            .then([Event::TicketUpdated {
                ticket_id: ticket(1),
                by: account(1),
                title: Some(title("Opera, row 5")),
                price_cents: Some(price(6000)),
                at: at(10),
            }]);
        let ticket = state.ticket.unwrap_or_else(|| panic!("ticket"));
        assert_eq!((ticket.title.as_str(), ticket.price.cents(), ticket.updated_at), ("Opera, row 5", 6000, at(10)));
    }

    #[test]
    fn an_admin_may_edit_any_ticket() {
        given::<Listing>([listed()]).when(update(Actor::admin(account(9)), None, Some(100))).then_ok();
    }

    #[test]
    fn another_user_may_not_edit_the_ticket() {
        given::<Listing>([listed()])
            .when(update(Actor::user(account(2)), Some("Mine now"), None))
            .then_err(ListingError::Ticket(TicketError::NotSeller));
        assert_eq!(TicketError::NotSeller.code(), ErrorCode::Forbidden);
    }

    #[test]
    fn a_held_ticket_cannot_be_edited() {
        given::<Listing>([listed(), placed()])
            .when(update(Actor::user(account(1)), Some("New"), None))
            .then_err(ListingError::Ticket(TicketError::NotEditable(TicketStatus::Reserved)));
    }

    #[test]
    fn a_sold_ticket_cannot_be_edited_even_by_an_admin() {
        let sold = Event::PaymentSucceeded {
            payment_id: crate::testing::payment(1),
            order_id: order(1),
            ticket_id: ticket(1),
            provider_ref: "pi".into(),
            at: at(6),
        };
        given::<Listing>([listed(), placed(), sold])
            .when(update(Actor::admin(account(9)), Some("New"), None))
            .then_err(ListingError::Ticket(TicketError::NotEditable(TicketStatus::Sold)));
        assert_eq!(TicketError::NotEditable(TicketStatus::Sold).code(), ErrorCode::Conflict);
    }

    #[test]
    fn editing_an_unknown_ticket_is_not_found() {
        given::<Listing>([])
            .when(update(Actor::admin(account(9)), Some("x"), None))
            .then_err(ListingError::Ticket(TicketError::NotFound));
    }

    #[test]
    fn an_edit_that_changes_nothing_writes_nothing() {
        given::<Listing>([listed()]).when(update(Actor::user(account(1)), Some("Opera"), Some(5000))).then_nothing();
    }

    #[test]
    fn a_cancelled_hold_makes_the_ticket_available_again() {
        let cancelled = Event::OrderCancelled {
            order_id: order(1),
            ticket_id: ticket(1),
            reason: crate::CancelReason::User,
            by: Some(account(2)),
            at: at(7),
        };
        let state = given::<Listing>([listed(), placed(), cancelled])
            .when(update(Actor::user(account(1)), Some("Editable again"), None))
            .then_ok()
            .1;
        assert_eq!(state.ticket.map(|t| (t.status, t.holder)), Some((TicketStatus::Available, None)));
    }
}
