//! Watches the leading projector against the stream's head: its lag as metrics
//! (`ticketing_projector_lag_events`, `ticketing_projector_lag_seconds`), and whether it is wedged
//! (behind the stream and no commit for [`WEDGED_AFTER`]), which fails its `/healthz` so that
//! the orchestrator restarts it. A standby, or a projector that is caught up, is never wedged.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::Projector;

/// How long a leading projector may be behind the stream without committing before it counts as
/// wedged. Longer than any batch takes (a batch of 1,000 events commits in well under a second;
/// a slow database may take several).
pub const WEDGED_AFTER: Duration = Duration::from_secs(60);
/// How often the stream's head is read.
pub const EVERY: Duration = Duration::from_secs(5);

impl Projector {
    /// Runs the watchdog until the process ends.
    pub async fn watch(self) {
        let mut watch = service_kit::Stall::new(WEDGED_AFTER);
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::time::sleep(EVERY).await;
            }
            let head = match self.js.get_stream(&self.settings.name).await {
                Ok(mut stream) => match stream.info().await {
                    Ok(info) => info.state.last_sequence,
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            let stats = &self.stats;
            let leading = stats.leading.load(Ordering::Relaxed);
            metrics::gauge!("ticketing_projector_leading").set(if leading { 1.0 } else { 0.0 });
            if !leading {
                // A standby projects nothing and reports no lag. What the watch saw is kept: a
                // leader that keeps failing and taking the lock again at the same position is
                // still seen standing still.
                stats.wedged.store(false, Ordering::Relaxed);
                metrics::gauge!("ticketing_projector_lag_events").set(0.0);
                metrics::gauge!("ticketing_projector_lag_seconds").set(0.0);
                continue;
            }
            let position = stats.position.load(Ordering::Relaxed);
            let wedged = watch.stalled(head, position, Instant::now());
            stats.wedged.store(wedged, Ordering::Relaxed);
            if wedged {
                tracing::error!(head, position, "projector wedged: behind the stream with no commit for a minute");
            }
            let behind = head.saturating_sub(position);
            // The age of the newest projected event while behind: how stale the read models are.
            let lag_seconds = if behind == 0 {
                0.0
            } else {
                let recorded = stats.position_recorded_ms.load(Ordering::Relaxed);
                let now_ms =
                    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                Duration::from_millis(now_ms.saturating_sub(recorded)).as_secs_f64()
            };
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("ticketing_projector_lag_events").set(behind as f64);
            metrics::gauge!("ticketing_projector_lag_seconds").set(lag_seconds);
        }
    }
}
