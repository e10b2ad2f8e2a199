//! Hold expiry, in two durable consumers shared by every replica:
//!
//! - the *scheduler* follows the account subjects of the event stream: for every
//!   `HoldSlotClaimed` it writes a JetStream message schedule at the slot's `expires_at` (or fires
//!   at once when that time has passed). Arming from the stored claim means every slot, and so
//!   every hold, gets its expiry even when the process that claimed it dies right after, and a
//!   hold that was never written costs no schedule write on the request path;
//! - the *expiry* consumer takes the firings on `ticketing.expiry.<ticket>.<order>`, expires the
//!   order if it is still unpaid and due by its own `expires_at` (re-arming when the firing came
//!   early), and releases the buyer's slot only once the hold is closed or was never placed.
//!
//! Both acknowledge a message only after its effect is stored, so a message that arrives while
//! command-service is down, or is being handled when it is killed, is delivered again when it is
//! back, or to another replica within [`ACK_WAIT`].

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;

use domain::{Event, EventEnvelope, subjects};

use crate::listings::ExpiryDue;
use crate::{CommandError, Service, now};

/// The durable consumer's name.
const CONSUMER: &str = "command-service-expiry";

/// The scheduler's durable consumer (on the event stream).
const SCHEDULER: &str = "command-service-scheduler";

/// How long after a slot's time its firing waits for a hold that is still being written before it
/// decides that the hold was never placed. Longer than any append can take (its retries
/// included), so a hold decided before its `expires_at` has landed by then; one decided later is
/// refused by the domain.
const NEVER_PLACED_AFTER: time::Duration = time::Duration::seconds(60);

/// How long a delivered firing stays with its replica without an acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(1);

/// Runs `work`, telling the server every half `ACK_WAIT` that the firing is still being handled.
async fn keep_in_progress<T>(message: &jetstream::Message, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            () = tokio::time::sleep(ACK_WAIT / 2) => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}

/// What to do with a firing.
enum Handled {
    Done,
    Later(Duration),
}

impl Service {
    /// Runs hold expiry for as long as the process runs: the scheduler, which arms an expiry for
    /// every claimed hold slot, and the consumer of their firings. When a consumer cannot be
    /// reached (a NATS node failing over, the cluster still electing) or its message stream ends,
    /// it starts again after a short pause instead of giving up.
    ///
    /// # Errors
    /// None in practice; the signature matches the other long-running tasks.
    pub async fn run_expiry(self) -> anyhow::Result<()> {
        let scheduling = async {
            loop {
                if let Err(error) = self.follow_claims().await {
                    tracing::warn!(error = %format!("{error:#}"), "expiry scheduler interrupted; starting again");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let expiring = async {
            loop {
                if let Err(error) = self.follow_expiries().await {
                    tracing::warn!(error = %format!("{error:#}"), "expiry consumer interrupted; starting again");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        futures::future::join(scheduling, expiring).await;
        Ok(())
    }

    /// Arms an expiry for every `HoldSlotClaimed`, until the consumer fails.
    async fn follow_claims(&self) -> anyhow::Result<()> {
        let settings = self.store().settings();
        let js = jetstream::new(self.store().client().clone());
        let stream = js.get_stream(&settings.name).await?;
        let consumer = stream
            .get_or_create_consumer(
                SCHEDULER,
                consumer::pull::Config {
                    durable_name: Some(SCHEDULER.to_owned()),
                    filter_subject: settings.wire_subject(subjects::ACCOUNTS),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT * 5,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        let messages = consumer.stream().max_messages_per_batch(256).messages().await?;
        messages
            .for_each_concurrent(256, |message| {
                let service = self.clone();
                async move {
                    let Ok(message) = message else { return };
                    let sequence = message.info().map_or(0, |info| info.stream_sequence);
                    let ack = match EventEnvelope::decode(&message.payload) {
                        Ok(Event::HoldSlotClaimed { account_id, order_id, ticket_id, expires_at, .. }) => {
                            let due = ExpiryDue { ticket_id, order_id, buyer: account_id, expires_at };
                            match service.arm_expiry(&due, sequence).await {
                                Ok(()) => AckKind::Ack,
                                Err(error) => {
                                    tracing::warn!(order = %order_id, %error, "could not arm an expiry; retrying");
                                    AckKind::Nak(Some(Duration::from_millis(200)))
                                }
                            }
                        }
                        Ok(_) => AckKind::Ack,
                        // Not ours to park (the projector parks it); nothing to arm from it.
                        Err(error) => {
                            tracing::error!(%error, sequence, "unreadable account event skipped by the scheduler");
                            AckKind::Ack
                        }
                    };
                    if let Err(error) = message.ack_with(ack).await {
                        tracing::warn!(%error, "could not acknowledge a claimed slot");
                    }
                }
            })
            .await;
        anyhow::bail!("the expiry scheduler stopped")
    }

    /// Writes the schedule of one claimed slot (replacing an older one for the same order), or
    /// fires it at once when its time has come. Repeats are deduplicated by the claim's position.
    async fn arm_expiry(&self, due: &ExpiryDue, claimed_at: u64) -> Result<(), CommandError> {
        let payload: bytes::Bytes = serde_json::to_vec(due).map_err(|e| CommandError::Internal(e.to_string()))?.into();
        let msg_id = format!("expiry-{}-{claimed_at}", due.order_id);
        let firing = subjects::expiry_firing(due.ticket_id, due.order_id);
        if due.expires_at <= now() {
            self.store().fire(&firing, payload, &msg_id).await?;
        } else {
            let schedule = subjects::expiry_schedule(due.order_id);
            self.store().schedule(&schedule, &firing, due.expires_at, payload, &msg_id).await?;
        }
        Ok(())
    }

    /// Expires holds as their schedules fire, until the consumer fails.
    async fn follow_expiries(&self) -> anyhow::Result<()> {
        let settings = self.store().settings();
        let js = jetstream::new(self.store().client().clone());
        let stream = js.get_stream(settings.timers_name()).await?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    filter_subject: settings.wire_subject(subjects::EXPIRY_FIRINGS),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // Short: a firing taken by a replica that is then killed goes to another one
                    // within a second. A live handler keeps its firing with progress acks.
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        // No more in hand than are handled at once: a firing waiting in a buffer gets no progress
        // acknowledgement and would go to another replica after `ACK_WAIT`.
        let messages = consumer.stream().max_messages_per_batch(64).messages().await?;
        messages
            .for_each_concurrent(64, |message| {
                let service = self.clone();
                async move {
                    let Ok(message) = message else { return };
                    let ack = match serde_json::from_slice::<ExpiryDue>(&message.payload) {
                        Ok(due) => match keep_in_progress(&message, service.handle_expiry(&due)).await {
                            Ok(Handled::Done) => AckKind::Ack,
                            Ok(Handled::Later(delay)) => AckKind::Nak(Some(delay)),
                            Err(error) => {
                                tracing::warn!(order = %due.order_id, %error, "expiry failed; retrying");
                                AckKind::Nak(Some(Duration::from_millis(500)))
                            }
                        },
                        Err(error) => {
                            tracing::error!(%error, subject = %message.subject, "unreadable expiry firing dropped");
                            AckKind::Term
                        }
                    };
                    if let Err(error) = message.ack_with(ack).await {
                        tracing::warn!(%error, "could not acknowledge an expiry firing");
                    }
                }
            })
            .await;
        anyhow::bail!("the expiry consumer stopped")
    }

    /// One firing: the order decides by its own `expires_at`, and the slot goes back only when the
    /// hold is closed (expired now, paid, cancelled) or was never placed.
    async fn handle_expiry(&self, due: &ExpiryDue) -> Result<Handled, CommandError> {
        let done = self.expire_order(due).await?;
        match done.state.orders.get(&due.order_id) {
            // Still open after `Expire`: by the order's own time it is not due yet (the schedule
            // fired a little early). Come back then.
            Some(order) if order.is_open() => {
                let remaining = order.expires_at - now();
                return Ok(Handled::Later(
                    Duration::try_from(remaining).unwrap_or_default() + Duration::from_millis(20),
                ));
            }
            // The hold may still be being written (its slot is claimed first): look again
            // shortly, for a while, before deciding it never happened.
            None if (now() - due.expires_at) < NEVER_PLACED_AFTER => {
                return Ok(Handled::Later(Duration::from_millis(500)));
            }
            _ => {}
        }
        self.give_slot_back(due.buyer, due.order_id).await?;
        Ok(Handled::Done)
    }
}
