//! The shape every aggregate shares.

use crate::Event;

/// An event-sourced aggregate: state rebuilt from events, commands decided against that state.
///
/// `decide` holds every rule and never mutates; `evolve` applies a fact that already happened and
/// holds no rule, so replaying history always succeeds.
pub trait Aggregate: Default + Clone {
    /// The commands this aggregate decides.
    type Command;
    /// Why a command was refused.
    type Error: std::error::Error;

    /// Decides which events a command produces, or why it is refused.
    ///
    /// An empty vector means "already done": the command is an idempotent no-op.
    ///
    /// # Errors
    /// A domain rule refuses the command; nothing is written.
    fn decide(&self, command: Self::Command) -> Result<Vec<Event>, Self::Error>;

    /// Applies one event. Events that do not concern this aggregate leave it unchanged.
    #[must_use]
    fn evolve(self, event: &Event) -> Self;

    /// Rebuilds state from a history of events.
    #[must_use]
    fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}
