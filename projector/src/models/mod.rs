//! The read models, built by folding events into rows with the domain's own functions.
//!
//! A batch reads every ticket, order and payment row its events name into the domain's states
//! ([`rows`]), folds its events into them in stream order with [`Ticket::evolve`],
//! [`Order::evolve`] and [`Payment::evolve`], the very functions the write model folds with, and
//! writes each table back with one statement. The projector adds only what a read model has and
//! an aggregate does not: a version per ticket and order (one per event about it), stream
//! positions, the ticket's history, and which rows changed.
//!
//! One event alone is a batch of one: the projector redoes a failed batch that way to find and
//! park the culprit, and the tests compare both ("set path equals per-event path", "live equals
//! rebuild"). Everything runs inside the batch's transaction after the checkpoint check, so an
//! event is applied at most once per generation.

mod rows;
mod shows;

use std::collections::{BTreeSet, HashMap};

use domain::{AccountId, Event, Order, OrderId, Payment, PaymentId, SessionId, ShowId, Ticket, TicketId, Timestamp};
use sqlx::PgConnection;

/// An order's `created_position` (its place in newest-first pages) is its message's sequence
/// times this, plus its index in the message.
pub use domain::show::ORDER_SLOTS;

/// What a batch changed, for the notifications sent on commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Tickets whose row changed.
    pub tickets: BTreeSet<TicketId>,
    /// Orders whose row (or payment) changed.
    pub orders: BTreeSet<OrderId>,
    /// Sessions signed out: gateways end those sessions' open WebSockets.
    pub sessions: BTreeSet<SessionId>,
    /// Events (shows) whose row, stock or seats changed.
    pub events: BTreeSet<ShowId>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty() && self.orders.is_empty() && self.sessions.is_empty() && self.events.is_empty()
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
    /// The listing a ticket, order or payment event belongs to, from its subject.
    pub fn ticket(&self) -> Option<TicketId> {
        domain::subjects::ticket_of(self.subject)
    }

    /// Whether it is a show's (its stock's, or one of its orders'), from its subject.
    pub fn is_show(&self) -> bool {
        domain::subjects::show_of(self.subject).is_some()
    }
}

/// A domain state as a read-model row: the state and what the projection keeps beside it.
#[derive(Debug, Clone)]
struct Tracked<T> {
    /// The state, as the domain folds it.
    state: T,
    /// How many events about it were applied (tickets and orders; payments keep none).
    version: i32,
    /// The position of the event that created it: the order of newest-first pages.
    created_position: i64,
    /// The position of the last event about it.
    position: i64,
}

/// The rows a batch reads and writes, keyed by id; `None` marks a row known to be absent.
#[derive(Default)]
struct Rows {
    tickets: HashMap<TicketId, Option<Tracked<Ticket>>>,
    orders: HashMap<OrderId, Option<Tracked<Order>>>,
    payments: HashMap<PaymentId, Option<Tracked<Payment>>>,
    /// `ticket_history` lines: ticket, position, event type, time, the ticket's version.
    history: Vec<(TicketId, i64, &'static str, Timestamp, i32)>,
    /// New `accounts` rows: id, email, registration time, position.
    accounts: Vec<(AccountId, String, Timestamp, i64)>,
    /// New `revoked_sessions` rows: session, account, when its token would have expired.
    revoked: Vec<(SessionId, AccountId, Timestamp)>,
}

/// Applies `events` (in stream order) to every read model, with a few statements per table.
///
/// # Errors
/// A database error, or a stored row the domain cannot read; the caller redoes the batch event
/// by event, then parks what still fails.
pub async fn apply(conn: &mut PgConnection, events: &[Applied<'_>], changes: &mut Changes) -> sqlx::Result<()> {
    // Payments fold the same wherever their order lives; the rest of a show's rows are disjoint
    // from the listings' and are applied apart, in stream order.
    let mut rows = rows::load(conn, events).await?;
    for applied in events {
        fold(&mut rows, applied, changes);
    }
    rows::flush(conn, rows).await?;
    for applied in events.iter().filter(|applied| applied.is_show()) {
        shows::apply(conn, applied, changes).await?;
    }
    Ok(())
}

/// One event, folded into the rows it concerns.
fn fold(rows: &mut Rows, applied: &Applied<'_>, changes: &mut Changes) {
    let event = applied.event;
    match event {
        Event::AccountRegistered { account_id, email, at, .. } => {
            rows.accounts.push((*account_id, email.as_str().to_owned(), *at, applied.position));
        }
        Event::SessionRevoked { account_id, session_id, expires_at, .. } => {
            rows.revoked.push((*session_id, *account_id, *expires_at));
            changes.sessions.insert(*session_id);
        }
        _ => {}
    }
    if applied.is_show() {
        // A show's payments fold here like any; its orders and stock, in `shows`.
        if let Some(payment_id) = event.payment_id() {
            step(rows.payments.entry(payment_id).or_default(), applied, Payment::evolve);
        }
        return;
    }
    // Every event of a listing is a new version of its ticket and a line of its history.
    let Some(ticket_id) = applied.ticket() else { return };
    if let Some(ticket) = step(rows.tickets.entry(ticket_id).or_default(), applied, Ticket::evolve) {
        rows.history.push((ticket_id, applied.position, event.type_name(), event.at(), ticket.version));
        changes.tickets.insert(ticket_id);
    }
    // Every event about an order (its own and its payments') is a new version of the order.
    if let Some(order_id) = event.order_id()
        && step(rows.orders.entry(order_id).or_default(), applied, Order::evolve).is_some()
    {
        changes.orders.insert(order_id);
    }
    if let Some(payment_id) = event.payment_id() {
        step(rows.payments.entry(payment_id).or_default(), applied, Payment::evolve);
        // A payment is shown through its order, whose subscribers hear of every attempt.
        changes.orders.extend(event.order_id());
    }
}

/// Folds one event into one row with the domain's `evolve`; the row after it, if it exists.
fn step<'r, T>(
    slot: &'r mut Option<Tracked<T>>,
    applied: &Applied<'_>,
    evolve: fn(Option<T>, &Event) -> Option<T>,
) -> Option<&'r Tracked<T>> {
    let (before, version, created_position) = match slot.take() {
        Some(row) => (Some(row.state), row.version, row.created_position),
        None => (None, 0, applied.position),
    };
    let state = evolve(before, applied.event)?;
    Some(slot.insert(Tracked { state, version: version + 1, created_position, position: applied.position }))
}
