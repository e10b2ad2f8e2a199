//! Payment webhooks in Stripe's format, and their signature scheme.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`; several
//! `v1` entries may be present (during secret rotation). A signature is accepted when any `v1`
//! matches (compared in constant time) and `t` is within the tolerance of now.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a signature's timestamp may be from now, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The most `v1` signatures a header may carry (a provider sends one per active secret).
pub const MAX_CANDIDATES: usize = 8;

/// Why a webhook was refused (answered with HTTP 400, no effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or no `t` / `v1` in it.
    #[error("missing or malformed signature header")]
    Malformed,
    /// No `v1` matches.
    #[error("signature does not match")]
    Mismatch,
    /// `t` is more than the tolerance away from now.
    #[error("signature timestamp outside the tolerance")]
    Stale,
}

/// Signs a payload the way the provider does (for tests and tools).
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

fn mac(secret: &str, timestamp: i64, body: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac
}

/// Verifies a `Stripe-Signature` header against the raw body. The MAC is computed once and each
/// candidate (at most [`MAX_CANDIDATES`]) compared with it in constant time.
///
/// # Errors
/// [`SignatureError`] when the header is malformed (or has too many candidates), no signature
/// matches, or it is stale.
pub fn verify(secret: &str, header: Option<&str>, body: &str, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                if candidates.len() == MAX_CANDIDATES {
                    return Err(SignatureError::Malformed);
                }
                candidates.extend(hex::decode(value).ok());
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Check the MAC first so a forged request learns nothing from the timing of the clock check.
    let expected = mac(secret, timestamp, body).finalize().into_bytes();
    let matched =
        candidates.iter().fold(false, |matched, candidate| matched | crate::constant_time_eq(&expected, candidate));
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// A webhook event, as much of it as the platform reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    /// The provider's event id (`evt_…`): a repeated id has no second effect.
    pub id: String,
    /// `payment_intent.succeeded`, `payment_intent.payment_failed`, `charge.refunded`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's object.
    pub data: WebhookData,
}

/// The `data` of a webhook event.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookData {
    /// The PaymentIntent (or, for `charge.refunded`, the charge).
    pub object: WebhookObject,
}

/// The object a webhook is about.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookObject {
    /// The provider reference (PaymentIntent id, or charge id).
    pub id: String,
    /// For a charge: the PaymentIntent it belongs to.
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// Amount in cents.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// For a charge: how much of it was refunded, in cents.
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    /// Our ids, sent with the charge.
    #[serde(default)]
    pub metadata: WebhookMetadata,
    /// Why a payment failed.
    #[serde(default)]
    pub last_payment_error: Option<WebhookPaymentError>,
}

/// Our ids as metadata on the provider's object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookMetadata {
    /// The order.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The payment.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// Our ticket id, so the listing is found without a search.
    #[serde(default)]
    pub ticket_id: Option<String>,
}

/// A payment error on the provider's object.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookPaymentError {
    /// The code (`card_declined`, …).
    #[serde(default)]
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &str = r#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    #[test]
    fn a_correct_signature_within_tolerance_is_accepted() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(verify(SECRET, Some(&header), BODY, 1_000 + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify(SECRET, Some(&header), BODY, 1_000 - TOLERANCE_SECONDS), Ok(()));
    }

    #[test]
    fn a_signature_is_stale_after_300_seconds() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(verify(SECRET, Some(&header), BODY, 1_301), Err(SignatureError::Stale));
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_a_garbled_header_is_refused() {
        let header = sign(SECRET, 1_000, BODY);
        assert_eq!(
            verify(SECRET, Some(&header), &BODY.replace("evt_1", "evt_2"), 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify("other", Some(&header), BODY, 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, None, BODY, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some("v1=abc"), BODY, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some("t=1000"), BODY, 1_000), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_matching_v1_among_several_is_enough() {
        let good = sign(SECRET, 1_000, BODY);
        let v1 = good.split_once("v1=").map(|(_, v)| v).unwrap_or_default();
        let header = format!("t=1000,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(SECRET, Some(&header), BODY, 1_000), Ok(()));
    }

    #[test]
    fn a_header_with_more_candidates_than_a_provider_sends_is_refused_unread() {
        let good = sign(SECRET, 1_000, BODY);
        let v1 = good.split_once("v1=").map(|(_, v)| v).unwrap_or_default();
        let within = format!("t=1000{},v1={v1}", ",v1=00".repeat(MAX_CANDIDATES - 1));
        assert_eq!(verify(SECRET, Some(&within), BODY, 1_000), Ok(()));
        let flood = format!("t=1000{},v1={v1}", ",v1=00".repeat(10_000));
        assert_eq!(verify(SECRET, Some(&flood), BODY, 1_000), Err(SignatureError::Malformed));
    }
}
