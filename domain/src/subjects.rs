//! JetStream subject naming, in one place.
//!
//! The stream `TICKETING` holds every event. Each aggregate instance has its own subject, so its
//! history is read with a subject filter and its appends are guarded per subject. A second stream,
//! `TICKETING_TIMERS`, holds hold-expiry schedules and their firings: JetStream message schedules
//! need a stream that allows purges and rollups, which the event stream must deny.
//!
//! | subject | holds | guard on append |
//! |---|---|---|
//! | `ticketing.email.<hex of address>` | `EmailClaimed` | the subject itself (must be empty) |
//! | `ticketing.account.<account>` | account events and hold slots | the subject itself |
//! | `ticketing.ticket.<ticket>.ticket` | `TicketListed`, `TicketUpdated` | the listing boundary |
//! | `ticketing.ticket.<ticket>.order.<order>` | order events | the listing boundary |
//! | `ticketing.ticket.<ticket>.payment.<payment>` | payment events | the listing boundary |
//! | `ticketing.show.<show>.show` | `ShowCreated`, `ShowUpdated`, `ShowOrdersPlaced`: the show's stock | the subject itself |
//! | `ticketing.show.<show>.order.<order>` | `ShowOrderCancelled`, `ShowPaymentStarted`, `ShowPaymentSucceeded` and the order's other payment events | the subject itself |
//! | `ticketing.schedule.expiry.<order>` | the hold's expiry schedule (a JetStream message schedule) | none |
//! | `ticketing.expiry.<ticket>.<order>` | the schedule's firing, read by command-service | none |
//! | `ticketing.schedule.reconcile.<payment>` | a payment's reconciliation schedule | none |
//! | `ticketing.reconcile.<ticket>.<payment>` | its firing: ask the provider, settle or refund | none |
//!
//! A show is read whole through `ticketing.show.<show>.>`, but its stock and each of its orders
//! are guarded by their own subjects (see [`crate::show`]).
//!
//! The listing boundary is the wildcard `ticketing.ticket.<ticket>.>`: an append anywhere inside it
//! states the last sequence of the whole boundary it decided on. Commands travel on
//! `ticketing.cmd.>`, which no stream captures.

use crate::{AccountId, Email, Event, OrderId, PaymentId, ShowId, TicketId};

/// The event stream's name.
pub const STREAM: &str = "TICKETING";

/// The subject a command is sent on (`ticketing.cmd.<name>`).
pub fn command(name: &str) -> String {
    format!("{COMMAND_PREFIX}.{name}")
}

/// The command name of a command subject (one token after `ticketing.cmd.`); `None` for any other
/// subject.
pub fn command_name(subject: &str) -> Option<&str> {
    subject.strip_prefix(COMMAND_PREFIX)?.strip_prefix('.').filter(|name| !name.is_empty() && !name.contains('.'))
}

/// The root token of every subject in the domain's naming.
pub const ROOT: &str = "ticketing";

/// `subject` (in the domain's naming, `ticketing.…`) under another root (`<root>.…`), as a
/// deployment that shares its NATS with others names it on the wire; other subjects unchanged.
pub fn on_wire(root: &str, subject: &str) -> String {
    match subject.strip_prefix(ROOT) {
        Some(rest) if root != ROOT && (rest.is_empty() || rest.starts_with('.')) => format!("{root}{rest}"),
        _ => subject.to_owned(),
    }
}

/// A subject as the wire names it under `root`, back in the domain's naming; other subjects
/// unchanged.
pub fn from_wire(root: &str, subject: &str) -> String {
    match subject.strip_prefix(root) {
        Some(rest) if root != ROOT && (rest.is_empty() || rest.starts_with('.')) => format!("{ROOT}{rest}"),
        _ => subject.to_owned(),
    }
}

/// The subjects the event stream captures: every event, nothing else.
pub const EVENT_SUBJECTS: [&str; 4] =
    ["ticketing.email.*", "ticketing.account.*", "ticketing.ticket.*.>", "ticketing.show.*.>"];

/// The timer stream's name suffix: `TICKETING` + `_TIMERS`.
pub const TIMERS_SUFFIX: &str = "_TIMERS";

/// The subjects the timer stream captures: schedules and their firings.
pub const TIMER_SUBJECTS: [&str; 3] = ["ticketing.schedule.>", "ticketing.expiry.>", "ticketing.reconcile.>"];

/// The prefix of command request subjects (core NATS request-reply, not stored).
pub const COMMAND_PREFIX: &str = "ticketing.cmd";

/// Every account subject: where hold slots are claimed, which arms their expiry.
pub const ACCOUNTS: &str = "ticketing.account.*";

/// Where the firings of hold expiry schedules land.
pub const EXPIRY_FIRINGS: &str = "ticketing.expiry.>";

/// Every order subject: where holds are placed, which arms their expiry.
pub const ORDERS: &str = "ticketing.ticket.*.order.*";

/// Every payment subject: where payments start, which arms their reconciliation.
pub const PAYMENTS: &str = "ticketing.ticket.*.payment.*";

/// Every show's stock subject: where show orders are placed, which arms their expiry.
pub const SHOW_STOCKS: &str = "ticketing.show.*.show";

/// Every show order's subject.
pub const SHOW_ORDERS: &str = "ticketing.show.*.order.*";

/// Where the firings of payment reconciliation schedules land.
pub const RECONCILE_FIRINGS: &str = "ticketing.reconcile.>";

/// An email claim's subject. The address is hex-encoded: addresses contain dots, which NATS
/// reads as token separators.
pub fn email(email: &Email) -> String {
    let mut subject = String::with_capacity(16 + email.as_str().len() * 2);
    subject.push_str("ticketing.email.");
    for byte in email.as_str().bytes() {
        subject.push(char::from(HEX[usize::from(byte >> 4)]));
        subject.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    subject
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// An account's subject.
pub fn account(id: AccountId) -> String {
    format!("ticketing.account.{id}")
}

/// The listing boundary of a ticket: every subject of the ticket, its orders and its payments.
pub fn listing(ticket: TicketId) -> String {
    format!("ticketing.ticket.{ticket}.>")
}

/// Every subject an order's events can be on, whatever its ticket: how an order is found by its
/// id alone (a webhook that names only the order).
pub fn order_anywhere(order: OrderId) -> String {
    format!("ticketing.ticket.*.order.{order}")
}

/// The ticket of a listing subject (`ticketing.ticket.<ticket>.…`) or of its boundary
/// (`ticketing.ticket.<ticket>.>`); `None` for any other subject.
pub fn ticket_of(subject: &str) -> Option<TicketId> {
    let (ticket, rest) = subject.strip_prefix("ticketing.ticket.")?.split_once('.')?;
    if rest.is_empty() {
        return None;
    }
    ticket.parse().ok()
}

/// The subject a listing event is stored on, or `None` for an event outside listings.
pub fn listing_event(ticket: TicketId, event: &Event) -> Option<String> {
    Some(match event {
        Event::TicketListed { .. } | Event::TicketUpdated { .. } => format!("ticketing.ticket.{ticket}.ticket"),
        Event::OrderPlaced { order_id, .. } | Event::OrderCancelled { order_id, .. } => {
            format!("ticketing.ticket.{ticket}.order.{order_id}")
        }
        Event::PaymentStarted { payment_id, .. }
        | Event::PaymentPending { payment_id, .. }
        | Event::PaymentSucceeded { payment_id, .. }
        | Event::PaymentFailed { payment_id, .. }
        | Event::LatePaymentReceived { payment_id, .. }
        | Event::PaymentRefunded { payment_id, .. } => format!("ticketing.ticket.{ticket}.payment.{payment_id}"),
        _ => return None,
    })
}

/// Everything of a show: its stock and every order on it (read whole, never guarded whole).
pub fn show(show: ShowId) -> String {
    format!("ticketing.show.{show}.>")
}

/// A show's stock: its definition and its placements, guarded by this subject alone.
pub fn show_stock(show: ShowId) -> String {
    format!("ticketing.show.{show}.show")
}

/// An order on a show: its cancellation and payments, guarded by this subject alone.
pub fn show_order(show: ShowId, order: OrderId) -> String {
    format!("ticketing.show.{show}.order.{order}")
}

/// Every subject an order on a show can be on, whatever its show.
pub fn show_order_anywhere(order: OrderId) -> String {
    format!("ticketing.show.*.order.{order}")
}

/// The show of a show subject (`ticketing.show.<show>.…`) or of its boundary; `None` for any
/// other subject.
pub fn show_of(subject: &str) -> Option<ShowId> {
    let (show, rest) = subject.strip_prefix("ticketing.show.")?.split_once('.')?;
    if rest.is_empty() {
        return None;
    }
    show.parse().ok()
}

/// The order of a show order's subject (`ticketing.show.<show>.order.<order>`).
pub fn show_order_of(subject: &str) -> Option<OrderId> {
    let rest = subject.strip_prefix("ticketing.show.")?;
    let (_, order) = rest.split_once(".order.")?;
    order.parse().ok()
}

/// The subject a show event is stored on, or `None` for an event outside shows.
pub fn show_event(show: ShowId, event: &Event) -> Option<String> {
    Some(match event {
        Event::ShowCreated { .. } | Event::ShowUpdated { .. } | Event::ShowOrdersPlaced { .. } => show_stock(show),
        Event::ShowOrderCancelled { order_id, .. }
        | Event::ShowPaymentStarted { order_id, .. }
        | Event::ShowPaymentSucceeded { order_id, .. }
        | Event::PaymentPending { order_id, .. }
        | Event::PaymentFailed { order_id, .. }
        | Event::LatePaymentReceived { order_id, .. }
        | Event::PaymentRefunded { order_id, .. } => show_order(show, *order_id),
        _ => return None,
    })
}

/// The subject of a hold's expiry schedule.
pub fn expiry_schedule(order: OrderId) -> String {
    format!("ticketing.schedule.expiry.{order}")
}

/// The subject of a payment's reconciliation schedule.
pub fn reconcile_schedule(payment: PaymentId) -> String {
    format!("ticketing.schedule.reconcile.{payment}")
}

/// The subject a reconciliation schedule fires on.
pub fn reconcile_firing(ticket: TicketId, payment: PaymentId) -> String {
    format!("ticketing.reconcile.{ticket}.{payment}")
}

/// The subject an expiry schedule fires on.
pub fn expiry_firing(ticket: TicketId, order: OrderId) -> String {
    format!("ticketing.expiry.{ticket}.{order}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{order, ticket};

    #[test]
    fn a_command_subject_names_one_command() {
        assert_eq!(command_name(&command("createOrder")), Some("createOrder"));
        for other in ["ticketing.cmd", "ticketing.cmd.", "ticketing.cmd.a.b", "ticketing.cmdx.a", "ticketing.account.a"]
        {
            assert_eq!(command_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_subject_moves_to_another_root_on_the_wire_and_back() {
        let subject = format!("ticketing.ticket.{}.ticket", ticket(1));
        let wire = on_wire("t42", &subject);
        assert_eq!(wire, format!("t42.ticket.{}.ticket", ticket(1)));
        assert_eq!(from_wire("t42", &wire), subject);
        assert_eq!(on_wire(ROOT, &subject), subject, "the default root is the domain's");
        assert_eq!(on_wire("t42", "ticketingx.cmd.y"), "ticketingx.cmd.y", "a whole token only");
        assert_eq!(from_wire("t42", "t420.ticket.x"), "t420.ticket.x", "a whole token only");
        assert_eq!(on_wire("t42", "$JS.API.INFO"), "$JS.API.INFO");
    }

    #[test]
    fn an_email_subject_is_a_single_token() {
        let email = Email::parse("a.b+c@example.com").unwrap_or_else(|e| panic!("{e}"));
        let subject = super::email(&email);
        assert_eq!(subject, "ticketing.email.612e622b63406578616d706c652e636f6d");
        assert_eq!(subject.split('.').count(), 3);
    }

    #[test]
    fn the_ticket_is_read_from_listing_subjects_and_boundaries_only() {
        let id = ticket(7);
        assert_eq!(ticket_of(&listing(id)), Some(id));
        assert_eq!(ticket_of(&format!("ticketing.ticket.{id}.order.{}", order(1))), Some(id));
        assert_eq!(ticket_of(&format!("ticketing.ticket.{id}.ticket")), Some(id));
        assert_eq!(ticket_of(&format!("ticketing.ticket.{id}")), None);
        assert_eq!(ticket_of(&format!("ticketing.ticket.{id}.")), None);
        assert_eq!(ticket_of("ticketing.ticket.not-a-uuid.ticket"), None);
        assert_eq!(ticket_of(&format!("ticketing.account.{id}")), None);
    }

    #[test]
    fn listing_events_stay_inside_the_listing_boundary() {
        let cancelled = Event::OrderCancelled {
            order_id: order(2),
            ticket_id: ticket(1),
            reason: crate::CancelReason::User,
            by: None,
            at: crate::testing::at(0),
        };
        let subject = listing_event(ticket(1), &cancelled).unwrap_or_default();
        assert_eq!(subject, format!("ticketing.ticket.{}.order.{}", ticket(1), order(2)));
        assert!(subject.starts_with(listing(ticket(1)).trim_end_matches('>')));
        // Found by the order alone, and its ticket read back from it.
        let anywhere = order_anywhere(order(2));
        assert_eq!(anywhere.replace('*', &ticket(1).to_string()), subject);
        assert_eq!(ticket_of(&subject), Some(ticket(1)));
    }

    #[test]
    fn show_events_stay_inside_the_show_and_its_stock_and_orders_are_apart() {
        let id = ShowId(uuid::Uuid::from_u128(5));
        let cancelled = Event::ShowOrderCancelled {
            show_id: id,
            order_id: order(2),
            reason: crate::CancelReason::User,
            by: None,
            at: crate::testing::at(0),
        };
        let subject = show_event(id, &cancelled).unwrap_or_default();
        assert_eq!(subject, show_order(id, order(2)));
        assert_eq!(show_order_anywhere(order(2)).replace('*', &id.to_string()), subject);
        for inside in [&subject, &show_stock(id), &show(id)] {
            assert_eq!(show_of(inside), Some(id), "{inside}");
            assert!(inside.starts_with(show(id).trim_end_matches('>')));
        }
        assert_ne!(show_stock(id), subject);
        assert_eq!(show_of(&format!("ticketing.show.{id}")), None);
        assert_eq!(show_of(&listing(ticket(1))), None);
        assert_eq!(
            show_event(
                id,
                &Event::HoldSlotReleased {
                    account_id: crate::testing::account(1),
                    order_id: order(1),
                    at: crate::testing::at(0)
                }
            ),
            None
        );
    }

    #[test]
    fn commands_are_not_captured_by_the_stream() {
        assert!(EVENT_SUBJECTS.iter().chain(&TIMER_SUBJECTS).all(|s| !s.starts_with(COMMAND_PREFIX)));
    }
}
