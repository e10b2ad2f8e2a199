//! Subscriptions: pushed after every projector commit that touches what is watched.

use async_graphql::{Context, ID, Subscription as SubscriptionRoot};
use futures::{Stream, StreamExt};

use super::*;
use crate::AppState;
use crate::db;

/// Subscriptions to tickets and orders: pushed after every projector commit that touches what
/// you watch.
#[derive(Default)]
pub struct TicketSubscription;

/// Follows the projector's commits, yielding the rows `pick` chooses from each.
fn follow<T, F, Fut>(state: &AppState, pick: F) -> impl Stream<Item = T> + use<T, F, Fut>
where
    T: Send + 'static,
    F: Fn(AppState, std::sync::Arc<crate::Changed>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<T>> + Send,
{
    let receiver = state.changes.subscribe();
    // The position this subscriber has seen up to: where a re-read after a gap starts.
    let seen = *state.projected.borrow();
    let watching = crate::metrics::Watching::new(&state.metrics);
    let start = (receiver, state.clone(), pick, seen, false, watching);
    futures::stream::unfold(start, |(mut receiver, state, pick, seen, mut behind, watching)| async move {
        loop {
            let changed = match receiver.recv().await {
                // Nothing missed: the commit as notified.
                Ok(changed) if !changed.resync && !behind => changed,
                // A subscriber that skipped commits (or a listener that reconnected) may have
                // missed the last change of what it watches: re-read what changed since.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    match crate::db::changed_since(&state.pool, seen).await {
                        Ok(changed) => {
                            behind = false;
                            std::sync::Arc::new(changed)
                        }
                        Err(error) => {
                            // Still behind: try again at the next commit.
                            tracing::warn!(%error, "could not re-read after missed notifications");
                            behind = true;
                            continue;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            let seen = seen.max(changed.position);
            let items = pick(state.clone(), changed).await;
            return Some((futures::stream::iter(items), (receiver, state, pick, seen, behind, watching)));
        }
    })
    .flatten()
}

#[SubscriptionRoot]
impl TicketSubscription {
    /// The ticket after every change; every ticket when `id` is null.
    async fn ticket_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Ticket>> {
        let wanted = id.map(|id| parse_id(&id, "id")).transpose()?;
        Ok(follow(state(ctx)?, move |state, changed| async move {
            // After missed notifications one watched ticket is read as it is now, whatever the
            // (bounded) list of changes says.
            if changed.resync
                && let Some(id) = wanted
            {
                return db::ticket(&state.pool, id)
                    .await
                    .ok()
                    .flatten()
                    .map(|row| Ticket { row })
                    .into_iter()
                    .collect();
            }
            let mut tickets = Vec::new();
            for ticket in changed.tickets.iter().filter(|t| wanted.is_none_or(|w| w == **t)) {
                if let Ok(Some(row)) = changed.ticket(&state.pool, *ticket).await {
                    tickets.push(Ticket { row });
                }
            }
            tickets
        }))
    }

    /// The order after every change: for its buyer and admins only.
    async fn order_changed(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<impl Stream<Item = Order>> {
        let me = signed_in(ctx)?;
        let order = parse_id(&id, "id")?;
        let row = db::order(&state(ctx)?.pool, order).await.map_err(internal)?;
        match row {
            None => return Err(ApiError::NotFound("order not found").into()),
            Some(row) if !access_of(&row)?.may_read(&me.actor()) => {
                return Err(ApiError::Forbidden("only the buyer or an admin may follow this order").into());
            }
            Some(_) => {}
        }
        Ok(follow(state(ctx)?, move |state, changed| async move {
            if changed.resync {
                return db::order(&state.pool, order)
                    .await
                    .ok()
                    .flatten()
                    .map(|row| Order { row })
                    .into_iter()
                    .collect();
            }
            if !changed.orders.contains(&order) {
                return vec![];
            }
            changed.order(&state.pool, order).await.ok().flatten().map(|row| Order { row }).into_iter().collect()
        }))
    }
}
