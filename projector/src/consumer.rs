//! Following the stream: leadership among replicas, positioning the durable consumer at the
//! checkpoint, and gaps in delivery. What a batch does to the read models is in [`crate::batch`].

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{FutureExt, StreamExt};

use crate::{CONSUMER, Incoming, Projector, ProjectorError, jetstream_error, schema};

/// The advisory lock the projecting replica holds.
const LEADER_LOCK: i64 = 0x7469_636b_6574_0002;

impl Projector {
    /// Projects forever: waits for leadership, then follows the stream; after losing the
    /// database connection it starts over from the checkpoint.
    ///
    /// # Errors
    /// Only when the read models cannot be created at all.
    pub async fn run(self) -> Result<(), ProjectorError> {
        schema::ensure_live(&self.pool).await?;
        loop {
            if let Err(error) = self.lead().await {
                tracing::warn!(%error, "projector interrupted; starting over from the checkpoint");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// Holds the leader lock on one connection and projects while it holds.
    async fn lead(&self) -> Result<(), ProjectorError> {
        // A connection of its own, outside the pool: if this projector dies, the connection dies
        // with it and PostgreSQL releases the lock for a standby.
        let mut leader = self.pool.acquire().await?.detach();
        loop {
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut leader).await?;
            if got {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::info!("projecting (leader)");
        self.stats.leading.store(true, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("ticketing_projector_leading").set(1.0);
        let result = self.follow().await;
        self.stats.leading.store(false, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("ticketing_projector_leading").set(0.0);
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LEADER_LOCK).execute(&mut leader).await;
        result
    }

    /// Follows the stream from the live generation's checkpoint until the generation changes.
    async fn follow(&self) -> Result<(), ProjectorError> {
        loop {
            let mut conn = self.pool.acquire().await?;
            let live = schema::live(&mut conn).await?;
            let from = crate::checkpoint(&mut conn, &live).await? + 1;
            drop(conn);
            // Where it stands now, for the watchdog (a projector that took over with nothing new
            // to project is caught up, not stuck at zero); the newest event's time is not known
            // yet, so its lag is counted from now.
            let previous = self.stats.position.swap(from - 1, std::sync::atomic::Ordering::Relaxed);
            if previous != from - 1 {
                let now =
                    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                self.stats.position_recorded_ms.store(now, std::sync::atomic::Ordering::Relaxed);
            }
            let consumer = self.position_consumer(from).await?;
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(self.batch_max.min(10_000))
                .messages()
                .await
                .map_err(jetstream_error)?;
            // The first delivery must be `from` itself: anything later is a gap too.
            let mut next = Some(from);
            'batches: loop {
                let Some(first) = messages.next().await else { break 'batches };
                let mut batch = vec![first.map_err(jetstream_error)?];
                while batch.len() < self.batch_max {
                    match messages.next().now_or_never() {
                        Some(Some(message)) => batch.push(message.map_err(jetstream_error)?),
                        _ => break,
                    }
                }
                // Stream positions are consecutive (nothing is ever deleted). A message past the
                // next position means some were lost in delivery (while a NATS node failed over,
                // say) and would come back only after the ack wait: applying past them would
                // skip them for good. Apply up to the gap, then reposition at checkpoint + 1.
                let positions = batch.iter().map(|m| m.info().map_or(0, |info| info.stream_sequence));
                let in_order = in_order_len(positions, &mut next);
                let gap = in_order < batch.len();
                batch.truncate(in_order);
                let incoming: Vec<Incoming> = batch.iter().filter_map(|m| self.incoming(m)).collect();
                if !incoming.is_empty() {
                    match self.commit(&live, &incoming).await? {
                        Some(_) => {
                            if let Some(last) = batch.last() {
                                last.ack().await.map_err(|e| jetstream_error(format!("ack: {e}")))?;
                            }
                        }
                        // Another generation went live: start over from its checkpoint.
                        None => break 'batches,
                    }
                }
                if gap {
                    tracing::warn!(expected = ?next, "a gap in delivery; repositioning at the checkpoint");
                    break 'batches;
                }
            }
        }
    }

    /// Creates (or recreates) the durable consumer so it delivers from `from` on.
    async fn position_consumer(&self, from: u64) -> Result<consumer::PullConsumer, ProjectorError> {
        let stream = self.js.get_stream(&self.settings.name).await.map_err(jetstream_error)?;
        let _ = stream.delete_consumer(CONSUMER).await;
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: from },
                ack_policy: consumer::AckPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: i64::try_from(self.batch_max * 4).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(jetstream_error)?;
        Ok(consumer)
    }

    fn incoming(&self, message: &jetstream::Message) -> Option<Incoming> {
        let info = message.info().ok()?;
        Some(Incoming {
            position: info.stream_sequence,
            subject: self.settings.domain_subject(&message.subject),
            recorded_at: info.published,
            payload: message.payload.clone(),
            traceparent: service_kit::telemetry::traceparent_of(message.headers.as_ref()),
        })
    }
}

/// How many of `positions` (as delivered) can be applied in order: up to the first one past the
/// next expected position. `next` carries the expected position between batches; it starts at
/// the position the consumer was created at (or, when `None`, the first message sets it).
/// Redeliveries of earlier positions are in order (the checkpoint skips them).
fn in_order_len(positions: impl IntoIterator<Item = u64>, next: &mut Option<u64>) -> usize {
    let mut count = 0;
    for position in positions {
        match *next {
            Some(expected) if position > expected => break,
            Some(expected) if position < expected => {}
            _ => *next = Some(position + 1),
        }
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::in_order_len;

    #[test]
    fn the_first_delivery_after_positioning_is_checked_too() {
        let mut next = Some(5);
        assert_eq!(in_order_len([6, 7], &mut next), 0, "5 never came");
        assert_eq!(next, Some(5));
    }

    #[test]
    fn delivery_is_applied_up_to_a_gap_and_redeliveries_pass() {
        let mut next = None;
        assert_eq!(in_order_len([5, 6, 7], &mut next), 3, "the first message sets the start");
        assert_eq!(next, Some(8));
        assert_eq!(in_order_len([6, 8, 9], &mut next), 3, "a redelivery of 6 passes, 8 follows 7");
        assert_eq!(next, Some(10));
        assert_eq!(in_order_len([10, 12, 13], &mut next), 1, "11 is missing: stop before 12");
        assert_eq!(next, Some(11));
        assert_eq!(in_order_len([], &mut next), 0);
    }
}
