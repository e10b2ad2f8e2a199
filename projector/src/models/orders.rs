//! `orders`: status, cancel reason, expiry, latest payment, version.

use domain::{CancelReason, Event};
use sqlx::PgConnection;

use super::{Applied, Changes};

/// The stored form of a cancel reason.
pub(super) fn reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::User => "USER",
        CancelReason::Expired => "EXPIRED",
        CancelReason::Admin => "ADMIN",
    }
}

/// Applies order and payment events to the order row. Every event about the order (its own and
/// its payments') is a new version.
///
/// # Errors
/// A database error.
pub async fn apply(conn: &mut PgConnection, applied: Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    let at = applied.event.at();
    let order_id = match applied.event {
        Event::OrderPlaced { order_id, ticket_id, buyer, seller, amount_cents, currency, expires_at, .. } => {
            sqlx::query(
                "INSERT INTO orders (id, ticket_id, buyer_id, seller_id, amount_cents, currency, status, cancel_reason,
                                     expires_at, payment_id, version, created_at, updated_at, created_position, position)
                 VALUES ($1, $2, $3, $4, $5, $6, 'CREATED', NULL, $7, NULL, 0, $8, $8, $9, $9)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(order_id.0)
            .bind(ticket_id.0)
            .bind(buyer.0)
            .bind(seller.0)
            .bind(amount_cents.cents())
            .bind(currency.code())
            .bind(expires_at)
            .bind(at)
            .bind(applied.position)
            .execute(&mut *conn)
            .await?;
            order_id
        }
        Event::OrderCancelled { order_id, reason: why, .. } => {
            sqlx::query("UPDATE orders SET status = 'CANCELLED', cancel_reason = $2 WHERE id = $1")
                .bind(order_id.0)
                .bind(reason(*why))
                .execute(&mut *conn)
                .await?;
            order_id
        }
        Event::PaymentStarted { order_id, payment_id, .. } => {
            sqlx::query("UPDATE orders SET status = 'AWAITING_PAYMENT', payment_id = $2 WHERE id = $1")
                .bind(order_id.0)
                .bind(payment_id.0)
                .execute(&mut *conn)
                .await?;
            order_id
        }
        Event::PaymentSucceeded { order_id, .. } => {
            sqlx::query("UPDATE orders SET status = 'COMPLETE' WHERE id = $1")
                .bind(order_id.0)
                .execute(&mut *conn)
                .await?;
            order_id
        }
        Event::PaymentFailed { order_id, payment_id, .. } => {
            sqlx::query(
                "UPDATE orders SET status = 'CREATED' WHERE id = $1 AND status = 'AWAITING_PAYMENT' AND payment_id = $2",
            )
            .bind(order_id.0)
            .bind(payment_id.0)
            .execute(&mut *conn)
            .await?;
            order_id
        }
        Event::PaymentPending { order_id, .. }
        | Event::LatePaymentReceived { order_id, .. }
        | Event::PaymentRefunded { order_id, .. } => order_id,
        _ => return Ok(()),
    };
    let updated = sqlx::query("UPDATE orders SET version = version + 1, updated_at = $2, position = $3 WHERE id = $1")
        .bind(order_id.0)
        .bind(at)
        .bind(applied.position)
        .execute(&mut *conn)
        .await?;
    if updated.rows_affected() > 0 {
        changes.orders.insert(*order_id);
    }
    Ok(())
}
