//! `accounts` (the public part: id, email, registration) and `revoked_sessions`.

use domain::Event;
use sqlx::PgConnection;

use super::{Applied, Changes};

/// Applies account events.
///
/// # Errors
/// A database error.
pub async fn apply(conn: &mut PgConnection, applied: Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    match applied.event {
        Event::AccountRegistered { account_id, email, at, .. } => {
            sqlx::query(
                "INSERT INTO accounts (id, email, registered_at, position) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(account_id.0)
            .bind(email.as_str())
            .bind(at)
            .bind(applied.position)
            .execute(conn)
            .await?;
        }
        Event::SessionRevoked { account_id, session_id, expires_at, .. } => {
            changes.sessions.insert(*session_id);
            sqlx::query(
                "INSERT INTO revoked_sessions (session_id, account_id, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (session_id) DO NOTHING",
            )
            .bind(session_id.0)
            .bind(account_id.0)
            .bind(expires_at)
            .execute(conn)
            .await?;
        }
        _ => {}
    }
    Ok(())
}
