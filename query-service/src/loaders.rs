//! Dataloaders: fields that fetch a related row (a ticket's seller, an order's ticket or
//! payment, a payment's order) batch their keys into one `= ANY($1)` query per kind, so a list
//! never costs a query per item.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{AccountRow, OrderRow, PaymentRow, TicketRow};

/// The loaders of one request (or one WebSocket connection); nothing is cached.
pub type Loaders = DataLoader<ReadModels>;

/// Creates the loaders for a request.
pub fn loaders(pool: PgPool) -> Loaders {
    DataLoader::new(ReadModels { pool }, tokio::spawn)
}

/// Batched reads of the read models.
pub struct ReadModels {
    pool: PgPool,
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

async fn by_ids<R>(pool: &PgPool, select: &str, ids: Vec<Uuid>) -> Result<Vec<R>, String>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(&format!("{select} WHERE id = ANY($1)")).bind(ids).fetch_all(pool).await.map_err(|e| e.to_string())
}

impl Loader<AccountKey> for ReadModels {
    type Value = AccountRow;
    type Error = String;

    async fn load(&self, keys: &[AccountKey]) -> Result<HashMap<AccountKey, AccountRow>, String> {
        let rows: Vec<AccountRow> =
            by_ids(&self.pool, "SELECT id, email FROM read.accounts", keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (AccountKey(r.id), r)).collect())
    }
}

impl Loader<TicketKey> for ReadModels {
    type Value = TicketRow;
    type Error = String;

    async fn load(&self, keys: &[TicketKey]) -> Result<HashMap<TicketKey, TicketRow>, String> {
        let rows: Vec<TicketRow> = by_ids(&self.pool, crate::db::TICKET, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (TicketKey(r.id), r)).collect())
    }
}

impl Loader<OrderKey> for ReadModels {
    type Value = OrderRow;
    type Error = String;

    async fn load(&self, keys: &[OrderKey]) -> Result<HashMap<OrderKey, OrderRow>, String> {
        let rows: Vec<OrderRow> = by_ids(&self.pool, crate::db::ORDER, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (OrderKey(r.id), r)).collect())
    }
}

impl Loader<PaymentKey> for ReadModels {
    type Value = PaymentRow;
    type Error = String;

    async fn load(&self, keys: &[PaymentKey]) -> Result<HashMap<PaymentKey, PaymentRow>, String> {
        let rows: Vec<PaymentRow> = by_ids(&self.pool, crate::db::PAYMENT, keys.iter().map(|k| k.0).collect()).await?;
        Ok(rows.into_iter().map(|r| (PaymentKey(r.id), r)).collect())
    }
}
