//! Why a command was refused, kept typed until it becomes the client's
//! [`Failure`](crate::api::Failure).

use domain::error::Refusal;
use domain::{AccountError, ErrorCode, ListingError, OrderError, PaymentError, ShowError, TicketError};

/// A refusal: a domain rule, kept as the domain's own error so that callers (and tests) can match
/// on the rule, or one of the checks this service makes before the domain is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A listing rule: ticket, order or payment.
    #[error(transparent)]
    Listing(#[from] ListingError),
    /// An account rule.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A show (event) rule.
    #[error(transparent)]
    Show(#[from] ShowError),
    /// The command needs a signed-in actor and has none (`UNAUTHENTICATED`).
    #[error("sign in first")]
    SignInRequired,
    /// Sign-in with an unknown email or the wrong password; which of the two is not said
    /// (`UNAUTHENTICATED`).
    #[error("wrong email or password")]
    WrongCredentials,
    /// The session expired or was signed out (`UNAUTHENTICATED`).
    #[error("session expired or signed out")]
    SessionEnded,
    /// A throttle or the password hashers' queue is full (`RATE_LIMITED`); the text says which.
    #[error("{0}")]
    RateLimited(&'static str),
    /// An idempotency key that is empty or longer than 255 characters (`BAD_USER_INPUT`).
    #[error("idempotency key must be 1 to 255 characters")]
    IdempotencyKeyLength,
    /// An idempotency key already used for a request with other arguments (`CONFLICT`).
    #[error("this idempotency key was already used for another request")]
    IdempotencyKeyReused,
    /// A payment token the provider does not know (`BAD_USER_INPUT`, `token`).
    #[error("unknown payment token")]
    UnknownToken,
}

impl From<TicketError> for Refused {
    fn from(error: TicketError) -> Self {
        Self::Listing(error.into())
    }
}

impl From<OrderError> for Refused {
    fn from(error: OrderError) -> Self {
        Self::Listing(error.into())
    }
}

impl From<PaymentError> for Refused {
    fn from(error: PaymentError) -> Self {
        Self::Listing(error.into())
    }
}

/// Aggregates that never refuse.
impl From<std::convert::Infallible> for Refused {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl Refusal for Refused {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Listing(rule) => rule.code(),
            Self::Account(rule) => rule.code(),
            Self::Show(rule) => rule.code(),
            Self::SignInRequired | Self::WrongCredentials | Self::SessionEnded => ErrorCode::Unauthenticated,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::IdempotencyKeyLength | Self::UnknownToken => ErrorCode::BadUserInput,
            Self::IdempotencyKeyReused => ErrorCode::Conflict,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Listing(rule) => rule.field(),
            Self::Account(rule) => rule.field(),
            Self::Show(rule) => rule.field(),
            Self::IdempotencyKeyLength | Self::IdempotencyKeyReused => Some("idempotencyKey"),
            Self::UnknownToken => Some("token"),
            Self::SignInRequired | Self::WrongCredentials | Self::SessionEnded | Self::RateLimited(_) => None,
        }
    }

    fn field_path(&self) -> Option<String> {
        match self {
            Self::Show(rule) => rule.field_path(),
            other => other.field().map(str::to_owned),
        }
    }
}

impl Refused {
    /// The seat and ticket type ids a refused event order could not have (`extensions.unavailable`).
    pub fn unavailable(&self) -> Vec<String> {
        match self {
            Self::Show(rule) => rule.unavailable(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_of_the_service_has_the_code_and_field_clients_are_promised() {
        let expected = [
            (Refused::SignInRequired, ErrorCode::Unauthenticated, None),
            (Refused::WrongCredentials, ErrorCode::Unauthenticated, None),
            (Refused::SessionEnded, ErrorCode::Unauthenticated, None),
            (Refused::RateLimited("slow down"), ErrorCode::RateLimited, None),
            (Refused::IdempotencyKeyLength, ErrorCode::BadUserInput, Some("idempotencyKey")),
            (Refused::IdempotencyKeyReused, ErrorCode::Conflict, Some("idempotencyKey")),
            (Refused::UnknownToken, ErrorCode::BadUserInput, Some("token")),
        ];
        for (refused, code, field) in expected {
            assert_eq!((refused.code(), refused.field()), (code, field), "{refused:?}");
        }
    }

    #[test]
    fn a_domain_rule_keeps_its_variant_code_and_field() {
        let refused = Refused::from(OrderError::TicketUnavailable);
        assert_eq!(refused, Refused::Listing(ListingError::Order(OrderError::TicketUnavailable)));
        assert_eq!(refused.code(), OrderError::TicketUnavailable.code());
        assert_eq!(refused.to_string(), OrderError::TicketUnavailable.to_string());
        let taken = Refused::from(AccountError::EmailTaken);
        assert_eq!((taken.code(), taken.field()), (ErrorCode::Conflict, Some("email")));
    }
}
