//! `tickets(search:)` over 100,000 tickets, against the unfiltered first page measured in the same
//! run, over HTTP through the gateway.
//!
//! The tickets are written straight into the live read model (as the projector writes them, the
//! generated `search` column and its GIN index maintained by PostgreSQL), with titles made of a
//! genre, a word, a venue and a day, some accented; then `ANALYZE`. Each search runs `ROUNDS`
//! times from 8 clients; the table gives p50 and p99 per search and for all of them, and the same
//! for `tickets(first: 20)` without a search.
//!
//! `cargo run --release -p bench --bin search` (about a minute); `-- --quick`: 10,000 tickets,
//! results not written.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is searched for: common and rare words, accents typed and not, prefixes down to one
/// letter (the widest), several words.
const SEARCHES: [&str; 10] = [
    "rock",
    "jazz night",
    "théâtre",
    "theatre",
    "zur",
    "sao paulo sat",
    "opera cafe",
    "a",
    "symphony arena fri",
    "nothing matches this",
];

const TICKETS_QUERY: &str = "query($s: String) { tickets(first: 20, search: $s) {
    nodes { id title priceCents status } pageInfo { hasNextPage endCursor } } }";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

/// Writes `count` tickets of one seller into the live generation's `tickets`.
async fn seed(pool: &sqlx::PgPool, count: i64) -> anyhow::Result<()> {
    let schema: String = sqlx::query_scalar("SELECT active FROM public.projection_generation").fetch_one(pool).await?;
    if !schema.starts_with("projection_") || !schema[11..].bytes().all(|b| b.is_ascii_digit()) {
        bail!("unexpected live generation {schema}");
    }
    sqlx::query(&format!(
        "INSERT INTO {schema}.tickets (id, seller_id, title, price_cents, currency, status, version, created_at,
                                       updated_at, created_position, position)
         SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000001',
                (ARRAY['Rock','Jazz','Opera','Folk','Symphony','Comedy','Ballet','Techno','Blues','Soul'])[1 + n % 10]
                || ' ' || (ARRAY['night','matinee','festival','gala','session','tour','premiere'])[1 + (n / 10) % 7]
                || ' at ' || (ARRAY['Riverside Arena','Théâtre du Châtelet','Zürich Hallenstadion','São Paulo Hall',
                                   'Café Central','Town Hall','Opera House','Jazz Cellar'])[1 + (n / 70) % 8]
                || ', ' || (ARRAY['Mon','Tue','Wed','Thu','Fri','Sat','Sun'])[1 + (n / 560) % 7]
                || ' #' || n,
                1000 + n % 9000, 'USD', 'AVAILABLE', 1, now(), now(), 1000000000 + n, 1000000000 + n
           FROM generate_series(1, $1) AS n"
    ))
    .bind(count)
    .execute(pool)
    .await?;
    sqlx::query(&format!("ANALYZE {schema}.tickets")).execute(pool).await?;
    Ok(())
}

/// Latencies of `rounds` runs of `search` from 8 clients, and how many it found on its first page.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    search: Option<&str>,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let body = json!({"query": TICKETS_QUERY, "variables": {"s": search}});
    let first: Value = http.post(url).json(&body).send().await?.json().await?;
    if !first["errors"].is_null() {
        bail!("{search:?}: {first}");
    }
    let found = first["data"]["tickets"]["nodes"].as_array().map_or(0, Vec::len);
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in (worker..rounds).step_by(8) {
                    let started = Instant::now();
                    let answer: Value = http.post(&url).json(&body).send().await?.json().await?;
                    latencies.push(started.elapsed());
                    if !answer["errors"].is_null() {
                        bail!("{answer}");
                    }
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort();
    Ok((latencies, found))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .init();
    let quick = std::env::args().any(|a| a == "--quick");
    let (count, rounds) = if quick { (10_000, 80) } else { (100_000, 400) };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = testkit::NatsServer::start().await?;
    let db = testkit::postgres().await?;
    let client = testkit::connect(&nats.url()).await?;
    let gateway = query_service::config::Config {
        jwt_secret: "search-bench-secret-search-bench-secret".into(),
        database_url: db.url.clone(),
        nats_url: nats.url(),
        cookie_secure: false,
        ..<query_service::config::Config as clap::Parser>::parse_from(["query-service"])
    };
    let commands = command_service::config::Config::with_nats_url(&nats.url());
    let settings = ticketing::system::Settings { commands, gateway, projector_batch_max: 500 };
    let system =
        ticketing::system::System::start(settings, ticketing::system::Connections::shared(&client, &db.pool)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    system.serve(listener);

    let started = Instant::now();
    seed(&db.pool, count).await.context("seeding the tickets")?;
    eprintln!("seeded {count} tickets in {:.1} s", started.elapsed().as_secs_f64());
    let http = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;

    let (baseline, _) = measure(&http, &url, None, rounds).await?;
    let mut rows =
        vec![json!({"search": "(none: tickets(first: 20))", "found": 20, "p50_ms": percentile(&baseline, 0.5),
                               "p99_ms": percentile(&baseline, 0.99)})];
    let mut all = Vec::new();
    for search in SEARCHES {
        let (latencies, found) = measure(&http, &url, Some(search), rounds).await?;
        rows.push(json!({"search": search, "found": found, "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99)}));
        all.extend(latencies);
    }
    all.sort();
    let base_p99 = percentile(&baseline, 0.99);
    let (p50, p99) = (percentile(&all, 0.5), percentile(&all, 0.99));
    let mut md = format!(
        "# Search over {count} tickets\n\n`tickets(first: 20, search:)` over HTTP, 8 clients, {rounds} runs of each search \
         (first page, best match first). Baseline: the same query without `search` in the same run.\n\n\
         | search | on first page | p50 (ms) | p99 (ms) |\n|---|---:|---:|---:|\n"
    );
    for row in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} |\n",
            row["search"].as_str().unwrap_or_default(),
            row["found"],
            row["p50_ms"].as_f64().unwrap_or(f64::NAN),
            row["p99_ms"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    md.push_str(&format!(
        "| **every search** | | **{p50:.1}** | **{p99:.1}** |\n\nAll searches' p99 is {:.2}× the unfiltered page's.\n",
        p99 / base_p99
    ));
    std::io::Write::write_all(&mut std::io::stdout(), md.as_bytes())?;
    if !quick {
        let dir = testkit::workspace_root().join("bench/results");
        std::fs::write(dir.join("search.md"), &md)?;
        let json = json!({"tickets": count, "rounds": rounds, "rows": rows, "all_p50_ms": p50, "all_p99_ms": p99,
                          "vs_unfiltered_p99": p99 / base_p99});
        std::fs::write(dir.join("search.json"), serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
