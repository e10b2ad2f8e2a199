//! Reads from the read models (the views in schema `read`, maintained by the projector).

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A ticket as the gateway reads it from `read.tickets`: what `Ticket` answers, and the
/// facts the domain's rules about it need (seller, status).
#[derive(Debug, Clone, FromRow)]
pub struct TicketRow {
    /// The ticket's id, as the API shows it.
    pub id: Uuid,
    /// Who sells it: `seller`, and who may edit it.
    pub seller_id: Uuid,
    /// The title as listed or last edited.
    pub title: String,
    /// The current price in cents.
    pub price_cents: i64,
    /// The ISO 4217 code (`USD`).
    pub currency: String,
    /// The domain's `TicketStatus` in its serde form (`AVAILABLE`, …).
    pub status: String,
    /// How many events of its listing were applied: clients keep the highest.
    pub version: i32,
    /// When it was listed.
    pub created_at: OffsetDateTime,
    /// When anything in its listing last happened.
    pub updated_at: OffsetDateTime,
    /// The stream position of its listing: the cursor of newest-first pages.
    pub created_position: i64,
}

/// An order as the gateway reads it from `read.orders`: what `Order` answers, and the facts
/// the domain's rules about it need (buyer, status, expiry).
#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    /// The order's id, as the API shows it.
    pub id: Uuid,
    /// The ticket it holds or bought.
    pub ticket_id: Uuid,
    /// Who placed it: who may read, cancel and pay it.
    pub buyer_id: Uuid,
    /// The domain's `OrderStatus` in its serde form (`CREATED`, …).
    pub status: String,
    /// The domain's `CancelReason` in its serde form, once cancelled.
    pub cancel_reason: Option<String>,
    /// When the hold lapses unless paid.
    pub expires_at: OffsetDateTime,
    /// The latest payment attempt, shown as `payment`.
    pub payment_id: Option<Uuid>,
    /// How many events about it were applied: clients keep the highest.
    pub version: i32,
    /// When it was placed.
    pub created_at: OffsetDateTime,
    /// The stream position of its placement: the cursor of newest-first pages.
    pub created_position: i64,
}

/// A payment attempt as the gateway reads it from `read.payments`.
#[derive(Debug, Clone, FromRow)]
pub struct PaymentRow {
    /// The payment's id, as the API shows it.
    pub id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// What is charged, in cents.
    pub amount_cents: i64,
    /// The ISO 4217 code (`USD`).
    pub currency: String,
    /// The domain's `PaymentStatus` in its serde form (`PENDING`, …).
    pub status: String,
    /// The provider's reference, once it answered.
    pub provider_ref: Option<String>,
    /// When the attempt started.
    pub created_at: OffsetDateTime,
}

/// The public part of an account, from `read.accounts`.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    /// The account's id.
    pub id: Uuid,
    /// Its address: shown to the account itself and to admins only.
    pub email: String,
}

/// One line of a ticket's history, from `read.ticket_history`.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    /// The ticket whose listing the event belongs to.
    pub ticket_id: Uuid,
    /// The event's stable type name (`OrderPlaced`, …).
    pub event_type: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The ticket's version after it.
    pub version: i32,
}

/// Every column of a ticket row.
pub const TICKET: &str = "SELECT id, seller_id, title, price_cents, currency, status, version, created_at, updated_at, created_position FROM read.tickets";
/// Every column of an order row.
pub const ORDER: &str = "SELECT id, ticket_id, buyer_id, status, cancel_reason, expires_at, payment_id, version, created_at, created_position FROM read.orders";

/// Every column of a payment row.
pub const PAYMENT: &str =
    "SELECT id, order_id, amount_cents, currency, status, provider_ref, created_at FROM read.payments";

/// The rows `select` (one of [`TICKET`], [`ORDER`], …) gives for these ids, in one query, in no
/// particular order; ids without a row are left out.
///
/// # Errors
/// A database error.
pub async fn by_ids<R>(pool: &PgPool, select: &str, ids: &[Uuid]) -> sqlx::Result<Vec<R>>
where
    R: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(&format!("{select} WHERE id = ANY($1)")).bind(ids).fetch_all(pool).await
}

/// The tickets of `ids` that exist, by id (one query).
///
/// # Errors
/// A database error.
pub async fn tickets_by_id(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<std::collections::HashMap<Uuid, TicketRow>> {
    let rows: Vec<TicketRow> = by_ids(pool, TICKET, ids).await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// How many rows of each kind a re-read after a lag brings at most (the latest changes first).
const CHANGED_SINCE_LIMIT: i64 = 1000;

/// The tickets and orders changed at or after `position` (a notification split in chunks shares
/// one position), as one resync [`crate::Changed`] at the projected position now: what a
/// subscriber that lagged behind the notifications may have missed.
///
/// # Errors
/// A database error.
pub async fn changed_since(pool: &PgPool, position: u64) -> sqlx::Result<crate::Changed> {
    let after = i64::try_from(position).unwrap_or(i64::MAX);
    let head: i64 = sqlx::query_scalar("SELECT position FROM read.checkpoint").fetch_one(pool).await?;
    let ids = |table: &str| {
        format!("SELECT id FROM read.{table} WHERE position >= $1 ORDER BY position DESC LIMIT {CHANGED_SINCE_LIMIT}")
    };
    let tickets: Vec<Uuid> = sqlx::query_scalar(&ids("tickets")).bind(after).fetch_all(pool).await?;
    let orders: Vec<Uuid> = sqlx::query_scalar(&ids("orders")).bind(after).fetch_all(pool).await?;
    Ok(crate::Changed::resync(u64::try_from(head).unwrap_or(0), tickets, orders))
}

/// One ticket.
///
/// # Errors
/// A database error.
pub async fn ticket(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as(&format!("{TICKET} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// A page of tickets, newest first, optionally by status or seller; one row more than asked
/// tells whether there is a next page.
///
/// # Errors
/// A database error.
pub async fn tickets(
    pool: &PgPool,
    limit: i64,
    before_position: Option<i64>,
    status: Option<&str>,
    seller: Option<Uuid>,
) -> sqlx::Result<Vec<TicketRow>> {
    sqlx::query_as(&format!(
        "{TICKET} WHERE ($1::bigint IS NULL OR created_position < $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::uuid IS NULL OR seller_id = $3) ORDER BY created_position DESC LIMIT $4"
    ))
    .bind(before_position)
    .bind(status)
    .bind(seller)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One order.
///
/// # Errors
/// A database error.
pub async fn order(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(&format!("{ORDER} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// A page of a buyer's orders, newest first.
///
/// # Errors
/// A database error.
pub async fn orders_of(
    pool: &PgPool,
    buyer: Uuid,
    limit: i64,
    before_position: Option<i64>,
) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as(&format!(
        "{ORDER} WHERE buyer_id = $1 AND ($2::bigint IS NULL OR created_position < $2) ORDER BY created_position DESC LIMIT $3"
    ))
    .bind(buyer)
    .bind(before_position)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One payment.
///
/// # Errors
/// A database error.
pub async fn payment(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!("{PAYMENT} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// One account.
///
/// # Errors
/// A database error.
pub async fn account(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as("SELECT id, email FROM read.accounts WHERE id = $1").bind(id).fetch_optional(pool).await
}

/// The histories of these tickets, each oldest first.
///
/// # Errors
/// A database error.
pub async fn histories(pool: &PgPool, tickets: &[Uuid]) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as(
        "SELECT ticket_id, event_type, at, version FROM read.ticket_history WHERE ticket_id = ANY($1)
         ORDER BY ticket_id, position",
    )
    .bind(tickets)
    .fetch_all(pool)
    .await
}

/// Whether a page cursor names an item: a ticket's (`tickets`) or an order's (`orders`)
/// creation position.
///
/// # Errors
/// A database error.
pub async fn cursor_exists(pool: &PgPool, table: Cursor, position: i64) -> sqlx::Result<bool> {
    let sql = match table {
        Cursor::Ticket => "SELECT EXISTS (SELECT 1 FROM read.tickets WHERE created_position = $1)",
        Cursor::Order => "SELECT EXISTS (SELECT 1 FROM read.orders WHERE created_position = $1)",
    };
    sqlx::query_scalar(sql).bind(position).fetch_one(pool).await
}

/// What a page cursor points into.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    /// A ticket connection.
    Ticket,
    /// An order connection.
    Order,
}

/// Which of `sessions` were signed out (one query for all of them).
///
/// # Errors
/// A database error.
pub async fn revoked_among(pool: &PgPool, sessions: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT session_id FROM read.revoked_sessions WHERE session_id = ANY($1)")
        .bind(sessions)
        .fetch_all(pool)
        .await
}

/// The projected position.
///
/// # Errors
/// A database error.
pub async fn checkpoint(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT position FROM read.checkpoint").fetch_one(pool).await
}
