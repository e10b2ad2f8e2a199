//! Money: integer minor units, never floating point.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The lowest accepted price, in cents.
pub const MIN_PRICE_CENTS: i64 = 1;
/// The highest accepted price, in cents ($100,000.00).
pub const MAX_PRICE_CENTS: i64 = 10_000_000;

/// A ticket price in cents: 1..=10,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Price(i64);

/// Why a price was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// Zero, negative, or above the maximum.
    #[error("price must be between 1 and 10000000 cents")]
    OutOfRange,
}

impl Price {
    /// Checks a price in cents.
    ///
    /// # Errors
    /// [`PriceError::OutOfRange`] outside 1..=10,000,000.
    pub fn from_cents(cents: i64) -> Result<Self, PriceError> {
        if (MIN_PRICE_CENTS..=MAX_PRICE_CENTS).contains(&cents) { Ok(Self(cents)) } else { Err(PriceError::OutOfRange) }
    }

    /// The price in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Reads a stored price as it was written: stored events are facts checked under the rules of
/// their day; today's range applies to new input only ([`Price::from_cents`]).
impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(Self)
    }
}

/// The currency of every price. The platform sells in US dollars only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    /// US dollars (amounts in cents).
    #[default]
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// The ISO 4217 code, as the API shows it.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Usd => "USD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_from_one_cent_to_one_hundred_thousand_dollars_are_accepted() {
        assert!(Price::from_cents(1).is_ok());
        assert!(Price::from_cents(10_000_000).is_ok());
    }

    #[test]
    fn zero_negative_and_too_high_prices_are_refused() {
        for bad in [0, -1, 10_000_001, i64::MIN, i64::MAX] {
            assert_eq!(Price::from_cents(bad), Err(PriceError::OutOfRange));
        }
    }

    #[test]
    fn a_price_displays_as_dollars() {
        assert_eq!(Price::from_cents(1234).map(|p| p.to_string()), Ok("$12.34".into()));
    }
}
