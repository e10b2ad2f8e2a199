//! First paint of the web app in headless Chromium on a throttled phone, server-rendered pages
//! against the app's empty shell measured in the same run, and the gateway's rendered-page
//! throughput beside `ticket(id)`'s.
//!
//! One system (NATS, PostgreSQL, command service, projector) with two gateways on loopback
//! ports over the same read models and the same bundle (`web/dist`, from `scripts/build-web`):
//! one renders the pages (`SERVER_RENDERING=true`, the default), the other serves the empty
//! shell the browser renders (`SERVER_RENDERING=false`: how every page was served before the
//! server rendered them). Chromium runs with DevTools' CPU throttling (4×) and network emulation
//! (the slow 4G Lighthouse applies through DevTools: 562.5 ms request latency, 1,474.56 kbit/s
//! down, 675 kbit/s up), its cache off, so every load is a first visit. Each load reports:
//!
//! - first contentful paint (`performance` paint timing),
//! - content: when the page's data is first in the document (a ticket card, an event's title),
//! - live: when the app's first effects have run (`data-live` on `<html>`), i.e. hydrated (or,
//!   for the shell, rendered) and answering input: our time to interactive.
//!
//! `cargo run --release -p bench --bin first-paint` (about 3 minutes), `-- --quick` for one load
//! of each (the results are written in full mode only).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use testkit::browser::Cdp;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const JWT_SECRET: &str = "first-paint-bench-secret-first-paint";

/// Installed in every page before it loads: notes when the page's data is first in the document
/// and when the app marks itself live.
const OBSERVE: &str = r#"
window.__marks = {};
const seen = () => {
  const m = window.__marks;
  if (m.content === undefined && document.querySelector('.grid .card, [data-testid=event-title]')) m.content = performance.now();
  if (m.live === undefined && document.documentElement && document.documentElement.dataset.live === 'true') m.live = performance.now();
};
new MutationObserver(seen).observe(document, { childList: true, subtree: true, attributes: true });
"#;

/// Reads the marks and the first contentful paint once the page is live and shows its data.
const READ: &str = r#"
const m = window.__marks || {};
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
if (m.live === undefined || m.content === undefined || !fcp) return null;
return { fcp: fcp.startTime, content: m.content, live: m.live };
"#;

struct Mode {
    runs: usize,
    throughput: Duration,
    write: bool,
}

const FULL: Mode = Mode { runs: 5, throughput: Duration::from_secs(8), write: true };
const QUICK: Mode = Mode { runs: 1, throughput: Duration::from_secs(2), write: false };

/// One page load's timings, in milliseconds from navigation start.
#[derive(Debug, Clone, Copy)]
struct Load {
    fcp: f64,
    content: f64,
    live: f64,
}

struct Gateways {
    rendered: String,
    shell: String,
    _system: ticketing::system::System,
    _shell_task: tokio::task::JoinHandle<std::io::Result<()>>,
    _nats: testkit::NatsServer,
    _db: testkit::TestDb,
}

async fn gateways(web_dir: std::path::PathBuf) -> anyhow::Result<Gateways> {
    let nats = testkit::NatsServer::start().await?;
    let db = testkit::postgres().await?;
    let client = testkit::connect(&nats.url()).await?;
    let commands = command_service::config::Config::with_nats_url(&nats.url());
    let gateway = query_service::config::Config {
        jwt_secret: JWT_SECRET.into(),
        database_url: db.url.clone(),
        nats_url: nats.url(),
        cookie_secure: false,
        web_dir,
        ..<query_service::config::Config as clap::Parser>::parse_from(["query-service"])
    };
    let shell_config = query_service::config::Config { server_rendering: false, ..gateway.clone() };
    let settings = ticketing::system::Settings { commands, gateway, projector_batch_max: 500 };
    let system =
        ticketing::system::System::start(settings, ticketing::system::Connections::shared(&client, &db.pool)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let rendered = format!("http://{}", listener.local_addr()?);
    system.serve(listener);
    let shell_state = query_service::AppState::new(shell_config, db.pool.clone(), client.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shell = format!("http://{}", listener.local_addr()?);
    let service = query_service::app(shell_state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let shell_task = tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(Gateways { rendered, shell, _system: system, _shell_task: shell_task, _nats: nats, _db: db })
}

async fn gql(
    http: &reqwest::Client,
    base: &str,
    cookie: Option<&str>,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(format!("{base}/graphql")).json(&json!({"query": query, "variables": variables}));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("session={cookie}"));
    }
    let response = request.send().await?;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("session=").map(str::to_owned));
    let mut body: Value = response.json().await?;
    if let Some(error) = body["errors"].get(0) {
        bail!("{query}: {error}");
    }
    if let Some(cookie) = cookie {
        body["cookie"] = Value::String(cookie);
    }
    Ok(body)
}

/// A seller with 40 tickets and an event of two ticket types and a 10 × 20 seat section; the
/// ids of one ticket and the event.
async fn seed(http: &reqwest::Client, base: &str) -> anyhow::Result<(String, String)> {
    let signed = gql(
        http,
        base,
        None,
        "mutation { signUp(email: \"paint@example.com\", password: \"bench-password\") { id } }",
        json!({}),
    )
    .await?;
    let cookie = signed["cookie"].as_str().context("no session cookie")?.to_owned();
    let mut ticket = String::new();
    for n in 0..40 {
        let title = format!("Row {} seat {}, Saturday concert at the Riverside Arena", n / 10 + 1, n % 10 + 1);
        let created = gql(
            http,
            base,
            Some(&cookie),
            "mutation($t: String!, $p: Int!) { createTicket(title: $t, priceCents: $p) { id } }",
            json!({"t": title, "p": 2500 + n * 100}),
        )
        .await?;
        ticket = created["data"]["createTicket"]["id"].as_str().context("no ticket id")?.to_owned();
    }
    let event = gql(
        http,
        base,
        Some(&cookie),
        "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
        json!({"input": {
            "title": "Summer Symphony", "venue": "Riverside Arena", "startsAt": "2031-07-04T19:00:00Z",
            "ticketTypes": [{"name": "Standing", "priceCents": 3000, "capacity": 500},
                            {"name": "VIP lounge", "priceCents": 15000, "capacity": 40}],
            "sections": [{"name": "A", "priceCents": 9000, "rows": 10, "seatsPerRow": 20}],
        }}),
    )
    .await?;
    let event = event["data"]["createEvent"]["id"].as_str().context("no event id")?.to_owned();
    Ok((ticket, event))
}

/// A throttled headless Chromium with its cache off and the marks installed.
async fn phone(driver: &str) -> anyhow::Result<Client> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=412,915"]}
    });
    let Value::Object(capabilities) = capabilities else { bail!("capabilities") };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver)
        .await?;
    let cdp = |cmd, params| client.issue_cmd(Cdp { cmd, params });
    cdp("Network.enable", json!({})).await?;
    cdp("Network.setCacheDisabled", json!({"cacheDisabled": true})).await?;
    cdp(
        "Network.emulateNetworkConditions",
        json!({"offline": false, "latency": 562.5, "downloadThroughput": 1_474.56 * 1024.0 / 8.0,
               "uploadThroughput": 675.0 * 1024.0 / 8.0}),
    )
    .await?;
    cdp("Emulation.setCPUThrottlingRate", json!({"rate": 4})).await?;
    cdp("Page.enable", json!({})).await?;
    cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": OBSERVE})).await?;
    Ok(client)
}

async fn load(browser: &Client, url: &str) -> anyhow::Result<Load> {
    browser.goto("about:blank").await?;
    browser.goto(url).await?;
    let started = Instant::now();
    loop {
        let read = browser.execute(READ, vec![]).await?;
        if let (Some(fcp), Some(content), Some(live)) =
            (read["fcp"].as_f64(), read["content"].as_f64(), read["live"].as_f64())
        {
            return Ok(Load { fcp, content, live });
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{url} never showed its content and went live");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Requests per second of `request` from 16 clients for `duration`.
async fn rate<F, Fut>(duration: Duration, request: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < duration {
                    request().await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .init();
    let mode = if std::env::args().any(|a| a == "--quick") { QUICK } else { FULL };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let web_dir = testkit::workspace_root().join("web/dist");
    if !web_dir.join("index.html").is_file() {
        bail!("no web bundle at {}: run scripts/build-web first", web_dir.display());
    }
    let size: Value = serde_json::from_str(&std::fs::read_to_string(web_dir.join("size.json"))?)?;
    let gateways = gateways(web_dir).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let (ticket, event) = seed(&http, &gateways.rendered).await?;
    let pages = [("home", "/".to_owned()), ("event", format!("/events/{event}"))];

    let driver = testkit::browser::chromedriver().await?;
    let browser = phone(&driver.url).await?;
    // (page, rendered?) → loads; the two kinds alternate, so drift hits both alike.
    let mut loads: Vec<(&str, bool, Load)> = Vec::new();
    for run in 0..mode.runs {
        for (name, path) in &pages {
            for rendered in if run % 2 == 0 { [false, true] } else { [true, false] } {
                let base = if rendered { &gateways.rendered } else { &gateways.shell };
                let timing = load(&browser, &format!("{base}{path}")).await?;
                eprintln!("{name} {} run {run}: {timing:?}", if rendered { "rendered" } else { "shell" });
                loads.push((name, rendered, timing));
            }
        }
    }
    let _ = browser.close().await;

    let of = |page: &str, rendered: bool, pick: fn(&Load) -> f64| {
        median(loads.iter().filter(|(p, r, _)| *p == page && *r == rendered).map(|(_, _, l)| pick(l)).collect())
    };
    let mut rows = Vec::new();
    for (name, _) in &pages {
        for (metric, pick) in [
            ("first contentful paint", (|l: &Load| l.fcp) as fn(&Load) -> f64),
            ("content shown", |l: &Load| l.content),
            ("live (interactive)", |l: &Load| l.live),
        ] {
            let (shell, rendered) = (of(name, false, pick), of(name, true, pick));
            rows.push(
                json!({"page": name, "metric": metric, "shell_ms": shell.round(), "rendered_ms": rendered.round(),
                             "ratio": (rendered / shell * 100.0).round() / 100.0}),
            );
        }
    }

    // Throughput: a rendered event page and home page against the `ticket(id)` query.
    let (base, id) = (gateways.rendered.clone(), ticket.clone());
    let ticket_query = {
        let (http, base) = (http.clone(), base.clone());
        move || {
            let (http, base, id) = (http.clone(), base.clone(), id.clone());
            async move {
                let body = json!({"query": "query($id: ID!) { ticket(id: $id) { id title priceCents status } }", "variables": {"id": id}});
                let answer: Value = http.post(format!("{base}/graphql")).json(&body).send().await?.json().await?;
                if answer["data"]["ticket"]["id"].is_null() {
                    bail!("ticket(id) answered {answer}");
                }
                Ok(())
            }
        }
    };
    let page = |path: String| {
        let (http, base) = (http.clone(), base.clone());
        move || {
            let (http, url) = (http.clone(), format!("{base}{path}"));
            async move {
                let response = http.get(&url).send().await?;
                if !response.status().is_success() {
                    bail!("{url}: {}", response.status());
                }
                response.bytes().await?;
                Ok(())
            }
        }
    };
    let ticket_rate = rate(mode.throughput, ticket_query).await?;
    let ticket_page_rate = rate(mode.throughput, page(format!("/tickets/{ticket}"))).await?;
    let event_rate = rate(mode.throughput, page(format!("/events/{event}"))).await?;
    let home_rate = rate(mode.throughput, page("/".to_owned())).await?;
    let throughput = json!([
        {"request": "ticket(id) query (POST /graphql)", "per_second": ticket_rate.round(), "vs_ticket_query": 1.0},
        {"request": "rendered ticket page (GET /tickets/<id>)", "per_second": ticket_page_rate.round(),
         "vs_ticket_query": (ticket_page_rate / ticket_rate * 100.0).round() / 100.0},
        {"request": "rendered event page, 200 seats (GET /events/<id>)", "per_second": event_rate.round(),
         "vs_ticket_query": (event_rate / ticket_rate * 100.0).round() / 100.0},
        {"request": "rendered home page, 20 tickets (GET /)", "per_second": home_rate.round(),
         "vs_ticket_query": (home_rate / ticket_rate * 100.0).round() / 100.0},
    ]);

    let mut md = String::from("# First paint: server-rendered pages against the app's shell\n\n");
    md.push_str(&format!(
        "Headless Chromium, CPU throttled 4x, slow 4G (562.5 ms latency, 1,474.56 kbit/s down, 675 kbit/s up), cache off; \
         median of {} loads each, the two kinds alternating. Bundle: {} bytes gzipped ({:.0} KiB).\n\n",
        mode.runs,
        size["total_gzip_bytes"],
        size["total_gzip_bytes"].as_f64().unwrap_or(0.0) / 1024.0
    ));
    md.push_str("| page | metric | shell (ms) | rendered (ms) | rendered / shell |\n|---|---|---:|---:|---:|\n");
    for row in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} |\n",
            row["page"].as_str().unwrap_or_default(),
            row["metric"].as_str().unwrap_or_default(),
            row["shell_ms"],
            row["rendered_ms"],
            row["ratio"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    md.push_str("\n| request (16 clients, one gateway) | per second | vs ticket(id) |\n|---|---:|---:|\n");
    for row in throughput.as_array().into_iter().flatten() {
        md.push_str(&format!(
            "| {} | {} | {:.2} |\n",
            row["request"].as_str().unwrap_or_default(),
            row["per_second"],
            row["vs_ticket_query"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    std::io::Write::write_all(&mut std::io::stdout(), md.as_bytes())?;
    if mode.write {
        let dir = testkit::workspace_root().join("bench/results");
        std::fs::write(dir.join("first-paint.md"), &md)?;
        let json = json!({"loads": rows, "throughput": throughput, "bundle": size, "runs": mode.runs});
        std::fs::write(dir.join("first-paint.json"), serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
