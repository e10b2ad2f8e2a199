//! How a domain refusal is shown to clients.

use serde::{Deserialize, Serialize};

/// The error codes of the public API (`extensions.code`), shared by every refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Invalid input; the error names the offending `field`.
    BadUserInput,
    /// Not signed in, or wrong credentials.
    Unauthenticated,
    /// Signed in but not allowed.
    Forbidden,
    /// The thing does not exist.
    NotFound,
    /// The current state does not allow it (taken, held, sold, completed...).
    Conflict,
    /// The payment provider declined the charge.
    PaymentDeclined,
    /// Too many attempts; try again later.
    RateLimited,
    /// Something failed on our side; no detail is given to clients.
    InternalServerError,
}

impl ErrorCode {
    /// The code as it appears in `extensions.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// A refusal that clients can act on: a code and, for bad input, the field at fault.
pub trait Refusal: std::error::Error {
    /// The API error code.
    fn code(&self) -> ErrorCode;

    /// The input field at fault, for [`ErrorCode::BadUserInput`] and field-specific conflicts.
    fn field(&self) -> Option<&'static str> {
        None
    }

    /// The input field at fault as a path, for rules about one element of a list
    /// (`ticketTypes.1.capacity`); by default the same as [`Refusal::field`].
    fn field_path(&self) -> Option<String> {
        self.field().map(str::to_owned)
    }
}

/// Aggregates that never refuse ([`crate::EmailClaim`]).
impl Refusal for std::convert::Infallible {
    fn code(&self) -> ErrorCode {
        match *self {}
    }
}
