//! Payment providers: who actually moves the money.
//!
//! [`PaymentProvider`] is the seam: [`fake::FakeProvider`] understands test tokens,
//! [`stripe::StripeProvider`] speaks Stripe's PaymentIntents HTTP API. Every call carries an
//! idempotency key derived from the payment id, so a retried call never charges twice.

pub mod fake;
pub mod stripe;
pub mod webhook;

use domain::{OrderId, PaymentId, TicketId};
use futures::future::BoxFuture;

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Our payment id (sent as metadata).
    pub payment_id: PaymentId,
    /// The order it pays for (sent as metadata, so webhooks find it).
    pub order_id: OrderId,
    /// The order's ticket (sent as metadata, so a webhook finds the listing without a search).
    pub ticket_id: Option<TicketId>,
    /// The order's event (sent as metadata, for the same reason), for an order on an event.
    pub event_id: Option<domain::ShowId>,
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

/// What the provider knows about a charge, when asked later (reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The money was taken.
    Charged {
        /// The provider's reference.
        provider_ref: String,
    },
    /// Accepted, still settling.
    Processing {
        /// The provider's reference.
        provider_ref: String,
    },
    /// The charge was made and failed.
    Failed {
        /// The provider's short reason.
        reason: String,
    },
    /// No charge was ever made under this payment's key.
    NotCharged,
}

/// The charge to ask about: our ids, and the provider's reference when we have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    /// Our payment id (the provider has it as metadata).
    pub payment_id: PaymentId,
    /// The provider-side idempotency key the charge was made with.
    pub idempotency_key: String,
    /// The provider's reference, if its answer reached us.
    pub provider_ref: Option<String>,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The token is not a payment method the provider knows (`BAD_USER_INPUT`, field `token`).
    #[error("unknown payment token")]
    InvalidToken,
    /// The provider could not be reached, failed or did not answer in time: whether it charged
    /// is unknown (the payment stays pending until reconciliation asks again).
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
    /// Asks what became of a charge whose outcome we do not know (a timeout, a crash).
    fn lookup(&self, request: LookupRequest) -> BoxFuture<'_, Result<Lookup, ProviderError>>;
    /// How old a payment must be before [`Lookup::NotCharged`] is believed: zero for a provider
    /// whose answer is authoritative, longer for one whose index lags (Stripe's search).
    fn not_charged_is_final_after(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}
