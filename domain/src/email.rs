//! Email addresses, normalized once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A normalized email address: trimmed, lower-cased, shaped like `local@domain.tld`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing left after trimming.
    #[error("email is required")]
    Empty,
    /// Longer than [`MAX_EMAIL_LEN`] characters.
    #[error("email must be at most 254 characters")]
    TooLong,
    /// Not shaped like an address.
    #[error("email must look like name@example.com")]
    Malformed,
}

impl Email {
    /// Trims, lower-cases and checks an address.
    ///
    /// # Errors
    /// [`EmailError`] when the address is empty, too long or not shaped like `local@domain.tld`.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = email.split_once('@').ok_or(EmailError::Malformed)?;
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-'))
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c));
        if !well_formed {
            return Err(EmailError::Malformed);
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a stored address as it was written: stored events are facts checked under the rules of
/// their day; today's rules apply to new input only ([`Email::parse`]).
impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ada@Example.COM ").map(|e| e.0), Ok("ada@example.com".into()));
    }

    #[test]
    fn an_email_must_look_like_an_address() {
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_email_may_have_at_most_254_characters() {
        let domain = format!("{}.com", "d".repeat(60));
        let local = "l".repeat(64);
        let mut long = format!("{local}@{domain}");
        while long.len() < MAX_EMAIL_LEN {
            long.insert(long.len() - 4, 'x');
        }
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        long.insert(long.len() - 4, 'x');
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn a_stored_email_is_read_as_written_even_when_todays_rules_refuse_it() {
        assert_eq!(serde_json::from_str::<Email>("\"x@y.io\"").ok().map(|e| e.0), Some("x@y.io".into()));
        assert_eq!(serde_json::from_str::<Email>("\"old\\tform\"").ok().map(|e| e.0), Some("old\tform".into()));
        assert!(Email::parse("old\tform").is_err(), "new input is still checked");
    }
}
