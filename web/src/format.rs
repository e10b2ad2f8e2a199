//! Words and numbers as people read them: money, countdowns, dates, statuses.

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

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-24T10:05:00.123Z`,
/// `2026-11-24T11:05:00+01:00`). Read by hand: the bundle is smaller without a date library, and
/// the API only ever sends this one form.
pub fn epoch_millis(rfc3339: &str) -> Option<f64> {
    let b = rfc3339.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, c)| b.get(*at) != Some(c)) || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let fraction = &rfc3339[start..at.min(start + 3)];
        millis = format!("{fraction:0<3}").parse::<i64>().ok()?;
    }
    let offset_minutes = match b.get(at..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == at + 6 && b[at + 3] == b':' => {
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some((seconds * 1000 + millis) as f64)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) `days` after 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Milliseconds since the epoch now: the browser's clock, or the server's when rendering there.
pub fn now_millis() -> f64 {
    if cfg!(target_arch = "wasm32") {
        return js_sys::Date::now();
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
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
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let Some(millis) = epoch_millis(rfc3339) else { return rfc3339.to_owned() };
    let seconds = (millis / 1000.0).floor() as i64;
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!("{day} {month} {year}, {:02}:{:02} UTC", of_day / 3600, of_day % 3600 / 60)
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

    /// Every day from 1900 to 2200 at a few times of day and offsets reads as the `time` crate
    /// reads it (the API's times are formatted by it).
    #[test]
    fn times_read_as_the_time_crate_reads_them() {
        use time::format_description::well_known::Rfc3339;
        let start = time::macros::datetime!(1900-01-01 00:00 UTC);
        for day in (0..110_000).step_by(7) {
            for (seconds, offset) in [(0, 0), (45_296, 3600), (86_399, -34_200)] {
                let at = start
                    + time::Duration::days(day)
                    + time::Duration::seconds(seconds)
                    + time::Duration::milliseconds(123);
                let offset = time::UtcOffset::from_whole_seconds(offset).unwrap_or(time::UtcOffset::UTC);
                let text = at.to_offset(offset).format(&Rfc3339).unwrap_or_default();
                let expected = (at.unix_timestamp_nanos() / 1_000_000) as f64;
                assert_eq!(epoch_millis(&text), Some(expected), "{text}");
                let (y, m, d) = civil_from_days(at.unix_timestamp().div_euclid(86_400));
                assert_eq!(
                    (y, m, d),
                    (i64::from(at.year()), i64::from(u8::from(at.month())), i64::from(at.day())),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn dates_and_event_names_read_as_words() {
        assert_eq!(date("2026-11-24T10:05:00.123Z"), "24 Nov 2026, 10:05 UTC");
        assert_eq!(date("2026-11-24T11:05:00+01:00"), "24 Nov 2026, 10:05 UTC");
        assert_eq!(date("2027-01-01T00:30:00-01:00"), "1 Jan 2027, 01:30 UTC");
        assert_eq!(date("nonsense"), "nonsense");
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-11-24T10:05:00",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:05:00.Z",
            "2026-1-24T10:05:00Z",
        ] {
            assert_eq!(epoch_millis(bad), None, "{bad}");
        }
        assert_eq!(event_type("OrderPlaced"), "Order placed");
    }
}
