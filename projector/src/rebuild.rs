//! Rebuilding the read models from the stream, without downtime.
//!
//! 1. A new generation schema is created and migrated beside the live one.
//! 2. The whole stream is replayed into it in batches (the live projector goes on meanwhile).
//! 3. The switch, in one transaction: lock the generation row (live batches wait), apply what
//!    arrived since the replay caught up, make the new generation live and point the `read` views
//!    at it. Readers see the old models until the commit and the new ones after it.
//! 4. The old generation is dropped; the live projector notices the switch at its next batch and
//!    continues from the new generation's checkpoint.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use event_store::StreamSettings;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Incoming, ProjectorError, apply_batch, jetstream_error, schema};

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The new live generation.
    pub schema: String,
    /// Events replayed.
    pub events: u64,
    /// How long the replay took (before the switch).
    pub replay: Duration,
}

impl Report {
    /// Replay throughput.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.replay.as_secs_f64().max(1e-9)
    }
}

/// Replays the stream into a fresh generation and switches readers to it.
///
/// `progress` shows a progress bar with events/s and ETA on a terminal.
///
/// # Errors
/// NATS or database errors; the live generation is untouched unless the switch committed.
pub async fn rebuild(
    pool: &PgPool,
    client: async_nats::Client,
    settings: &StreamSettings,
    batch_max: usize,
    progress: bool,
) -> Result<Report, ProjectorError> {
    schema::ensure_live(pool).await?;
    let target = schema::create_next(pool).await?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&settings.name).await.map_err(jetstream_error)?;
    let head = stream.info().await.map_err(jetstream_error)?.state.last_sequence;
    let bar = if progress {
        ProgressBar::with_draw_target(Some(head), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} rebuilding {wide_bar} {pos}/{len} events · {per_sec} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // A consumer left by an earlier rebuild would resume where it stopped: start afresh.
    let _ = stream.delete_consumer("projector-rebuild").await;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            // A name its NATS user may use (`event_store::auth::PROJECTOR_CONSUMERS`).
            name: Some("projector-rebuild".to_owned()),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(jetstream_error)?;
    let mut messages =
        consumer.stream().max_messages_per_batch(batch_max.min(10_000)).messages().await.map_err(jetstream_error)?;
    // A reader task keeps fetching while batches are written, so NATS and PostgreSQL work at once.
    let (sender, mut received) = tokio::sync::mpsc::channel::<Result<Incoming, ProjectorError>>(batch_max.max(1) * 4);
    let reader_settings = settings.clone();
    let reader = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let incoming = message.map_err(jetstream_error).and_then(|m| incoming(&reader_settings, &m));
            if sender.send(incoming).await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut position = 0;
    let mut events = 0u64;
    let mut next_batch = async |limit: u64| -> Result<Vec<Incoming>, ProjectorError> {
        let mut batch = Vec::new();
        if limit == 0 {
            return Ok(batch);
        }
        let Some(first) = received.recv().await else { return Err(ProjectorError::ReplayEnded) };
        batch.push(first?);
        while batch.len() < batch_max && batch.last().is_some_and(|m| m.position < limit) {
            match received.try_recv() {
                Ok(message) => batch.push(message?),
                Err(_) => break,
            }
        }
        Ok(batch)
    };

    // Replay up to the head seen at the start.
    while position < head {
        let batch = next_batch(head).await?;
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // Nobody reads this generation yet: its commits must not move read-your-writes.
        let committed = apply_batch(&mut tx, &target, &batch, false).await?;
        tx.commit().await?;
        events += u64::try_from(batch.len()).unwrap_or(0);
        position = committed.position;
        bar.set_position(position.min(head));
    }
    let replay = started.elapsed();
    bar.finish_and_clear();

    // Switch: live batches wait on the generation row while the rest is applied.
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let old: String =
        sqlx::query_scalar("SELECT active FROM public.projection_generation FOR UPDATE").fetch_one(&mut *tx).await?;
    let head_now = stream.info().await.map_err(jetstream_error)?.state.last_sequence;
    let caught_up = position >= head_now;
    while position < head_now {
        let batch = next_batch(head_now).await?;
        events += u64::try_from(batch.len()).unwrap_or(0);
        // Announced: the notification is delivered when the switch commits, as this generation
        // becomes what readers see.
        position = apply_batch(&mut tx, &target, &batch, true).await?.position;
    }
    if caught_up {
        // Nothing left to apply: still tell the gateways where readers stand after the switch.
        crate::batch::notify(&mut tx, i64::try_from(position).unwrap_or(i64::MAX), &crate::models::Changes::default())
            .await?;
    }
    switch(&mut tx, &target).await?;
    tx.commit().await?;
    reader.abort();
    schema::drop_generation(pool, &old).await?;
    tracing::info!(schema = %target, events, "rebuild switched readers to the new generation");
    Ok(Report { schema: target, events, replay })
}

async fn switch(tx: &mut PgConnection, target: &str) -> Result<(), ProjectorError> {
    schema::switch(tx, target).await
}

fn incoming(settings: &StreamSettings, message: &jetstream::Message) -> Result<Incoming, ProjectorError> {
    let info = message.info().map_err(|e| jetstream_error(format!("message info: {e}")))?;
    Ok(Incoming {
        position: info.stream_sequence,
        subject: settings.domain_subject(&message.subject),
        recorded_at: info.published,
        payload: message.payload.clone(),
        traceparent: service_kit::telemetry::traceparent_of(message.headers.as_ref()),
    })
}
