//! The harness itself gives real, isolated servers.

#[tokio::test]
async fn a_test_database_is_private_and_dropped_afterwards() -> anyhow::Result<()> {
    let db = testkit::postgres().await?;
    let other = testkit::postgres().await?;
    assert_ne!(db.name, other.name);
    sqlx::query("CREATE TABLE t (x int)").execute(&db.pool).await?;
    let in_other: Option<String> = sqlx::query_scalar("SELECT to_regclass('t')::text").fetch_one(&other.pool).await?;
    assert_eq!(in_other, None, "tables must not leak between test databases");

    let admin = other.pool.clone();
    let name = db.name.clone();
    drop(db);
    let still_there: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1").bind(&name).fetch_one(&admin).await?;
    assert_eq!(still_there, 0);
    Ok(())
}

#[tokio::test]
async fn a_test_nats_server_is_modern_and_has_jetstream() -> anyhow::Result<()> {
    let nats = testkit::nats().await?;
    let version = nats.client.server_info().version;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!((major, minor) >= (2, 12), "nats-server {version} is too old");
    let info = nats.client.request("$JS.API.INFO", "".into()).await?;
    assert!(String::from_utf8_lossy(&info.payload).contains("\"memory\""), "JetStream must be enabled");
    Ok(())
}
