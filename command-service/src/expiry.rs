//! Hold expiry, in two durable consumers shared by every replica:
//!
//! - the *scheduler* follows the account, order and payment subjects of the event stream: for
//!   every `HoldSlotClaimed` and every `OrderPlaced` it writes a JetStream message schedule at
//!   the `expires_at` they carry (or fires at once when that time has passed; both write the
//!   same schedule subject, so a hold has one live schedule), and for every `PaymentStarted` a
//!   reconciliation schedule. Arming from stored events means every slot and every hold gets its
//!   expiry even when the process that wrote it dies right after, and costs no write on the
//!   request path;
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
use crate::paying::ReconcileDue;
use crate::{CommandError, Service, now};

/// The durable consumer's name.
const CONSUMER: &str = "command-service-expiry";

/// The scheduler's durable consumer (on the event stream).
const SCHEDULER: &str = "command-service-timers";

/// The durable consumer of reconciliation firings.
const RECONCILER: &str = "command-service-reconcile";

/// How long after a slot's time its firing waits for a hold that is still being written before it
/// gives the slot back as never used. Longer than an append takes, its retries included; a hold
/// that still lands later has its own expiry, armed from its `OrderPlaced`.
const NEVER_PLACED_AFTER: time::Duration = time::Duration::seconds(60);

/// How long one pull request waits on the server. Short: a pull lost while a NATS node fails over
/// is replaced within this long, instead of stalling expiries for the client's default 30 s.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How often the server shows an idle pull is alive; a missed one makes the client pull again.
const PULL_HEARTBEAT: Duration = Duration::from_millis(500);

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

/// Runs one consumer for ever: when it fails (a NATS node failing over, the cluster still
/// electing) or its messages end, it starts again after a short pause.
async fn restarting<F, Fut>(what: &str, run: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    loop {
        if let Err(error) = run().await {
            tracing::warn!(error = %format!("{error:#}"), "{what} interrupted; starting again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The kinds of timer firings, each with its durable consumer.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// A hold's expiry.
    Expiry,
    /// A payment's reconciliation.
    Reconcile,
}

impl Timer {
    /// Its name in metrics.
    const fn label(self) -> &'static str {
        match self {
            Self::Expiry => "expiry",
            Self::Reconcile => "reconcile",
        }
    }
}

/// The id a timer's firing subject names after its kind: the show's, or the ticket's.
fn firing_token(show: Option<domain::ShowId>, ticket: Option<domain::TicketId>) -> Option<uuid::Uuid> {
    show.map(|s| *s.as_uuid()).or_else(|| ticket.map(|t| *t.as_uuid()))
}

/// What to do with a firing.
pub(crate) enum Handled {
    /// Handled: acknowledge it.
    Done,
    /// Not yet: deliver it again after this long.
    Later(Duration),
}

impl Service {
    /// Runs hold expiry and payment reconciliation for as long as the process runs: the
    /// scheduler, which arms an expiry for every claimed hold slot and a reconciliation for every
    /// started payment, and the consumers of their firings. When a consumer cannot be
    /// reached (a NATS node failing over, the cluster still electing) or its message stream ends,
    /// it starts again after a short pause instead of giving up.
    ///
    /// # Errors
    /// None in practice; the signature matches the other long-running tasks.
    pub async fn run_expiry(self) -> anyhow::Result<()> {
        let scheduling = restarting("expiry scheduler", || self.follow_claims());
        let expiring = restarting("expiry consumer", || self.follow_firings(Timer::Expiry));
        let reconciling = restarting("reconciliation consumer", || self.follow_firings(Timer::Reconcile));
        futures::future::join3(scheduling, expiring, reconciling).await;
        Ok(())
    }

    /// Arms an expiry for every `HoldSlotClaimed` and a reconciliation for every `PaymentStarted`,
    /// until the consumer fails.
    async fn follow_claims(&self) -> anyhow::Result<()> {
        let settings = self.store().settings();
        let js = jetstream::new(self.store().client().clone());
        let stream = js.get_stream(&settings.name).await?;
        // Created, or updated to today's filters (a newer version follows more subjects).
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(SCHEDULER.to_owned()),
                filter_subjects: vec![
                    settings.wire_subject(subjects::ACCOUNTS),
                    settings.wire_subject(subjects::ORDERS),
                    settings.wire_subject(subjects::PAYMENTS),
                    settings.wire_subject(subjects::SHOW_STOCKS),
                    settings.wire_subject(subjects::SHOW_ORDERS),
                ],
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT * 5,
                max_ack_pending: 10_000,
                ..Default::default()
            })
            .await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(256)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await?;
        messages
            .for_each_concurrent(256, |message| {
                let service = self.clone();
                async move {
                    let Ok(message) = message else { return };
                    let sequence = message.info().map_or(0, |info| info.stream_sequence);
                    let ack = match EventEnvelope::decode(&message.payload) {
                        Ok(Event::HoldSlotClaimed {
                            account_id: buyer,
                            order_id,
                            ticket_id,
                            show_id,
                            expires_at,
                            ..
                        }) => {
                            let due = ExpiryDue { ticket_id, show_id, order_id, buyer, expires_at };
                            service.arm_expiries_or_retry(&[due], sequence).await
                        }
                        Ok(Event::OrderPlaced { buyer, order_id, ticket_id, expires_at, .. }) => {
                            let due =
                                ExpiryDue { ticket_id: Some(ticket_id), show_id: None, order_id, buyer, expires_at };
                            service.arm_expiries_or_retry(&[due], sequence).await
                        }
                        Ok(Event::ShowOrdersPlaced { show_id, orders, .. }) => {
                            let dues: Vec<ExpiryDue> = orders
                                .iter()
                                .map(|o| ExpiryDue {
                                    ticket_id: None,
                                    show_id: Some(show_id),
                                    order_id: o.order_id,
                                    buyer: o.buyer,
                                    expires_at: o.expires_at,
                                })
                                .collect();
                            service.arm_expiries_or_retry(&dues, sequence).await
                        }
                        Ok(Event::PaymentStarted { payment_id, order_id, ticket_id, at, .. }) => {
                            let due = ReconcileDue {
                                ticket_id: Some(ticket_id),
                                show_id: None,
                                order_id: Some(order_id),
                                payment_id,
                            };
                            let when = at + service.reconcile_after();
                            service.arm_reconcile_or_retry(&due, when, sequence).await
                        }
                        Ok(Event::ShowPaymentStarted { payment_id, order_id, show_id, at, .. }) => {
                            let due = ReconcileDue {
                                ticket_id: None,
                                show_id: Some(show_id),
                                order_id: Some(order_id),
                                payment_id,
                            };
                            let when = at + service.reconcile_after();
                            service.arm_reconcile_or_retry(&due, when, sequence).await
                        }
                        // Money to give back: if the refund right after it fails, this retries it.
                        Ok(Event::LatePaymentReceived { payment_id, order_id, at, .. }) => {
                            let subject = service.store().settings().domain_subject(&message.subject);
                            let due = ReconcileDue {
                                ticket_id: subjects::ticket_of(&subject),
                                show_id: subjects::show_of(&subject),
                                order_id: Some(order_id),
                                payment_id,
                            };
                            if due.till().is_some() {
                                let when = at + service.reconcile_after().min(time::Duration::seconds(5));
                                service.arm_reconcile_or_retry(&due, when, sequence).await
                            } else {
                                // Stored where no order's event can be: nothing to refund from.
                                tracing::error!(%subject, %payment_id, "late money outside an order; not refunded");
                                AckKind::Ack
                            }
                        }
                        Ok(_) => AckKind::Ack,
                        // Perhaps written by a newer version during a rolling upgrade: leave it
                        // for a replica that can read it, never drop what may arm an expiry.
                        Err(error) => {
                            tracing::error!(%error, sequence, "unreadable event left for another replica");
                            AckKind::Nak(Some(Duration::from_secs(30)))
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

    /// Writes the expiry schedule of one claimed slot or placed hold (replacing an older one for
    /// the same order; a time already come fires at once). Repeats are deduplicated by the
    /// position of the event that armed it.
    async fn arm_expiry(&self, due: &ExpiryDue, armed_by: u64) -> Result<(), CommandError> {
        let schedule = subjects::expiry_schedule(due.order_id);
        let home = firing_token(due.show_id, due.ticket_id)
            .ok_or_else(|| CommandError::Internal("an expiry for neither a ticket nor a show".into()))?;
        let firing = subjects::expiry_firing(domain::TicketId(home), due.order_id);
        self.arm(&schedule, &firing, due.expires_at, due, &format!("expiry-{}-{armed_by}", due.order_id)).await
    }

    /// Arms the expiries an event asks for (a group's orders at once), answering how to
    /// acknowledge it.
    async fn arm_expiries_or_retry(&self, dues: &[ExpiryDue], armed_by: u64) -> AckKind {
        let armed = futures::future::join_all(dues.iter().map(|due| self.arm_expiry(due, armed_by))).await;
        match armed.into_iter().find_map(Result::err) {
            None => AckKind::Ack,
            Some(error) => {
                tracing::warn!(%error, "could not arm an expiry; retrying");
                AckKind::Nak(Some(Duration::from_millis(200)))
            }
        }
    }

    /// Arms a reconciliation, answering how to acknowledge the event that asked for it.
    async fn arm_reconcile_or_retry(&self, due: &ReconcileDue, when: domain::Timestamp, armed_by: u64) -> AckKind {
        let schedule = subjects::reconcile_schedule(due.payment_id);
        let home = firing_token(due.show_id, due.ticket_id).unwrap_or_else(uuid::Uuid::nil);
        let firing = subjects::reconcile_firing(domain::TicketId(home), due.payment_id);
        let msg_id = format!("reconcile-{}-{armed_by}", due.payment_id);
        match self.arm(&schedule, &firing, when, due, &msg_id).await {
            Ok(()) => AckKind::Ack,
            Err(error) => {
                tracing::warn!(payment = %due.payment_id, %error, "could not arm a reconciliation; retrying");
                AckKind::Nak(Some(Duration::from_millis(200)))
            }
        }
    }

    /// Writes one timer: `due` fires on `firing` at `when`.
    async fn arm(
        &self,
        schedule: &str,
        firing: &str,
        when: domain::Timestamp,
        due: &impl serde::Serialize,
        msg_id: &str,
    ) -> Result<(), CommandError> {
        let payload = serde_json::to_vec(due).map_err(|e| CommandError::Internal(e.to_string()))?;
        self.store().schedule(schedule, firing, when, payload.into(), msg_id).await?;
        Ok(())
    }

    /// Handles the firings of one kind of timer as they come, until the consumer fails.
    async fn follow_firings(&self, timer: Timer) -> anyhow::Result<()> {
        let (name, filter) = match timer {
            Timer::Expiry => (CONSUMER, subjects::EXPIRY_FIRINGS),
            Timer::Reconcile => (RECONCILER, subjects::RECONCILE_FIRINGS),
        };
        let settings = self.store().settings();
        let js = jetstream::new(self.store().client().clone());
        let stream = js.get_stream(settings.timers_name()).await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    filter_subject: settings.wire_subject(filter),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // Short: a firing taken by a replica that is then killed goes to another one
                    // within a second. A live handler keeps its firing with progress acks.
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        // The firings due and not yet handled (delivered or waiting, a retried one included), for
        // the backlog alerts; watched while this consumer runs.
        let _backlog = {
            let (consumer, timer) = (consumer.clone(), timer.label());
            Watch(tokio::spawn(async move {
                loop {
                    if let Ok(info) = consumer.get_info().await {
                        let backlog = info.num_pending.saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(0));
                        #[allow(clippy::cast_precision_loss)]
                        metrics::gauge!("ticketing_timer_backlog", "timer" => timer).set(backlog as f64);
                    }
                    tokio::time::sleep(Duration::from_secs(15)).await;
                }
            }))
        };
        // No more in hand than are handled at once: a firing waiting in a buffer gets no progress
        // acknowledgement and would go to another replica after `ACK_WAIT`.
        let messages = consumer
            .stream()
            .max_messages_per_batch(64)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await?;
        messages
            .for_each_concurrent(64, |message| {
                let service = self.clone();
                async move {
                    let Ok(message) = message else { return };
                    let handled = match timer {
                        Timer::Expiry => match serde_json::from_slice::<ExpiryDue>(&message.payload) {
                            Ok(due) => Ok(keep_in_progress(&message, service.handle_expiry(&due)).await),
                            Err(error) => Err(error),
                        },
                        Timer::Reconcile => match serde_json::from_slice::<ReconcileDue>(&message.payload) {
                            Ok(due) => Ok(keep_in_progress(&message, service.handle_reconcile(&due)).await),
                            Err(error) => Err(error),
                        },
                    };
                    let ack = match handled {
                        Ok(handled) => match handled {
                            Ok(Handled::Done) => AckKind::Ack,
                            Ok(Handled::Later(delay)) => AckKind::Nak(Some(delay)),
                            Err(error) => {
                                // Longer each time (a provider that keeps failing is not hammered),
                                // up to a bound: an expiry must not wait long, a provider may.
                                let cap = match timer {
                                    Timer::Expiry => Duration::from_secs(2),
                                    Timer::Reconcile => Duration::from_secs(60),
                                };
                                let delivered = message.info().map_or(1, |info| info.delivered).clamp(1, 8);
                                let delay = Duration::from_millis(500 << (delivered - 1)).min(cap);
                                tracing::warn!(subject = %message.subject, %error, ?delay, "timer handling failed; retrying");
                                AckKind::Nak(Some(delay))
                            }
                        },
                        Err(error) => {
                            tracing::error!(%error, subject = %message.subject, "unreadable timer firing dropped");
                            AckKind::Term
                        }
                    };
                    if let Err(error) = message.ack_with(ack).await {
                        tracing::warn!(%error, "could not acknowledge a timer firing");
                    }
                }
            })
            .await;
        anyhow::bail!("the {name} consumer stopped")
    }

    /// One firing: the order decides by its own `expires_at`, and the slot goes back only when the
    /// hold is closed (expired now, paid, cancelled) or was never placed.
    async fn handle_expiry(&self, due: &ExpiryDue) -> Result<Handled, CommandError> {
        // How late the hold's timer fired (an early firing comes back and is counted then).
        let late = now() - due.expires_at;
        if late >= time::Duration::ZERO {
            metrics::histogram!("ticketing_expiry_lateness_seconds").record(late.as_seconds_f64());
        }
        // The order after `Expire`: `Some(Some(expires_at))` while still open, `Some(None)` once
        // closed, `None` when there is no such order.
        let after = match (due.show_id, due.ticket_id) {
            (Some(show), _) => self
                .expire_event_order(show, due.order_id)
                .await?
                .map(|order| order.is_open().then_some(order.placed.expires_at)),
            (None, Some(ticket)) => {
                let done = self.expire_order(ticket, due).await?;
                done.state.orders.get(&due.order_id).map(|order| order.is_open().then_some(order.expires_at))
            }
            (None, None) => return Ok(Handled::Done),
        };
        match after {
            // Still open after `Expire`: by the order's own time it is not due yet (the schedule
            // fired a little early). Come back then.
            Some(Some(expires_at)) => {
                let remaining = expires_at - now();
                return Ok(Handled::Later(
                    Duration::try_from(remaining).unwrap_or_default() + Duration::from_millis(20),
                ));
            }
            // No hold (yet). Should one land later after all, its own `OrderPlaced` arms its
            // expiry, so here only the slot is at stake.
            None => {
                let slots = self.inner.store.load::<domain::Account>(&subjects::account(due.buyer)).await?;
                if !slots.state.hold_slots.contains_key(&due.order_id) {
                    // Given back already (a lost race): nothing left to do.
                    return Ok(Handled::Done);
                }
                // It may still be being written (its slot is claimed first): look again shortly,
                // for a while, before deciding it never happened.
                if (now() - due.expires_at) < NEVER_PLACED_AFTER {
                    return Ok(Handled::Later(Duration::from_millis(500)));
                }
            }
            Some(None) => {}
        }
        self.give_slot_back(due.buyer, due.order_id).await?;
        Ok(Handled::Done)
    }
}

/// A task that is stopped when this is dropped.
struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}
