//! Payment webhooks in Stripe's format, and their signature scheme.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`; several
//! `v1` entries may be present (during secret rotation). A signature is accepted when any `v1`
//! matches (compared in constant time) and `t` is within the tolerance of now.

use domain::{OrderId, PaymentId, PaymentOutcome, TicketId};
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
    /// Our event id (an order on an event), so the event is found without a search.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// A payment error on the provider's object.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookPaymentError {
    /// The code (`card_declined`, …).
    #[serde(default)]
    pub code: Option<String>,
}

/// What a verified webhook event says, in the platform's terms: everything the provider's format
/// decides is read here, so the listing's code only sees outcomes, ids and money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A payment settled one way or the other.
    Settles(Settlement),
    /// Nothing the platform acts on, and why (logged).
    Ignored(&'static str),
}

/// A payment's settlement, as a webhook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// What happened to the charge.
    pub outcome: PaymentOutcome,
    /// The order it was for (our metadata on the charge).
    pub order_id: OrderId,
    /// The ticket, when the metadata names it: the listing is found without a search.
    pub ticket_hint: Option<TicketId>,
    /// The event, when the metadata names it (an order on an event).
    pub event_hint: Option<domain::ShowId>,
    /// The payment, when the metadata names it.
    pub payment_hint: Option<PaymentId>,
    /// The provider's reference of the charge (a PaymentIntent, also for a refund's charge).
    pub provider_ref: String,
    /// The money it moves in cents (for a refund: what was refunded), when the event says.
    pub amount_cents: Option<i64>,
    /// Its currency, when the event says.
    pub currency: Option<String>,
}

impl Settlement {
    /// Whether money moves (a charge that succeeded, a refund): then amount and currency must be
    /// the payment's.
    pub fn moves_money(&self) -> bool {
        matches!(self.outcome, PaymentOutcome::Succeeded { .. } | PaymentOutcome::Refunded)
    }
}

impl WebhookEvent {
    /// What this event means for the platform.
    pub fn notice(&self) -> Notice {
        let object = &self.data.object;
        let provider_ref = object.payment_intent.clone().unwrap_or_else(|| object.id.clone());
        let (outcome, amount_cents) = match self.kind.as_str() {
            "payment_intent.succeeded" => {
                (PaymentOutcome::Succeeded { provider_ref: object.id.clone() }, object.amount)
            }
            "payment_intent.payment_failed" => {
                let reason = object.last_payment_error.as_ref().and_then(|e| e.code.clone());
                (PaymentOutcome::Failed { reason: reason.unwrap_or_else(|| "payment_failed".into()) }, object.amount)
            }
            "charge.refunded" => {
                if let (Some(refunded), Some(charged)) = (object.amount_refunded, object.amount)
                    && refunded < charged
                {
                    return Notice::Ignored("a partial refund, which leaves the payment paid");
                }
                (PaymentOutcome::Refunded, object.amount_refunded.or(object.amount))
            }
            _ => return Notice::Ignored("an event type the platform does not act on"),
        };
        let Some(order_id) = object.metadata.order_id.as_deref().and_then(|id| id.parse::<OrderId>().ok()) else {
            return Notice::Ignored("no order id of ours in its metadata");
        };
        Notice::Settles(Settlement {
            outcome,
            order_id,
            ticket_hint: object.metadata.ticket_id.as_deref().and_then(|id| id.parse().ok()),
            event_hint: object.metadata.event_id.as_deref().and_then(|id| id.parse().ok()),
            payment_hint: object.metadata.payment_id.as_deref().and_then(|id| id.parse().ok()),
            provider_ref,
            amount_cents,
            currency: object.currency.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &str = r#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    fn event(json: serde_json::Value) -> WebhookEvent {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    const ORDER: &str = "00000000-0000-0000-0000-000000000003";

    #[test]
    fn a_succeeded_intent_settles_its_order_with_the_money_it_moved() {
        let notice = event(serde_json::json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {
            "id": "pi_1", "amount": 2500, "currency": "usd",
            "metadata": {"order_id": ORDER, "ticket_id": "00000000-0000-0000-0000-000000000004"}}}}))
        .notice();
        let Notice::Settles(settlement) = notice else { panic!("{notice:?}") };
        assert_eq!(settlement.outcome, PaymentOutcome::Succeeded { provider_ref: "pi_1".into() });
        assert_eq!(settlement.order_id.to_string(), ORDER);
        assert!(settlement.ticket_hint.is_some() && settlement.payment_hint.is_none());
        assert_eq!((settlement.amount_cents, settlement.currency.as_deref()), (Some(2500), Some("usd")));
        assert!(settlement.moves_money());
    }

    #[test]
    fn a_refund_is_read_from_its_charge_and_a_partial_one_is_ignored() {
        let refund = |refunded: i64| {
            event(serde_json::json!({"id": "evt_2", "type": "charge.refunded", "data": {"object": {
                "id": "ch_1", "payment_intent": "pi_1", "amount": 2500, "amount_refunded": refunded,
                "currency": "usd", "metadata": {"order_id": ORDER}}}}))
            .notice()
        };
        let Notice::Settles(full) = refund(2500) else { panic!("a full refund settles") };
        assert_eq!(
            (full.outcome.clone(), full.provider_ref.as_str(), full.amount_cents),
            (PaymentOutcome::Refunded, "pi_1", Some(2500))
        );
        assert!(matches!(refund(1000), Notice::Ignored(_)));
    }

    #[test]
    fn a_failure_keeps_the_banks_code_and_the_rest_is_ignored() {
        let failed =
            event(serde_json::json!({"id": "evt_3", "type": "payment_intent.payment_failed", "data": {"object": {
            "id": "pi_1", "last_payment_error": {"code": "card_declined"}, "metadata": {"order_id": ORDER}}}}))
            .notice();
        let Notice::Settles(failed) = failed else { panic!("{failed:?}") };
        assert_eq!(failed.outcome, PaymentOutcome::Failed { reason: "card_declined".into() });
        assert!(!failed.moves_money());
        let other =
            event(serde_json::json!({"id": "evt_4", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}));
        assert!(matches!(other.notice(), Notice::Ignored(_)));
        let foreign = event(
            serde_json::json!({"id": "evt_5", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_9"}}}),
        );
        assert!(matches!(foreign.notice(), Notice::Ignored(_)));
    }

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
