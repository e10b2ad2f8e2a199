//! Domain values as read models store them: their serde form, one text or number per column.
//!
//! The projector writes statuses and reasons with [`text`] and reads rows back into domain states
//! with [`read`], and the gateway reads them with [`read`] too, so a column holds exactly what
//! the domain's serde form says and no layer keeps a mapping of its own. A stored value that no
//! domain value reads is an inconsistency, reported as a [`StoredError`], never a default.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored value that does not read as the domain value it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} {value} is not a value the domain knows")]
pub struct StoredError {
    /// What the column holds (`"ticket status"`, `"title"`).
    pub what: &'static str,
    /// The stored value, as JSON.
    pub value: String,
}

/// The stored text of a value whose serde form is a string (a status, a reason, a currency).
///
/// # Errors
/// The value's serde form is not a string.
pub fn text<T: Serialize>(value: &T, what: &'static str) -> Result<String, StoredError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        Ok(other) => Err(StoredError { what, value: other.to_string() }),
        Err(error) => Err(StoredError { what, value: error.to_string() }),
    }
}

/// A domain value read back from its stored form (text or number), the way stored events are
/// read: as it was written, without today's input rules.
///
/// # Errors
/// No value of `T` has this serde form.
pub fn read<T: DeserializeOwned>(value: impl Into<serde_json::Value>, what: &'static str) -> Result<T, StoredError> {
    let value = value.into();
    serde_json::from_value(value.clone()).map_err(|_| StoredError { what, value: value.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CancelReason, Currency, OrderStatus, PaymentStatus, Price, TicketStatus, Title};

    #[test]
    fn statuses_are_stored_as_their_screaming_names_and_read_back() {
        assert_eq!(text(&OrderStatus::AwaitingPayment, "order status"), Ok("AWAITING_PAYMENT".to_owned()));
        assert_eq!(text(&TicketStatus::Sold, "ticket status"), Ok("SOLD".to_owned()));
        assert_eq!(text(&CancelReason::Expired, "cancel reason"), Ok("EXPIRED".to_owned()));
        assert_eq!(text(&Currency::Usd, "currency"), Ok("USD".to_owned()));
        for status in [PaymentStatus::Pending, PaymentStatus::Succeeded, PaymentStatus::Failed, PaymentStatus::Refunded]
        {
            let stored = text(&status, "payment status").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(read::<PaymentStatus>(stored, "payment status"), Ok(status));
        }
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_naming_it() {
        let error = read::<TicketStatus>("ON_HOLD", "ticket status").err();
        assert_eq!(error, Some(StoredError { what: "ticket status", value: "\"ON_HOLD\"".into() }));
        assert!(read::<OrderStatus>("created", "order status").is_err(), "stored names are case-sensitive");
    }

    #[test]
    fn a_value_that_is_not_text_cannot_be_stored_as_text() {
        assert!(text(&Price::from_cents(5).unwrap_or_else(|e| panic!("{e}")), "price").is_err());
    }

    #[test]
    fn stored_prices_and_titles_read_as_written_even_outside_todays_rules() {
        assert_eq!(read::<Price>(20_000_000_i64, "price").map(Price::cents), Ok(20_000_000));
        assert_eq!(read::<Title>("Opera\tnight", "title").map(|t| t.as_str().to_owned()), Ok("Opera\tnight".into()));
    }
}
