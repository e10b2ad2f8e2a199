//! Generations of read models, and the views readers use.
//!
//! Read models live in a schema per *generation* (`projection_1`, `projection_2`, …), each created
//! by the same migrations. `public.projection_generation` names the live one, and the schema
//! `read` holds one view per table pointing at it. Readers (query-service) only ever use `read.*`,
//! so a rebuild fills a new generation beside the live one and switches every reader at once by
//! replacing the views in one transaction.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use crate::ProjectorError;

/// The read-model migrations, applied inside each generation's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The schema of the views readers use.
pub const READ_SCHEMA: &str = "read";

/// Every read-model table, each with a view in [`READ_SCHEMA`].
pub const TABLES: [&str; 14] = [
    "checkpoint",
    "accounts",
    "revoked_sessions",
    "tickets",
    "orders",
    "payments",
    "ticket_history",
    "parked_events",
    "events",
    "ticket_types",
    "sections",
    "seats",
    "order_items",
    "event_history",
];

/// Every read model as it is, table by table, as comparable text: each row as JSON, sorted, without
/// the projector's own clock (`updated_at`, `parked_at`). Two snapshots of the same stream are
/// equal whenever the projection is right, which is how a live projection is checked against a
/// fresh rebuild.
///
/// # Errors
/// A database error.
pub async fn snapshot(pool: &PgPool) -> sqlx::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for table in TABLES {
        let text: String = sqlx::query_scalar(&format!(
            "SELECT coalesce(string_agg(r, E'\\n' ORDER BY r), '') FROM
               (SELECT ((to_jsonb(t) - 'updated_at') - 'parked_at')::text AS r FROM {READ_SCHEMA}.{table} t) rows"
        ))
        .fetch_one(pool)
        .await?;
        out.push((table.to_owned(), text));
    }
    Ok(out)
}

/// Serializes generation changes between processes.
const GENERATION_LOCK: i64 = 0x7469_636b_6574_0001;

/// Creates the generation table, and a first generation when there is none; migrates the live
/// generation to the newest migrations and points the views at it. Returns the live schema.
///
/// # Errors
/// A database error.
pub async fn ensure_live(pool: &PgPool) -> Result<String, ProjectorError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(GENERATION_LOCK).execute(&mut *conn).await?;
    let result = async {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS public.projection_generation (
                 id boolean PRIMARY KEY DEFAULT true CHECK (id),
                 active text NOT NULL,
                 switched_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut *conn)
        .await?;
        let active: Option<String> =
            sqlx::query_scalar("SELECT active FROM public.projection_generation").fetch_optional(&mut *conn).await?;
        let schema = match active {
            Some(schema) => {
                migrate(&mut conn, &schema).await?;
                schema
            }
            None => {
                let schema = generation_name(1);
                migrate(&mut conn, &schema).await?;
                sqlx::query("INSERT INTO public.projection_generation (active) VALUES ($1)")
                    .bind(&schema)
                    .execute(&mut *conn)
                    .await?;
                schema
            }
        };
        point_views(&mut conn, &schema).await?;
        Ok::<_, ProjectorError>(schema)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(GENERATION_LOCK).execute(&mut *conn).await?;
    result
}

/// The live generation's schema.
///
/// # Errors
/// A database error.
pub async fn live(conn: &mut PgConnection) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT active FROM public.projection_generation").fetch_one(conn).await
}

/// Creates the next generation's schema, empty, fully migrated. Returns its name.
///
/// # Errors
/// A database error.
pub async fn create_next(pool: &PgPool) -> Result<String, ProjectorError> {
    let mut conn = pool.acquire().await?;
    let live = live(&mut conn).await?;
    let number: u32 = live.trim_start_matches("projection_").parse().unwrap_or(1);
    let schema = generation_name(number + 1);
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut *conn).await?;
    migrate(&mut conn, &schema).await?;
    Ok(schema)
}

fn generation_name(number: u32) -> String {
    format!("projection_{number}")
}

/// Creates `schema` if needed and applies the migrations inside it.
async fn migrate(conn: &mut PgConnection, schema: &str) -> Result<(), ProjectorError> {
    check_name(schema)?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&mut *conn).await?;
    sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut *conn).await?;
    let migrated = MIGRATOR.run_direct(&mut *conn).await;
    sqlx::query("RESET search_path").execute(&mut *conn).await?;
    migrated?;
    Ok(())
}

/// Points every view in [`READ_SCHEMA`] at `schema`'s tables (inside the caller's transaction).
///
/// # Errors
/// A database error.
pub async fn point_views(conn: &mut PgConnection, schema: &str) -> Result<(), ProjectorError> {
    check_name(schema)?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {READ_SCHEMA}")).execute(&mut *conn).await?;
    for table in TABLES {
        sqlx::query(&format!("CREATE OR REPLACE VIEW {READ_SCHEMA}.{table} AS SELECT * FROM {schema}.{table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Makes `schema` the live generation and drops `old`, atomically for readers.
///
/// # Errors
/// A database error.
pub async fn switch(conn: &mut PgConnection, schema: &str) -> Result<(), ProjectorError> {
    sqlx::query("UPDATE public.projection_generation SET active = $1, switched_at = now()")
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    point_views(conn, schema).await
}

/// Drops a generation that is no longer live.
///
/// # Errors
/// A database error, or `schema` being live.
pub async fn drop_generation(pool: &PgPool, schema: &str) -> Result<(), ProjectorError> {
    check_name(schema)?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    if live(&mut tx).await? == schema {
        return Err(ProjectorError::LiveGeneration(schema.to_owned()));
    }
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Schema names go into SQL text: only our own `projection_<n>` names are accepted.
fn check_name(schema: &str) -> Result<(), ProjectorError> {
    let ok = schema.strip_prefix("projection_").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok { Ok(()) } else { Err(ProjectorError::NotAGeneration(schema.to_owned())) }
}
