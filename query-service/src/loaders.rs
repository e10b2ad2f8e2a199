//! Dataloaders: fields that fetch a related row (a ticket's seller, an order's ticket or
//! payment, a payment's order, a ticket's history) batch their keys into one `= ANY($1)` query per kind, so a list
//! never costs a query per item.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::dataloader::{DataLoader, Loader};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{
    AccountRow, EventHistoryRow, EventRow, HistoryRow, OrderItemRow, OrderRow, PaymentRow, SectionRow, TicketRow,
    TicketTypeRow,
};

/// The loaders of one request (or one WebSocket connection); nothing is cached.
pub type Loaders = DataLoader<ReadModels>;

/// Creates the loaders for a request.
pub fn loaders(pool: PgPool, metrics: Arc<crate::metrics::Metrics>) -> Loaders {
    DataLoader::new(ReadModels { pool, metrics }, tokio::spawn)
}

/// Batched reads of the read models.
pub struct ReadModels {
    pool: PgPool,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Key of an account.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(pub Uuid);
/// Key of a ticket.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketKey(pub Uuid);
/// Key of an order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderKey(pub Uuid);
/// Key of a payment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentKey(pub Uuid);
/// Key of a ticket's history.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryKey(pub Uuid);

impl ReadModels {
    async fn by_ids<R>(&self, select: &str, ids: Vec<Uuid>) -> Result<Vec<R>, String>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        crate::db::by_ids(&self.pool, select, &ids).await.map_err(|e| e.to_string())
    }
}

impl Loader<AccountKey> for ReadModels {
    type Value = AccountRow;
    type Error = String;

    async fn load(&self, keys: &[AccountKey]) -> Result<HashMap<AccountKey, AccountRow>, String> {
        let rows: Vec<AccountRow> =
            self.by_ids("SELECT id, email FROM read.accounts", keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (AccountKey(r.id), r)).collect())
    }
}

impl Loader<TicketKey> for ReadModels {
    type Value = TicketRow;
    type Error = String;

    async fn load(&self, keys: &[TicketKey]) -> Result<HashMap<TicketKey, TicketRow>, String> {
        let rows: Vec<TicketRow> = self.by_ids(crate::db::TICKET, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (TicketKey(r.id), r)).collect())
    }
}

impl Loader<OrderKey> for ReadModels {
    type Value = OrderRow;
    type Error = String;

    async fn load(&self, keys: &[OrderKey]) -> Result<HashMap<OrderKey, OrderRow>, String> {
        let rows: Vec<OrderRow> = self.by_ids(crate::db::ORDER, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (OrderKey(r.id), r)).collect())
    }
}

impl Loader<PaymentKey> for ReadModels {
    type Value = PaymentRow;
    type Error = String;

    async fn load(&self, keys: &[PaymentKey]) -> Result<HashMap<PaymentKey, PaymentRow>, String> {
        let rows: Vec<PaymentRow> = self.by_ids(crate::db::PAYMENT, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (PaymentKey(r.id), r)).collect())
    }
}

impl Loader<HistoryKey> for ReadModels {
    type Value = Vec<HistoryRow>;
    type Error = String;

    async fn load(&self, keys: &[HistoryKey]) -> Result<HashMap<HistoryKey, Vec<HistoryRow>>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::histories(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        let mut histories: HashMap<HistoryKey, Vec<HistoryRow>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            histories.entry(HistoryKey(row.ticket_id)).or_default().push(row);
        }
        Ok(histories)
    }
}

/// Key of an event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKey(pub Uuid);
/// Key of an event's ticket types.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketTypesKey(pub Uuid);
/// Key of one ticket type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketTypeKey(pub Uuid);
/// Key of an event's sections.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SectionsKey(pub Uuid);
/// Key of an order's items.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemsKey(pub Uuid);
/// Key of an event's history.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventHistoryKey(pub Uuid);

/// Groups rows by a key of theirs, every asked key present (empty when it has no rows).
fn grouped<K: Copy + Eq + std::hash::Hash, R>(keys: &[K], rows: Vec<R>, key: impl Fn(&R) -> K) -> HashMap<K, Vec<R>> {
    let mut out: HashMap<K, Vec<R>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in rows {
        out.entry(key(&row)).or_default().push(row);
    }
    out
}

impl Loader<EventKey> for ReadModels {
    type Value = EventRow;
    type Error = String;

    async fn load(&self, keys: &[EventKey]) -> Result<HashMap<EventKey, EventRow>, String> {
        let rows: Vec<EventRow> = self.by_ids(crate::db::EVENT, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (EventKey(r.id), r)).collect())
    }
}

impl Loader<TicketTypesKey> for ReadModels {
    type Value = Vec<TicketTypeRow>;
    type Error = String;

    async fn load(&self, keys: &[TicketTypesKey]) -> Result<HashMap<TicketTypesKey, Vec<TicketTypeRow>>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::ticket_types_of(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        Ok(grouped(keys, rows, |r| TicketTypesKey(r.event_id)))
    }
}

impl Loader<TicketTypeKey> for ReadModels {
    type Value = TicketTypeRow;
    type Error = String;

    async fn load(&self, keys: &[TicketTypeKey]) -> Result<HashMap<TicketTypeKey, TicketTypeRow>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::ticket_types(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|r| (TicketTypeKey(r.id), r)).collect())
    }
}

impl Loader<SectionsKey> for ReadModels {
    type Value = Vec<SectionRow>;
    type Error = String;

    async fn load(&self, keys: &[SectionsKey]) -> Result<HashMap<SectionsKey, Vec<SectionRow>>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::sections_of(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        Ok(grouped(keys, rows, |r| SectionsKey(r.event_id)))
    }
}

impl Loader<ItemsKey> for ReadModels {
    type Value = Vec<OrderItemRow>;
    type Error = String;

    async fn load(&self, keys: &[ItemsKey]) -> Result<HashMap<ItemsKey, Vec<OrderItemRow>>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::items_of(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        Ok(grouped(keys, rows, |r| ItemsKey(r.order_id)))
    }
}

impl Loader<EventHistoryKey> for ReadModels {
    type Value = Vec<EventHistoryRow>;
    type Error = String;

    async fn load(&self, keys: &[EventHistoryKey]) -> Result<HashMap<EventHistoryKey, Vec<EventHistoryRow>>, String> {
        self.metrics.loader_queries.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = crate::db::event_histories(&self.pool, &ids).await.map_err(|e| e.to_string())?;
        Ok(grouped(keys, rows, |r| EventHistoryKey(r.event_id)))
    }
}
