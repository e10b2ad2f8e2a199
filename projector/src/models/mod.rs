//! One module per read model, each with an `apply` for the events it cares about.
//!
//! Every `apply` runs inside the batch's transaction, after the checkpoint check, so an event is
//! applied at most once per generation; the statements are also written to be harmless when
//! repeated (`ON CONFLICT DO NOTHING`, updates to absolute values).

pub mod accounts;
pub mod orders;
pub mod payments;
pub mod set;
pub mod tickets;

use std::collections::BTreeSet;

use domain::{Event, OrderId, TicketId, Timestamp};
use sqlx::PgConnection;

/// What a batch changed, for the notifications sent on commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Tickets whose row changed.
    pub tickets: BTreeSet<TicketId>,
    /// Orders whose row (or payment) changed.
    pub orders: BTreeSet<OrderId>,
    /// Sessions signed out: gateways end those sessions' open WebSockets.
    pub sessions: BTreeSet<domain::SessionId>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty() && self.orders.is_empty() && self.sessions.is_empty()
    }
}

/// One event to apply, with where and when it was stored.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// Its stream sequence.
    pub position: i64,
    /// Its subject in the domain's naming (`ticketing.…`).
    pub subject: &'a str,
    /// When the server stored it.
    pub recorded_at: Timestamp,
    /// The event.
    pub event: &'a Event,
}

impl Applied<'_> {
    /// The ticket of a listing event, from its subject `ticketing.ticket.<id>.…`.
    pub fn ticket(&self) -> Option<TicketId> {
        self.subject.strip_prefix("ticketing.ticket.")?.split('.').next()?.parse().ok()
    }
}

/// Applies one event to every read model.
///
/// # Errors
/// A database error; the caller retries, then parks the event.
pub async fn apply(conn: &mut PgConnection, applied: Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    accounts::apply(conn, applied, changes).await?;
    tickets::apply(conn, applied, changes).await?;
    orders::apply(conn, applied, changes).await?;
    payments::apply(conn, applied, changes).await?;
    Ok(())
}
