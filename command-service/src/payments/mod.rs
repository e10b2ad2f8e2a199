//! Payment providers: who actually moves the money.
//!
//! [`PaymentProvider`] is the seam: [`fake::FakeProvider`] understands test tokens,
//! [`stripe::StripeProvider`] speaks Stripe's PaymentIntents HTTP API. Every call carries an
//! idempotency key derived from the payment id, so a retried call never charges twice.

pub mod fake;
pub mod stripe;
pub mod webhook;

use domain::{OrderId, PaymentId};
use futures::future::BoxFuture;

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Our payment id (sent as metadata).
    pub payment_id: PaymentId,
    /// The order it pays for (sent as metadata, so webhooks find it).
    pub order_id: OrderId,
    /// Amount in cents.
    pub amount_cents: i64,
    /// Lower-case ISO currency (`usd`).
    pub currency: String,
    /// The payment method token.
    pub token: String,
    /// The provider-side idempotency key.
    pub idempotency_key: String,
}

/// What the provider said about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeResult {
    /// Charged.
    Succeeded {
        /// The provider's reference (a PaymentIntent id).
        provider_ref: String,
    },
    /// Accepted, settles later by webhook.
    Pending {
        /// The provider's reference.
        provider_ref: String,
    },
    /// Declined.
    Declined {
        /// The provider's short reason (e.g. `card_declined`).
        reason: String,
    },
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The token is not a payment method the provider knows (`BAD_USER_INPUT`, field `token`).
    #[error("unknown payment token")]
    InvalidToken,
    /// The provider could not be reached or failed (`INTERNAL_SERVER_ERROR`).
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Whether a token is worth sending at all (shape only; the provider has the last word).
    fn accepts_token(&self, token: &str) -> bool;

    /// Charges once per idempotency key.
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<ChargeResult, ProviderError>>;

    /// Refunds a charge in full, once per idempotency key.
    fn refund(&self, provider_ref: String, idempotency_key: String) -> BoxFuture<'_, Result<(), ProviderError>>;
}
