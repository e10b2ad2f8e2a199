//! The fake provider (`PAYMENT_PROVIDER=fake`): test tokens, no network.
//!
//! - `tok_visa` succeeds at once;
//! - `tok_chargeDeclined` is declined (`card_declined`);
//! - `tok_async` is accepted and settles later by webhook. With a [`FakeBank`] the fake sends
//!   that webhook itself (signed, like the real provider's) after a delay, so a local system
//!   behaves like one wired to a real provider;
//! - `tok_timeout` charges, then its answer is lost (like a provider that times out after
//!   charging): the payment stays pending until reconciliation asks the ledger.
//!
//! Asked about a key it has no charge for, the ledger records "not charged" under that key (the
//! same compare-and-set a charge uses), so its answer is final: a charge still on its way with
//! that key is declined instead of landing after the payment was failed.
//!
//! Like a real provider it keeps a ledger of charges by idempotency key: the same key returns the
//! first result and charges once. The ledger lives in memory ([`FakeProvider::default`], for
//! tests that inspect it) or in a JetStream key-value bucket ([`FakeProvider::with_ledger`], what
//! the service uses), where it outlives the process, so "every charge completed or refunded" can
//! be checked across a SIGKILL. A bucket entry is `charge.<payment key>` →
//! `{"status": "succeeded" | "pending" | "declined", "provider_ref", "reason", "settles_at_ms"}`
//! (a pending charge with a bank settles at `settles_at_ms`, and is "charged" from then on), and a
//! refund is `refund.<refund key>` → the provider reference.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{ChargeRequest, ChargeResult, Lookup, LookupRequest, PaymentProvider, ProviderError};

/// The fake provider.
#[derive(Debug, Default)]
pub struct FakeProvider {
    ledger: Ledger,
    latency: Duration,
    bank: Option<FakeBank>,
}

/// Where the fake keeps its charges and refunds.
#[derive(Debug)]
enum Ledger {
    /// In this process (tests count charges here): charges and refunds by idempotency key.
    Memory(Mutex<HashMap<String, LedgerEntry>>, Mutex<HashMap<String, String>>),
    /// In a key-value bucket, outliving the process.
    Bucket(Box<kv::Store>),
}

impl Default for Ledger {
    fn default() -> Self {
        Self::Memory(Mutex::default(), Mutex::default())
    }
}

/// How often a ledger write is tried before the charge counts as unanswered: about 5 s in all
/// (a bucket on a forming 3-node cluster was seen unplaced for more than 3 s on a loaded machine).
const BUCKET_ATTEMPTS: u32 = 8;
/// No new attempt after this long, however slow each one was (the gateway waits 15 s in all).
const BUCKET_DEADLINE: Duration = Duration::from_secs(8);

fn poisoned<T>(_: T) -> ProviderError {
    ProviderError::Unavailable("ledger lock poisoned".into())
}

fn bucket_error(error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("ledger: {error}"))
}

impl Ledger {
    /// Records `entry` under `key` unless a charge is there already; answers what is recorded.
    async fn charge_once(&self, key: &str, entry: LedgerEntry) -> Result<LedgerEntry, ProviderError> {
        match self {
            Self::Memory(charges, _) => {
                Ok(charges.lock().map_err(poisoned)?.entry(key.to_owned()).or_insert(entry).clone())
            }
            Self::Bucket(store) => {
                let name = format!("charge.{key}");
                let body: bytes::Bytes = serde_json::to_vec(&entry).map_err(bucket_error)?.into();
                let mut last = String::new();
                // A bucket whose replicas are still being placed (a forming cluster) answers late:
                // retry a little, as a provider's own client would.
                let deadline = std::time::Instant::now() + BUCKET_DEADLINE;
                for attempt in 0..BUCKET_ATTEMPTS {
                    if std::time::Instant::now() >= deadline {
                        break;
                    }
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis((100 << attempt).min(1000))).await;
                    }
                    // Revision 0: only if nothing is there yet (entries are never deleted).
                    match store.update(&name, body.clone(), 0).await {
                        Ok(_) => return Ok(entry),
                        Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            if let Some(first) = self.get(key).await? {
                                return Ok(first);
                            }
                            last = "charge vanished".into();
                        }
                        Err(error) => last = format!("{error:?}"),
                    }
                }
                Err(bucket_error(last))
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<LedgerEntry>, ProviderError> {
        match self {
            Self::Memory(charges, _) => Ok(charges.lock().map_err(poisoned)?.get(key).cloned()),
            Self::Bucket(store) => match store.get(format!("charge.{key}")).await.map_err(bucket_error)? {
                Some(body) => serde_json::from_slice(&body).map(Some).map_err(bucket_error),
                None => Ok(None),
            },
        }
    }

    async fn refund_once(&self, key: &str, provider_ref: String) -> Result<(), ProviderError> {
        match self {
            Self::Memory(_, refunds) => {
                refunds.lock().map_err(poisoned)?.entry(key.to_owned()).or_insert(provider_ref);
                Ok(())
            }
            Self::Bucket(store) => match store.create(format!("refund.{key}"), provider_ref.into()).await {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(bucket_error(error)),
            },
        }
    }
}

/// One charge in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `succeeded`, `pending` or `declined`.
    pub status: String,
    /// The reference of a charge that moved (or will move) money.
    #[serde(default)]
    pub provider_ref: Option<String>,
    /// Why a declined charge was declined.
    #[serde(default)]
    pub reason: Option<String>,
    /// When a pending charge settles at its pretend bank (Unix milliseconds); from then on the
    /// ledger answers "charged" for it, as a real provider would. `None`: it stays pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles_at_ms: Option<i64>,
}

impl LedgerEntry {
    fn of(result: &ChargeResult) -> Self {
        match result {
            ChargeResult::Succeeded { provider_ref } => Self {
                status: "succeeded".into(),
                provider_ref: Some(provider_ref.clone()),
                reason: None,
                settles_at_ms: None,
            },
            ChargeResult::Pending { provider_ref } => Self {
                status: "pending".into(),
                provider_ref: Some(provider_ref.clone()),
                reason: None,
                settles_at_ms: None,
            },
            ChargeResult::Declined { reason } => Self {
                status: "declined".into(),
                provider_ref: None,
                reason: Some(reason.clone()),
                settles_at_ms: None,
            },
        }
    }

    fn result(&self) -> ChargeResult {
        let provider_ref = self.provider_ref.clone().unwrap_or_default();
        match self.status.as_str() {
            "succeeded" => ChargeResult::Succeeded { provider_ref },
            "pending" => ChargeResult::Pending { provider_ref },
            _ => ChargeResult::Declined { reason: self.reason.clone().unwrap_or_else(|| "card_declined".into()) },
        }
    }
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
                "metadata": metadata(request)
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

/// The reason of a charge refused because reconciliation found nothing under its key first.
const NOT_CHARGED: &str = "not_charged";

const TOKENS: [&str; 4] = ["tok_visa", "tok_chargeDeclined", "tok_async", "tok_timeout"];

impl FakeProvider {
    /// A fake that takes `latency` to answer each charge, like a real provider over a network.
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency, ..Self::default() }
    }

    /// A fake whose `tok_async` payments are settled by `bank`.
    pub fn with_bank(bank: FakeBank) -> Self {
        Self { bank: Some(bank), ..Self::default() }
    }

    /// A fake that keeps its ledger in `bucket` (it outlives the process), settling `tok_async`
    /// payments through `bank` when there is one.
    pub fn with_ledger(bucket: kv::Store, bank: Option<FakeBank>) -> Self {
        Self { ledger: Ledger::Bucket(Box::new(bucket)), bank, ..Self::default() }
    }

    /// How many distinct charges succeeded or are pending (declines move no money); in-memory
    /// ledgers only (0 otherwise).
    pub fn charges(&self) -> usize {
        match &self.ledger {
            Ledger::Memory(charges, _) => {
                charges.lock().map(|c| c.values().filter(|e| e.status != "declined").count()).unwrap_or(0)
            }
            Ledger::Bucket(_) => 0,
        }
    }

    /// How many distinct refunds were made; in-memory ledgers only (0 otherwise).
    pub fn refunds(&self) -> usize {
        match &self.ledger {
            Ledger::Memory(_, refunds) => refunds.lock().map(|r| r.len()).unwrap_or(0),
            Ledger::Bucket(_) => 0,
        }
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
            let provider_ref = format!("pi_fake_{}", request.payment_id.as_uuid().simple());
            let result = match request.token.as_str() {
                "tok_visa" | "tok_timeout" => ChargeResult::Succeeded { provider_ref },
                "tok_async" => ChargeResult::Pending { provider_ref },
                "tok_chargeDeclined" => ChargeResult::Declined { reason: "card_declined".into() },
                _ => return Err(ProviderError::InvalidToken),
            };
            let mut entry = LedgerEntry::of(&result);
            if let (Some(bank), ChargeResult::Pending { .. }) = (&self.bank, &result) {
                let settles = time::OffsetDateTime::now_utc() + bank.delay;
                entry.settles_at_ms = i64::try_from(settles.unix_timestamp_nanos() / 1_000_000).ok();
            }
            let recorded = self.ledger.charge_once(&request.idempotency_key, entry.clone()).await?;
            let first = recorded.result();
            if recorded == entry
                && let (Some(bank), ChargeResult::Pending { provider_ref }) = (&self.bank, &first)
            {
                bank.settle(&request, provider_ref);
            }
            if request.token == "tok_timeout" {
                return Err(ProviderError::Unavailable("timed out after charging".into()));
            }
            Ok(first)
        })
    }

    fn refund(&self, provider_ref: String, idempotency_key: String) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { self.ledger.refund_once(&idempotency_key, provider_ref).await })
    }

    fn lookup(&self, request: LookupRequest) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async move {
            let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            let entry = match self.ledger.get(&request.idempotency_key).await? {
                Some(entry) => Some(entry),
                None => {
                    // Nothing under the key: record that, with the same compare-and-set a charge
                    // uses, so a charge still on its way is refused instead of landing after the
                    // payment was failed. Whichever is first decides, once.
                    let void = LedgerEntry::of(&ChargeResult::Declined { reason: NOT_CHARGED.into() });
                    let recorded = self.ledger.charge_once(&request.idempotency_key, void.clone()).await?;
                    (recorded != void).then_some(recorded)
                }
            };
            Ok(match entry {
                None => Lookup::NotCharged,
                // Its pretend bank has settled it by now.
                Some(LedgerEntry { provider_ref: Some(provider_ref), settles_at_ms: Some(at), .. }) if at <= now_ms => {
                    Lookup::Charged { provider_ref }
                }
                Some(entry) => match entry.result() {
                    ChargeResult::Succeeded { provider_ref } => Lookup::Charged { provider_ref },
                    ChargeResult::Pending { provider_ref } => Lookup::Processing { provider_ref },
                    ChargeResult::Declined { reason } => Lookup::Failed { reason },
                },
            })
        })
    }
}

/// The metadata a charge carries to its webhook: the order, the payment, and where the order
/// lives (its ticket or its event).
fn metadata(request: &ChargeRequest) -> serde_json::Value {
    let mut metadata = serde_json::json!({
        "order_id": request.order_id.to_string(),
        "payment_id": request.payment_id.to_string(),
    });
    if let Some(ticket) = request.ticket_id {
        metadata["ticket_id"] = ticket.to_string().into();
    }
    if let Some(event) = request.event_id {
        metadata["event_id"] = event.to_string().into();
    }
    metadata
}
