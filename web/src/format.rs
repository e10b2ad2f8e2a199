//! Words and numbers as people read them: money, countdowns, dates, statuses.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::{CancelReason, OrderStatus, PaymentStatus, TicketStatus};

/// `1500, "USD"` → `$15.00`; other currencies get their code.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let amount = format!("{}.{:02}", group(cents / 100), cents % 100);
    match currency {
        "USD" => format!("{sign}${amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

fn group(mut n: u64) -> String {
    let mut parts = Vec::new();
    while n >= 1000 {
        parts.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    parts.push(n.to_string());
    parts.reverse();
    parts.join(",")
}

/// A price typed by a person (`12`, `12.5`, `$1,250.99`) in cents; `None` when it is not one.
pub fn parse_price(input: &str) -> Option<i64> {
    let cleaned: String = input.trim().trim_start_matches('$').chars().filter(|c| *c != ',').collect();
    if cleaned.is_empty() {
        return None;
    }
    let (whole, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > 2 {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// Cents as a person would type them back (`1250` → `12.50`).
pub fn price_input(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn epoch_millis(rfc3339: &str) -> Option<f64> {
    let at = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as f64)
}

/// Whole seconds left until `deadline_ms`, never negative (rounded up, so 0 means "now").
pub fn seconds_left(deadline_ms: f64, now_ms: f64) -> u64 {
    let left = ((deadline_ms - now_ms) / 1000.0).ceil();
    if left.is_finite() && left > 0.0 { left as u64 } else { 0 }
}

/// `125` → `2:05`.
pub fn countdown(seconds: u64) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// `2026-11-24T10:05:00Z` → `24 Nov 2026, 10:05 UTC`.
pub fn date(rfc3339: &str) -> String {
    let Ok(at) = OffsetDateTime::parse(rfc3339, &Rfc3339) else { return rfc3339.to_owned() };
    let format = time::macros::format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_else(|_| rfc3339.to_owned())
}

/// The label of a ticket status.
pub fn ticket_status(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::Available => "Available",
        TicketStatus::Reserved => "On hold",
        TicketStatus::Sold => "Sold",
    }
}

/// The label of an order status.
pub fn order_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created => "Held for you",
        OrderStatus::AwaitingPayment => "Payment in progress",
        OrderStatus::Complete => "Paid",
        OrderStatus::Cancelled => "Cancelled",
    }
}

/// Why an order was cancelled, in words.
pub fn cancel_reason(reason: Option<CancelReason>) -> &'static str {
    match reason {
        Some(CancelReason::User) => "You cancelled this order.",
        Some(CancelReason::Expired) => "The hold expired before payment.",
        Some(CancelReason::Admin) => "An administrator cancelled this order.",
        None => "This order was cancelled.",
    }
}

/// The label of a payment status.
pub fn payment_status(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Pending => "Waiting for the bank",
        PaymentStatus::Succeeded => "Paid",
        PaymentStatus::Failed => "Declined",
        PaymentStatus::Refunded => "Refunded",
    }
}

/// An event type (`OrderPlaced`) in words (`Order placed`).
pub fn event_type(name: &str) -> String {
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
            words.extend(c.to_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_a_price_tag() {
        assert_eq!(money(1500, "USD"), "$15.00");
        assert_eq!(money(5, "USD"), "$0.05");
        assert_eq!(money(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(money(1000, "EUR"), "10.00 EUR");
    }

    #[test]
    fn prices_are_parsed_as_people_type_them() {
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price(" $1,250.99 "), Some(125_099));
        assert_eq!(parse_price(".75"), Some(75));
        for bad in ["", "abc", "1.234", "1.2.3", "-5", "$", ".", "9999999999999999999"] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
        assert_eq!(price_input(1250), "12.50");
    }

    #[test]
    fn countdowns_round_up_and_stop_at_zero() {
        let deadline = epoch_millis("2026-11-24T10:05:00Z").unwrap_or_default();
        assert_eq!(seconds_left(deadline, deadline - 125_000.0), 125);
        assert_eq!(seconds_left(deadline, deadline - 100.0), 1);
        assert_eq!(seconds_left(deadline, deadline + 5_000.0), 0);
        assert_eq!(countdown(125), "2:05");
        assert_eq!(countdown(9), "0:09");
    }

    #[test]
    fn dates_and_event_names_read_as_words() {
        assert_eq!(date("2026-11-24T10:05:00.123Z"), "24 Nov 2026, 10:05 UTC");
        assert_eq!(date("nonsense"), "nonsense");
        assert_eq!(event_type("OrderPlaced"), "Order placed");
    }
}
