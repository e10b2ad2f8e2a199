//! Stripe's PaymentIntents API (`PAYMENT_PROVIDER=stripe`).
//!
//! A charge is `POST /v1/payment_intents` with `confirm=true` and the payment method token, form
//! encoded, authenticated with `STRIPE_API_KEY` and made idempotent with an `Idempotency-Key`
//! header. The order, payment and ticket ids travel as metadata so webhooks can be matched. A
//! refund is `POST /v1/refunds` with the PaymentIntent id. A charge whose answer never came
//! (a timeout, a 5xx) is looked up later: `GET /v1/payment_intents/<id>` when its id is known,
//! else `GET /v1/payment_intents/search` by our payment id in the metadata.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{ChargeRequest, ChargeResult, Lookup, LookupRequest, PaymentProvider, ProviderError};

/// The Stripe provider.
#[derive(Debug, Clone)]
pub struct StripeProvider {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    status: String,
    #[serde(default)]
    last_payment_error: Option<ApiErrorBody>,
}

#[derive(Deserialize)]
struct SearchResult {
    #[serde(default)]
    data: Vec<Intent>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiErrorBody,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
}

impl StripeProvider {
    /// A provider for the API at `base` (e.g. `https://api.stripe.com`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, api_key: &str) -> Result<Self, ProviderError> {
        Self::with_timeout(base, api_key, Duration::from_secs(20))
    }

    /// A provider whose every request gives up after `timeout` (its outcome is then unknown).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_timeout(base: &str, api_key: &str, timeout: Duration) -> Result<Self, ProviderError> {
        // rustls needs a process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), api_key: api_key.to_owned() })
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), ProviderError> {
        let mut url = format!("{}{path}", self.base);
        for (n, (name, value)) in query.iter().enumerate() {
            url.push(if n == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(name));
            url.push('=');
            url.push_str(&percent_encode(value));
        }
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok((status, body))
    }

    async fn post(&self, path: &str, key: &str, form: &[(&str, String)]) -> Result<reqwest::Response, ProviderError> {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", key)
            .form(form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))
    }
}

/// Percent-encodes a query component (everything but RFC 3986's unreserved characters).
fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl PaymentProvider for StripeProvider {
    fn accepts_token(&self, token: &str) -> bool {
        !token.is_empty() && token.len() <= 255 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeResult, ProviderError>> {
        Box::pin(async move {
            let form = [
                ("amount", request.amount_cents.to_string()),
                ("currency", request.currency.clone()),
                ("payment_method", request.token.clone()),
                ("confirm", "true".to_owned()),
                ("automatic_payment_methods[enabled]", "true".to_owned()),
                ("automatic_payment_methods[allow_redirects]", "never".to_owned()),
                ("metadata[order_id]", request.order_id.to_string()),
                ("metadata[payment_id]", request.payment_id.to_string()),
            ];
            let mut form = form.to_vec();
            if let Some(ticket) = request.ticket_id {
                form.push(("metadata[ticket_id]", ticket.to_string()));
            }
            if let Some(event) = request.event_id {
                form.push(("metadata[event_id]", event.to_string()));
            }
            let response = self.post("/v1/payment_intents", &request.idempotency_key, &form).await?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
            if status.is_success() {
                let intent: Intent =
                    serde_json::from_slice(&body).map_err(|e| ProviderError::Unavailable(e.to_string()))?;
                return Ok(match intent.status.as_str() {
                    "succeeded" => ChargeResult::Succeeded { provider_ref: intent.id },
                    "processing" => ChargeResult::Pending { provider_ref: intent.id },
                    // Anything needing the customer (3-D Secure, a new method) cannot finish here.
                    other => ChargeResult::Declined {
                        reason: intent
                            .last_payment_error
                            .and_then(|e| e.decline_code.or(e.code))
                            .unwrap_or_else(|| other.to_owned()),
                    },
                });
            }
            let error = serde_json::from_slice::<ErrorEnvelope>(&body).ok().map(|e| e.error);
            match error {
                Some(error) if status.as_u16() == 402 || error.kind.as_deref() == Some("card_error") => {
                    Ok(ChargeResult::Declined {
                        reason: error.decline_code.or(error.code).unwrap_or_else(|| "card_declined".into()),
                    })
                }
                Some(error) if error.code.as_deref() == Some("resource_missing") => Err(ProviderError::InvalidToken),
                _ => Err(ProviderError::Unavailable(format!("Stripe answered HTTP {}", status.as_u16()))),
            }
        })
    }

    fn lookup(&self, request: LookupRequest) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async move {
            let intent = match &request.provider_ref {
                Some(id) => {
                    let (status, body) = self.get(&format!("/v1/payment_intents/{id}"), &[]).await?;
                    if !status.is_success() {
                        return Err(ProviderError::Unavailable(format!("Stripe answered HTTP {}", status.as_u16())));
                    }
                    Some(
                        serde_json::from_slice::<Intent>(&body)
                            .map_err(|e| ProviderError::Unavailable(e.to_string()))?,
                    )
                }
                None => {
                    let query = format!("metadata['payment_id']:'{}'", request.payment_id);
                    let (status, body) = self.get("/v1/payment_intents/search", &[("query", query)]).await?;
                    if !status.is_success() {
                        return Err(ProviderError::Unavailable(format!("Stripe answered HTTP {}", status.as_u16())));
                    }
                    let found: SearchResult =
                        serde_json::from_slice(&body).map_err(|e| ProviderError::Unavailable(e.to_string()))?;
                    found.data.into_iter().next()
                }
            };
            Ok(match intent {
                None => Lookup::NotCharged,
                Some(intent) => match intent.status.as_str() {
                    "succeeded" => Lookup::Charged { provider_ref: intent.id },
                    "processing" | "requires_capture" => Lookup::Processing { provider_ref: intent.id },
                    other => Lookup::Failed {
                        reason: intent
                            .last_payment_error
                            .and_then(|e| e.decline_code.or(e.code))
                            .unwrap_or_else(|| other.to_owned()),
                    },
                },
            })
        })
    }

    fn refund(&self, provider_ref: String, idempotency_key: String) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let response = self.post("/v1/refunds", &idempotency_key, &[("payment_intent", provider_ref)]).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = response.bytes().await.unwrap_or_default();
            let code = serde_json::from_slice::<ErrorEnvelope>(&body).ok().and_then(|e| e.error.code);
            // Refunded already (say, from the dashboard): the money is back, which is the point.
            if code.as_deref() == Some("charge_already_refunded") {
                return Ok(());
            }
            Err(ProviderError::Unavailable(format!("Stripe refund answered HTTP {}", status.as_u16())))
        })
    }

    fn not_charged_is_final_after(&self) -> Duration {
        // Search is eventually consistent (typically under a minute behind, more in the very
        // outages that leave outcomes unknown): "no such intent" is believed only this late.
        Duration::from_secs(15 * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn a_search_query_is_percent_encoded() {
        assert_eq!(percent_encode("metadata['payment_id']:'a-1'"), "metadata%5B%27payment_id%27%5D%3A%27a-1%27");
    }
}
