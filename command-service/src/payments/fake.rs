//! The fake provider (`PAYMENT_PROVIDER=fake`): test tokens, no network.
//!
//! - `tok_visa` succeeds at once;
//! - `tok_chargeDeclined` is declined (`card_declined`);
//! - `tok_async` is accepted and settles later by webhook.
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
}

const TOKENS: [&str; 3] = ["tok_visa", "tok_chargeDeclined", "tok_async"];

impl FakeProvider {
    /// A fake that takes `latency` to answer each charge, like a real provider over a network.
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency, ..Self::default() }
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
