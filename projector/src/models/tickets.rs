//! `tickets` (status, current hold, seller, version) and `ticket_history`.

use domain::{Event, TicketStatus};
use sqlx::PgConnection;

use super::{Applied, Changes};

fn status(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::Available => "AVAILABLE",
        TicketStatus::Reserved => "RESERVED",
        TicketStatus::Sold => "SOLD",
    }
}

/// Applies listing events to the ticket row and its history. Every listing event counts as a
/// new version of the ticket.
///
/// # Errors
/// A database error.
pub async fn apply(conn: &mut PgConnection, applied: Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    let Some(ticket) = applied.ticket() else { return Ok(()) };
    let at = applied.event.at();
    match applied.event {
        Event::TicketListed { seller, title, price_cents, currency, .. } => {
            sqlx::query(
                "INSERT INTO tickets (id, seller_id, title, price_cents, currency, status, holder_order_id, version,
                                      created_at, updated_at, created_position, position)
                 VALUES ($1, $2, $3, $4, $5, 'AVAILABLE', NULL, 0, $6, $6, $7, $7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(ticket.0)
            .bind(seller.0)
            .bind(title.as_str())
            .bind(price_cents.cents())
            .bind(currency.code())
            .bind(at)
            .bind(applied.position)
            .execute(&mut *conn)
            .await?;
        }
        Event::TicketUpdated { title, price_cents, .. } => {
            sqlx::query(
                "UPDATE tickets SET title = COALESCE($2, title), price_cents = COALESCE($3, price_cents) WHERE id = $1",
            )
            .bind(ticket.0)
            .bind(title.as_ref().map(|t| t.as_str()))
            .bind(price_cents.map(|p| p.cents()))
            .execute(&mut *conn)
            .await?;
        }
        Event::OrderPlaced { order_id, .. } => {
            set_status(conn, ticket, TicketStatus::Reserved, Some(order_id.0), None).await?
        }
        Event::OrderCancelled { order_id, .. } => {
            set_status(conn, ticket, TicketStatus::Available, None, Some(order_id.0)).await?;
        }
        Event::PaymentSucceeded { order_id, .. } => {
            set_status(conn, ticket, TicketStatus::Sold, Some(order_id.0), None).await?
        }
        _ => {}
    }
    // Every listing event is a new version of the ticket and a line of its history.
    let version: Option<i32> = sqlx::query_scalar(
        "UPDATE tickets SET version = version + 1, updated_at = $2, position = $3 WHERE id = $1 RETURNING version",
    )
    .bind(ticket.0)
    .bind(at)
    .bind(applied.position)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(version) = version {
        sqlx::query(
            "INSERT INTO ticket_history (ticket_id, position, event_type, at, version) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(ticket.0)
        .bind(applied.position)
        .bind(applied.event.type_name())
        .bind(at)
        .bind(version)
        .execute(&mut *conn)
        .await?;
        changes.tickets.insert(ticket);
    }
    Ok(())
}

/// Sets the status; a cancellation only frees the ticket if that order still holds it.
async fn set_status(
    conn: &mut PgConnection,
    ticket: domain::TicketId,
    to: TicketStatus,
    holder: Option<uuid::Uuid>,
    only_if_held_by: Option<uuid::Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tickets SET status = $2, holder_order_id = $3
         WHERE id = $1 AND ($4::uuid IS NULL OR holder_order_id = $4)",
    )
    .bind(ticket.0)
    .bind(status(to))
    .bind(holder)
    .bind(only_if_held_by)
    .execute(conn)
    .await?;
    Ok(())
}
