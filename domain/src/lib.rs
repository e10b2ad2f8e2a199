//! The ticketing domain: aggregates, commands, events and every business rule.
//!
//! This crate is the heart of the write model. It is purposefully synchronous and free of IO:
//! no clock, no randomness, no network. Facts from the outside world (the current time, new
//! identifiers, a password hash, a payment provider's answer) arrive as command fields.
//!
//! Each aggregate follows the same shape (see [`Aggregate`]):
//! - `decide(&state, command) -> Result<Vec<Event>, Error>` holds every rule;
//! - `evolve(state, &event) -> state` applies a fact and holds none.
//!
//! Aggregates and their consistency boundaries (the JetStream subjects in [`subjects`]):
//! - [`Account`] (`ticketing.account.<id>`): registration, session revocation and the buyer's
//!   hold slots (the anti-scalping limit).
//! - [`EmailClaim`] (`ticketing.email.<hex>`): makes an email address unique.
//! - [`Listing`] (`ticketing.ticket.<id>.>`): one ticket together with its orders and payments.
//!   A hold (ticket reserved + order created) is one event inside this boundary, so it is written
//!   with a single guarded append. The [`Ticket`], [`Order`] and [`Payment`] states and their rules
//!   are modules of the listing ([`listing::ticket`], [`listing::order`], [`listing::payment`]),
//!   which composes them; what other crates use of them is re-exported here.
//! - [`Show`] (`ticketing.show.<id>.>`): an organiser's event with ticket types and seats. Its
//!   stock (`.show`) and each of its orders (`.order.<order>`) are boundaries of their own, so
//!   placements that arrive together are decided and written as one event (see [`show`]).

pub mod access;
pub mod account;
pub mod aggregate;
pub mod email;
pub mod error;
pub mod event;
pub mod fuzzing;
pub mod ids;
pub mod listing;
pub mod money;
pub mod show;
pub mod stored;
pub mod subjects;
pub mod testing;
pub mod title;

pub use access::{OrderAccess, ShowAccess, TicketAccess};
pub use account::{Account, AccountCommand, AccountError, EmailClaim, EmailClaimCommand};
pub use aggregate::Aggregate;
pub use email::{Email, EmailError};
pub use error::ErrorCode;
pub use event::{Event, EventDecodeError, EventEnvelope};
pub use ids::{AccountId, OrderId, PaymentId, SessionId, ShowId, TicketId, TicketTypeId};
pub use listing::order::{CancelReason, Order, OrderCommand, OrderError, OrderStatus};
pub use listing::payment::{Payment, PaymentCommand, PaymentError, PaymentOutcome, PaymentStatus};
pub use listing::ticket::{Ticket, TicketCommand, TicketError, TicketStatus};
pub use listing::{Listing, ListingCommand, ListingError};
pub use money::{Currency, Price, PriceError};
pub use show::definition::{SeatId, Section, ShowDraft, TicketType};
pub use show::{Held, HoldRequest, PlacedOrder, SeatStatus, Show, ShowCommand, ShowError, ShowOrder};
pub use stored::StoredError;
pub use title::{Title, TitleError};

/// Who is issuing a command: the signed-in account and whether it is an admin.
///
/// Roles come from configuration (`ADMIN_EMAILS`) at the edge; the domain only asks
/// "is this the owner, or an admin?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The signed-in account.
    pub id: AccountId,
    /// Whether the account has the `ADMIN` role.
    pub is_admin: bool,
}

impl Actor {
    /// A regular signed-in user.
    pub fn user(id: AccountId) -> Self {
        Self { id, is_admin: false }
    }

    /// An administrator.
    pub fn admin(id: AccountId) -> Self {
        Self { id, is_admin: true }
    }
}

/// A point in time. Always UTC, serialized as RFC 3339.
pub type Timestamp = time::OffsetDateTime;
