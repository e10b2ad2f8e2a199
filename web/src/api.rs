//! Queries and mutations over HTTP (`POST /graphql` on the page's own origin, with its cookie).

use std::fmt;

use graphql_client::{GraphQLQuery, Response};

/// What went wrong with a request, as the API said it (`extensions.code`, `extensions.field`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The API's error code (`CONFLICT`, `BAD_USER_INPUT`, …), or `NETWORK` when it was not reached.
    pub code: String,
    /// The API's message.
    pub message: String,
    /// The input field at fault, for `BAD_USER_INPUT`.
    pub field: Option<String>,
    /// What was not available, for an event order's `CONFLICT` (seat and ticket type ids).
    pub unavailable: Vec<String>,
}

impl ApiError {
    /// An error that never reached the API.
    pub fn network(message: impl Into<String>) -> Self {
        Self { code: "NETWORK".into(), message: message.into(), field: None, unavailable: vec![] }
    }

    /// The first error of a GraphQL response.
    pub fn from_graphql(error: &graphql_client::Error) -> Self {
        let extension = |name: &str| {
            error.extensions.as_ref().and_then(|e| e.get(name)).and_then(|v| v.as_str()).map(str::to_owned)
        };
        Self {
            code: extension("code").unwrap_or_else(|| "INTERNAL_SERVER_ERROR".into()),
            message: error.message.clone(),
            field: extension("field"),
            unavailable: error
                .extensions
                .as_ref()
                .and_then(|e| e.get("unavailable"))
                .and_then(|v| v.as_array())
                .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        }
    }

    /// What to tell a person.
    pub fn user_message(&self) -> String {
        match self.code.as_str() {
            "BAD_USER_INPUT" => sentence(&self.message),
            "UNAUTHENTICATED" => "Please sign in first.".into(),
            "FORBIDDEN" => "You are not allowed to do that.".into(),
            "NOT_FOUND" => "That no longer exists.".into(),
            "CONFLICT" => sentence(&self.message),
            "PAYMENT_DECLINED" => "Your card was declined. Try another card.".into(),
            "RATE_LIMITED" => "Too many attempts. Wait a minute and try again.".into(),
            "NETWORK" => "We could not reach the server. Check your connection and try again.".into(),
            _ => "Something went wrong on our side. Please try again.".into(),
        }
    }

    /// The message for `field`, when this error is about it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        (self.field.as_deref() == Some(field)).then(|| sentence(&self.message))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The API's message with a capital letter and a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return "That did not work.".into(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Runs one operation against `/graphql`.
///
/// # Errors
/// The API's first error, or [`ApiError::network`].
pub async fn request<Q: GraphQLQuery>(variables: Q::Variables) -> Result<Q::ResponseData, ApiError> {
    request_until::<Q>(variables, None).await
}

/// Runs one operation against `/graphql` that `abort` can cancel (a search overtaken by the next
/// one): the browser drops the request, and the answer is an error nobody shows.
///
/// # Errors
/// The API's first error, or [`ApiError::network`] (also when aborted).
pub async fn request_until<Q: GraphQLQuery>(
    variables: Q::Variables,
    abort: Option<&web_sys::AbortSignal>,
) -> Result<Q::ResponseData, ApiError> {
    let body = Q::build_query(variables);
    let response = gloo::net::http::Request::post("/graphql")
        .abort_signal(abort)
        .json(&body)
        .map_err(|e| ApiError::network(e.to_string()))?
        .send()
        .await
        .map_err(|e| ApiError::network(e.to_string()))?;
    let status = response.status();
    let unreadable = || ApiError::network(format!("the server answered {status} without a GraphQL body"));
    // Through a `Value`, as subscription pushes are: every operation's types then decode from one
    // kind of deserializer, which kept the bundle 19 KiB (gzipped) smaller than decoding text (measured).
    let value: serde_json::Value = response.json().await.map_err(|_| unreadable())?;
    let response: Response<Q::ResponseData> = serde_json::from_value(value).map_err(|_| unreadable())?;
    decode(response)
}

/// The data of a response, or its first error.
///
/// # Errors
/// The first GraphQL error, when there is one.
pub fn decode<T>(response: Response<T>) -> Result<T, ApiError> {
    if let Some(error) = response.errors.as_ref().and_then(|e| e.first()) {
        return Err(ApiError::from_graphql(error));
    }
    response.data.ok_or_else(|| ApiError::network("the server answered without data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_code_and_field() {
        let response: Response<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "data": null,
            "errors": [{"message": "title must not be empty", "extensions": {"code": "BAD_USER_INPUT", "field": "title"}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let error = decode(response).err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(error.code, "BAD_USER_INPUT");
        assert_eq!(error.for_field("title").as_deref(), Some("Title must not be empty."));
        assert_eq!(error.for_field("priceCents"), None);
    }

    #[test]
    fn an_event_conflict_keeps_what_was_unavailable() {
        let response: Response<serde_json::Value> = serde_json::from_value(serde_json::json!({
            "data": null,
            "errors": [{"message": "not available: A-1-2", "extensions": {"code": "CONFLICT", "unavailable": ["A-1-2", "t1"]}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let error = decode(response).err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(error.unavailable, ["A-1-2", "t1"]);
    }

    #[test]
    fn declines_and_unknown_codes_read_as_sentences() {
        let declined = ApiError {
            code: "PAYMENT_DECLINED".into(),
            message: "card_declined".into(),
            field: None,
            unavailable: vec![],
        };
        assert_eq!(declined.user_message(), "Your card was declined. Try another card.");
        let internal = ApiError { code: "WHATEVER".into(), message: "boom".into(), field: None, unavailable: vec![] };
        assert!(!internal.user_message().contains("boom"));
    }
}
