//! Every error the API answers, and its `extensions.code` (and `field`): made here and nowhere
//! else. Resolvers, the socket executor, the request limits and the HTTP layer all answer an
//! [`ApiError`]; [`ApiError::code`] is the one mapping, with a test per variant.

use async_graphql::ErrorExtensions;
use command_api::Failure;
use domain::ErrorCode;

/// An error the API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A session is needed and there is none, or it ended (`UNAUTHENTICATED`).
    Unauthenticated(&'static str),
    /// The domain's rules refuse this viewer (`FORBIDDEN`).
    Forbidden(&'static str),
    /// What is asked for does not exist (`NOT_FOUND`).
    NotFound(&'static str),
    /// Input refused (`BAD_USER_INPUT`), with the field at fault when there is one.
    BadInput {
        /// What is wrong, for people.
        message: String,
        /// The argument at fault.
        field: Option<&'static str>,
    },
    /// Too much at once from one client (`RATE_LIMITED`).
    RateLimited(&'static str),
    /// The command service refused or failed: its code, message and field, as it answered them.
    Command(Failure),
    /// A fault of ours: the detail goes to the log, the client sees only
    /// `INTERNAL_SERVER_ERROR` and "internal error".
    Internal(String),
}

impl ApiError {
    /// Input refused, naming the argument.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput { message: message.into(), field: Some(field) }
    }

    /// Its `extensions.code`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput { .. } => ErrorCode::BadUserInput,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Command(failure) => failure.code,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// Its `extensions.field`, when an argument is at fault.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::BadInput { field, .. } => *field,
            Self::Command(failure) => failure.field.as_deref(),
            _ => None,
        }
    }

    /// Its message for people; never internal detail.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) | Self::NotFound(m) | Self::RateLimited(m) => m,
            Self::BadInput { message, .. } => message,
            Self::Command(failure) if failure.code == ErrorCode::InternalServerError => "internal error",
            Self::Command(failure) => &failure.message,
            Self::Internal(_) => "internal error",
        }
    }

    /// The GraphQL response body of this error alone, for refusals made before GraphQL runs.
    pub fn to_json(&self) -> serde_json::Value {
        let mut extensions = serde_json::json!({ "code": self.code().as_str() });
        if let Some(field) = self.field() {
            extensions["field"] = field.into();
        }
        serde_json::json!({ "errors": [{ "message": self.message(), "extensions": extensions }] })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(detail) = &error {
            tracing::error!(%detail, "internal error");
        }
        let (code, field) = (error.code(), error.field().map(str::to_owned));
        // An event order refused for what is taken names it: seat ids and ticket type ids.
        let unavailable = match &error {
            ApiError::Command(failure) => failure.unavailable.clone(),
            _ => vec![],
        };
        async_graphql::Error::new(error.message()).extend_with(|_, e| {
            e.set("code", code.as_str());
            if let Some(field) = &field {
                e.set("field", field.as_str());
            }
            if !unavailable.is_empty() {
                e.set("unavailable", unavailable.clone());
            }
        })
    }
}

/// A command's refusal or failure, as the API answers it.
pub(super) fn from_failure(failure: Failure) -> async_graphql::Error {
    ApiError::Command(failure).into()
}

/// A fault of ours: logged with `detail`, answered without it.
pub(crate) fn internal(detail: impl std::fmt::Display) -> async_graphql::Error {
    ApiError::Internal(detail.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code, field and message a client sees.
    fn seen(error: ApiError) -> (String, Option<String>, String) {
        let error: async_graphql::Error = error.into();
        let extensions = error.extensions.as_ref().map(|e| serde_json::to_value(e).unwrap_or_default());
        let extensions = extensions.unwrap_or_default();
        (
            extensions["code"].as_str().unwrap_or_default().to_owned(),
            extensions["field"].as_str().map(str::to_owned),
            error.message,
        )
    }

    #[test]
    fn signed_out_is_unauthenticated() {
        assert_eq!(
            seen(ApiError::Unauthenticated("sign in first")),
            ("UNAUTHENTICATED".into(), None, "sign in first".into())
        );
    }

    #[test]
    fn a_refusal_by_the_rules_is_forbidden() {
        assert_eq!(seen(ApiError::Forbidden("not yours")), ("FORBIDDEN".into(), None, "not yours".into()));
    }

    #[test]
    fn something_missing_is_not_found() {
        assert_eq!(seen(ApiError::NotFound("order not found")), ("NOT_FOUND".into(), None, "order not found".into()));
    }

    #[test]
    fn bad_input_names_its_field() {
        assert_eq!(
            seen(ApiError::bad_input("first", "first must be between 0 and 100")),
            ("BAD_USER_INPUT".into(), Some("first".into()), "first must be between 0 and 100".into())
        );
        let whole = ApiError::BadInput { message: "too complex".into(), field: None };
        assert_eq!(seen(whole), ("BAD_USER_INPUT".into(), None, "too complex".into()));
    }

    #[test]
    fn too_much_at_once_is_rate_limited() {
        assert_eq!(seen(ApiError::RateLimited("slow down")), ("RATE_LIMITED".into(), None, "slow down".into()));
    }

    #[test]
    fn a_command_failure_keeps_its_code_and_field() {
        let declined = Failure::new(ErrorCode::PaymentDeclined, "your card was declined");
        assert_eq!(
            seen(ApiError::Command(declined)),
            ("PAYMENT_DECLINED".into(), None, "your card was declined".into())
        );
        let taken = Failure::field(ErrorCode::Conflict, "email", "email already registered");
        assert_eq!(
            seen(ApiError::Command(taken)),
            ("CONFLICT".into(), Some("email".into()), "email already registered".into())
        );
        let leaky = Failure::new(ErrorCode::InternalServerError, "stream TICKETING: timeout at 10.0.0.7");
        assert_eq!(seen(ApiError::Command(leaky)), ("INTERNAL_SERVER_ERROR".into(), None, "internal error".into()));
    }

    #[test]
    fn a_fault_of_ours_shows_no_detail() {
        let seen = seen(ApiError::Internal("connection refused (os error 111) at 10.0.0.7:5432".into()));
        assert_eq!(seen, ("INTERNAL_SERVER_ERROR".into(), None, "internal error".into()));
    }

    #[test]
    fn a_refusal_before_graphql_has_the_same_shape() {
        let body = ApiError::bad_input("body", "requests must be application/json").to_json();
        assert_eq!(body["errors"][0]["extensions"], serde_json::json!({"code": "BAD_USER_INPUT", "field": "body"}));
        assert_eq!(body["errors"][0]["message"], "requests must be application/json");
    }
}
