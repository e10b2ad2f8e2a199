//! Hold expiry: JetStream message schedules fire into `ticketing.expiry.<ticket>.<order>`; a
//! durable consumer shared by every replica cancels the still-unpaid orders.
//!
//! The consumer acknowledges a firing only after the order is expired (or found paid, cancelled
//! or never placed) and the buyer's slot released, so a firing that arrives while command-service
//! is down, or is being handled when it is killed, is delivered again when it is back, or to
//! another replica within [`ACK_WAIT`].

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;

use crate::listings::ExpiryDue;
use crate::{CommandError, Service, now};

/// The durable consumer's name.
const CONSUMER: &str = "command-service-expiry";

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
    /// Expires holds as their schedules fire, for as long as the process runs: when the consumer
    /// cannot be reached (a NATS node failing over, the cluster still electing) or its message
    /// stream ends, it starts again after a short pause instead of giving up.
    ///
    /// # Errors
    /// None in practice; the signature matches the other long-running tasks.
    pub async fn run_expiry(self) -> anyhow::Result<()> {
        loop {
            if let Err(error) = self.follow_expiries().await {
                tracing::warn!(error = %format!("{error:#}"), "expiry consumer interrupted; starting again");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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
                    filter_subject: settings.wire_subject(domain::subjects::EXPIRY_FIRINGS),
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

    async fn handle_expiry(&self, due: &ExpiryDue) -> Result<Handled, CommandError> {
        let done = self.expire_order(due).await?;
        let remaining = due.expires_at - now();
        match done.state.orders.get(&due.order_id) {
            // The schedule fired a little before our clock says the hold lapses: come back then.
            Some(order) if order.is_open() && remaining.is_positive() => {
                return Ok(Handled::Later(
                    Duration::try_from(remaining).unwrap_or_default() + Duration::from_millis(20),
                ));
            }
            // The hold may still be being written (its schedule is written first): look again
            // shortly, for a while, before deciding it never happened.
            None if (now() - due.expires_at) < time::Duration::seconds(10) => {
                return Ok(Handled::Later(Duration::from_millis(500)));
            }
            _ => {}
        }
        self.release_slot(due.buyer, due.order_id).await;
        Ok(Handled::Done)
    }
}
