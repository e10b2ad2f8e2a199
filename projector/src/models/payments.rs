//! `payments`: amount, status and provider reference of every attempt.

use domain::{Event, OrderId, PaymentId};
use sqlx::PgConnection;

use super::{Applied, Changes};

/// Applies payment events.
///
/// # Errors
/// A database error.
pub async fn apply(conn: &mut PgConnection, applied: Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    let at = applied.event.at();
    let (payment_id, order_id, status, provider_ref) = match applied.event {
        Event::PaymentStarted { payment_id, order_id, ticket_id, amount_cents, currency, .. } => {
            sqlx::query(
                "INSERT INTO payments (id, order_id, ticket_id, amount_cents, currency, status, provider_ref,
                                       created_at, updated_at, position)
                 VALUES ($1, $2, $3, $4, $5, 'PENDING', NULL, $6, $6, $7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(payment_id.0)
            .bind(order_id.0)
            .bind(ticket_id.0)
            .bind(amount_cents.cents())
            .bind(currency.code())
            .bind(at)
            .bind(applied.position)
            .execute(conn)
            .await?;
            changes.orders.insert(*order_id);
            return Ok(());
        }
        event => match update(event) {
            Some(update) => update,
            None => return Ok(()),
        },
    };
    sqlx::query(
        "UPDATE payments SET status = COALESCE($2, status), provider_ref = COALESCE($3, provider_ref),
                             updated_at = $4, position = $5
         WHERE id = $1",
    )
    .bind(payment_id.0)
    .bind(status)
    .bind(provider_ref.map(String::as_str))
    .bind(at)
    .bind(applied.position)
    .execute(conn)
    .await?;
    changes.orders.insert(*order_id);
    Ok(())
}

/// How an event other than `PaymentStarted` changes a payment row: the payment, its order, the
/// new status (`None`: unchanged) and the provider reference (`None`: unchanged). `None` for
/// events that do not touch a payment row.
pub(super) fn update(event: &Event) -> Option<(&PaymentId, &OrderId, Option<&'static str>, Option<&String>)> {
    Some(match event {
        Event::PaymentPending { payment_id, order_id, provider_ref, .. } => {
            (payment_id, order_id, None, Some(provider_ref))
        }
        Event::PaymentSucceeded { payment_id, order_id, provider_ref, .. }
        | Event::LatePaymentReceived { payment_id, order_id, provider_ref, .. } => {
            (payment_id, order_id, Some("SUCCEEDED"), Some(provider_ref))
        }
        Event::PaymentFailed { payment_id, order_id, .. } => (payment_id, order_id, Some("FAILED"), None),
        Event::PaymentRefunded { payment_id, order_id, .. } => (payment_id, order_id, Some("REFUNDED"), None),
        _ => return None,
    })
}
