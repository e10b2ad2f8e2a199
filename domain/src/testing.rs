//! A small given/when/then harness for aggregates, plus fixtures for tests.
//!
//! ```
//! use domain::testing::{given, at, account, ticket};
//! use domain::{Listing, ListingCommand, TicketCommand, Title, Price};
//!
//! given::<Listing>([])
//!     .when(ListingCommand::Ticket(TicketCommand::List {
//!         ticket_id: ticket(1),
//!         seller: account(1),
//!         title: Title::parse("Opera").unwrap(),
//!         price: Price::from_cents(100).unwrap(),
//!         at: at(0),
//!     }))
//!     .then_ok();
//! ```

use std::fmt::Debug;

use uuid::Uuid;

use crate::ids::{AccountId, OrderId, PaymentId, TicketId};
use crate::{Aggregate, Event, Timestamp};

/// Starts a scenario from a history of events.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = Event>) -> Given<A> {
    let history: Vec<Event> = history.into_iter().collect();
    Given { state: A::replay(&history) }
}

/// A state built from history, waiting for a command.
pub struct Given<A> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// Decides a command against the state.
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.decide(command);
        When { state: self.state, result }
    }
}

/// The outcome of a decision, to be checked.
pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<Event>, A::Error>,
}

impl<A> When<A>
where
    A: Aggregate,
    A::Error: PartialEq + Debug,
{
    /// Asserts the exact events produced, and returns the state after applying them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Event>) -> A {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events.iter().fold(self.state, A::evolve)
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts that the command succeeded, and returns the events and the state after them.
    #[track_caller]
    pub fn then_ok(self) -> (Vec<Event>, A) {
        match self.result {
            Ok(events) => {
                let state = events.iter().fold(self.state, A::evolve);
                (events, state)
            }
            Err(error) => panic!("expected success, got error {error:?}"),
        }
    }

    /// Asserts that nothing happens: the command is an idempotent no-op.
    #[track_caller]
    pub fn then_nothing(self) {
        self.then([]);
    }

    /// Asserts the exact refusal.
    #[track_caller]
    pub fn then_err(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }
}

/// A fixed instant plus `seconds`: 2026-01-01T12:00:00Z + seconds.
pub fn at(seconds: i64) -> Timestamp {
    time::macros::datetime!(2026-01-01 12:00 UTC) + time::Duration::seconds(seconds)
}

/// A predictable account id.
pub fn account(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

/// A predictable ticket id.
pub fn ticket(n: u128) -> TicketId {
    TicketId(Uuid::from_u128(n))
}

/// A predictable order id.
pub fn order(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(n))
}

/// A predictable payment id.
pub fn payment(n: u128) -> PaymentId {
    PaymentId(Uuid::from_u128(n))
}
