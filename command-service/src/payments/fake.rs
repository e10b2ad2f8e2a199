//! The fake provider (`PAYMENT_PROVIDER=fake`): test tokens, no network.
//!
//! - `tok_visa` succeeds at once;
//! - `tok_chargeDeclined` is declined (`card_declined`);
//! - `tok_async` is accepted and settles later by webhook. With a [`FakeBank`] the fake sends
//!   that webhook itself (signed, like the real provider's) after a delay, so a local system
//!   behaves like one wired to a real provider.
//!
//! Like a real provider it remembers idempotency keys: the same key returns the first result and
//! charges once. [`FakeProvider::charges`] counts real charges, so tests can prove "charged once".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{ChargeRequest, ChargeResult, PaymentProvider, ProviderError};

/// The fake provider.
#[derive(Debug, Default)]
pub struct FakeProvider {
    seen: Mutex<HashMap<String, ChargeResult>>,
    refunds: Mutex<HashMap<String, String>>,
    latency: Duration,
    bank: Option<FakeBank>,
}

/// A pretend bank that settles asynchronous payments by webhook.
#[derive(Debug, Clone)]
pub struct FakeBank {
    /// Where webhooks go (the gateway's `/webhooks/payments`).
    pub webhook_url: String,
    /// The secret that signs them (`PAYMENT_WEBHOOK_SECRET`).
    pub secret: String,
    /// How long settling takes.
    pub delay: Duration,
}

impl FakeBank {
    /// Sends `payment_intent.succeeded` for a pending charge after the delay, retrying (like a
    /// provider) until the endpoint answers 2xx or a minute has passed.
    fn settle(&self, request: &ChargeRequest, provider_ref: &str) {
        let body = serde_json::json!({
            "id": format!("evt_fake_{}", request.payment_id.as_uuid().simple()),
            "type": "payment_intent.succeeded",
            "data": {"object": {
                "id": provider_ref,
                "amount": request.amount_cents,
                "currency": request.currency,
                "metadata": {"order_id": request.order_id.to_string(), "payment_id": request.payment_id.to_string()}
            }}
        })
        .to_string();
        let bank = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(bank.delay).await;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let Ok(http) = reqwest::Client::builder().build() else { return };
            for attempt in 0..12u32 {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let sent = http
                    .post(&bank.webhook_url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", super::webhook::sign(&bank.secret, now, &body))
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => return,
                    Ok(response) => tracing::warn!(status = %response.status(), attempt, "fake bank webhook refused"),
                    Err(error) => tracing::warn!(%error, attempt, "fake bank webhook not delivered"),
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
}

const TOKENS: [&str; 3] = ["tok_visa", "tok_chargeDeclined", "tok_async"];

impl FakeProvider {
    /// A fake that takes `latency` to answer each charge, like a real provider over a network.
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency, ..Self::default() }
    }

    /// A fake whose `tok_async` payments are settled by `bank`.
    pub fn with_bank(bank: FakeBank) -> Self {
        Self { bank: Some(bank), ..Self::default() }
    }

    /// How many distinct charges succeeded or are pending (declines move no money).
    pub fn charges(&self) -> usize {
        self.seen
            .lock()
            .map(|seen| seen.values().filter(|r| !matches!(r, ChargeResult::Declined { .. })).count())
            .unwrap_or(0)
    }

    /// How many distinct refunds were made.
    pub fn refunds(&self) -> usize {
        self.refunds.lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl PaymentProvider for FakeProvider {
    fn accepts_token(&self, token: &str) -> bool {
        TOKENS.contains(&token)
    }

    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeResult, ProviderError>> {
        Box::pin(async move {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            let mut seen = self.seen.lock().map_err(|_| ProviderError::Unavailable("poisoned".into()))?;
            if let Some(first) = seen.get(&request.idempotency_key) {
                return Ok(first.clone());
            }
            let provider_ref = format!("pi_fake_{}", request.payment_id.as_uuid().simple());
            let result = match request.token.as_str() {
                "tok_visa" => ChargeResult::Succeeded { provider_ref },
                "tok_async" => ChargeResult::Pending { provider_ref },
                "tok_chargeDeclined" => ChargeResult::Declined { reason: "card_declined".into() },
                _ => return Err(ProviderError::InvalidToken),
            };
            if let (Some(bank), ChargeResult::Pending { provider_ref }) = (&self.bank, &result) {
                bank.settle(&request, provider_ref);
            }
            seen.insert(request.idempotency_key, result.clone());
            Ok(result)
        })
    }

    fn refund(&self, provider_ref: String, idempotency_key: String) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut refunds = self.refunds.lock().map_err(|_| ProviderError::Unavailable("poisoned".into()))?;
            refunds.entry(idempotency_key).or_insert(provider_ref);
            Ok(())
        })
    }
}
