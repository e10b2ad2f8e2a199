//! `ticketing up` as a newcomer runs it, then `ticketing seed`: the real binary with its own NATS
//! server (data under a fresh `TICKETING_HOME`) and a PostgreSQL database of the test's own.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_ticketing");

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

struct Setup {
    home: tempfile::TempDir,
    web: tempfile::TempDir,
    /// The PostgreSQL to use; `Err(port)`: none, `up` runs its own on that port.
    database: Result<String, u16>,
    nats_port: u16,
    http_addr: String,
}

impl Setup {
    /// A fresh `TICKETING_HOME` holding the pinned nats-server the harness installed (where `up`
    /// keeps its tools), and a web app of one page.
    fn new(database: Result<String, u16>) -> Self {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Its own PostgreSQL runs as the `postgres` user, which must reach the data inside.
        std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let nats = testkit::nats_server_binary().unwrap_or_else(|e| panic!("{e:#}"));
        std::fs::create_dir_all(home.path().join("tools/bin")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&nats, home.path().join("tools/bin/nats-server")).unwrap_or_else(|e| panic!("{e}"));
        let web = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(web.path().join("index.html"), "<!doctype html><title>web app</title>")
            .unwrap_or_else(|e| panic!("{e}"));
        Self { home, web, database, nats_port: free_port(), http_addr: format!("127.0.0.1:{}", free_port()) }
    }
}

/// `ticketing up` for `setup`, not started yet.
fn up_command(setup: &Setup) -> Command {
    let mut command = Command::new(BINARY);
    match &setup.database {
        Ok(url) => command.env("DATABASE_URL", url),
        Err(port) => command.env_remove("DATABASE_URL").env("TICKETING_PG_PORT", port.to_string()),
    };
    command
        .arg("up")
        .env_remove("NATS_URL")
        .env_remove("JWT_SECRET")
        .env_remove("PAYMENT_WEBHOOK_SECRET")
        .env("TICKETING_HOME", setup.home.path())
        .env("TICKETING_NATS_PORT", setup.nats_port.to_string())
        .env("HTTP_ADDR", &setup.http_addr)
        .env("WEB_DIR", setup.web.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

fn up(setup: &Setup) -> Child {
    up_command(setup).stderr(Stdio::inherit()).spawn().unwrap_or_else(|e| panic!("starting {BINARY}: {e}"))
}

async fn wait_ready(http: &reqwest::Client, setup: &Setup, child: &mut Child) {
    let started = Instant::now();
    loop {
        let url = format!("http://{}/readyz", setup.http_addr);
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ticketing up exited early: {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(90), "not ready within 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn terminate(mut child: Child) {
    let pid = child.id().unwrap_or_else(|| panic!("no pid"));
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    assert!(status.is_ok_and(|s| s.success()));
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let status =
        exited.unwrap_or_else(|_| panic!("did not stop within 30 s of SIGTERM")).unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "stopped with {status}");
}

/// A GraphQL request to `up`'s API (with a session cookie when given); the whole answer.
async fn gql(http: &reqwest::Client, setup: &Setup, query: &str, cookie: Option<&str>) -> Value {
    let mut request = http.post(format!("http://{}/graphql", setup.http_addr)).json(&json!({ "query": query }));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("session={cookie}"));
    }
    request.send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_else(|e| panic!("{e}"))
}

async fn statuses(http: &reqwest::Client, setup: &Setup) -> Vec<String> {
    let body = gql(http, setup, "{ tickets(first: 100) { nodes { status } } }", None).await;
    body["data"]["tickets"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|n| n["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_marketplace_that_seed_fills_and_a_restart_resumes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let setup = Setup::new(Ok(db.url.clone()));
    let http = reqwest::Client::builder().build().unwrap_or_else(|e| panic!("{e}"));

    let mut child = up(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let page = http.get(format!("http://{}/my/orders", setup.http_addr)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.text().await.unwrap_or_default(), "<!doctype html><title>web app</title>");
    // Its NATS requires credentials: without them nobody on this machine can send a command.
    let nats = format!("nats://127.0.0.1:{}", setup.nats_port);
    assert!(async_nats::ConnectOptions::new().connect(&nats).await.is_err(), "its NATS let a stranger in");
    for secret in ["nats-operator", "nats-query-service", "nats.conf", "jwt-secret"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(setup.home.path().join(secret))
            .unwrap_or_else(|e| panic!("{secret}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others: {mode:o}");
    }
    let operator = std::fs::read_to_string(setup.home.path().join("nats-operator")).unwrap_or_else(|e| panic!("{e}"));
    async_nats::ConnectOptions::with_user_and_password("operator".into(), operator.trim().into())
        .connect(&nats)
        .await
        .unwrap_or_else(|e| panic!("the operator's credentials: {e}"));

    let seeded = Command::new(BINARY)
        .args(["seed", "--http-addr", &setup.http_addr])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&seeded.stderr);
    assert!(seeded.status.success(), "{said}");
    assert!(said.contains("24 tickets (8 sold, 3 on hold, 1 settling), 2 events (2 orders paid, 3 on hold)"), "{said}");
    let events = gql(&http, &setup, "{ events { nodes { title available sections { name available } } } }", None).await;
    let events = &events["data"]["events"]["nodes"];
    // Soonest first: the play (14 days), then the festival (30 days).
    assert_eq!((events[0]["title"].as_str(), events[1]["title"].as_str()), (Some("Hamlet"), Some("Summer Festival")));
    assert_eq!(events[0]["available"], 200 + 75 - 4, "two seats sold, two held: {events}");
    assert_eq!(events[1]["available"], 1_000 - 3, "{events}");
    let count = |all: &[String], status: &str| all.iter().filter(|s| *s == status).count();
    let all = statuses(&http, &setup).await;
    assert_eq!(all.len(), 24);
    // Three holds, and the asynchronous payment's ticket until its bank settles.
    let settled = count(&all, "SOLD") - 8;
    assert_eq!(count(&all, "RESERVED"), 4 - settled, "{all:?}");
    // The fake provider's bank settles the asynchronous payment through the webhook route.
    let started = Instant::now();
    while count(&statuses(&http, &setup).await, "SOLD") < 9 {
        assert!(started.elapsed() < Duration::from_secs(30), "the asynchronous payment never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    terminate(child).await;
    assert!(Path::new(&setup.home.path().join("nats")).is_dir(), "NATS data lives under TICKETING_HOME");

    // The next `up` resumes with everything.
    let mut child = up(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let all = statuses(&http, &setup).await;
    assert_eq!((all.len(), count(&all, "SOLD"), count(&all, "RESERVED")), (24, 9, 3), "{all:?}");
    terminate(child).await;
}

/// Signs up and lists a ticket through the API; returns the ticket's id.
async fn list_a_ticket(http: &reqwest::Client, setup: &Setup) -> String {
    let url = format!("http://{}/graphql", setup.http_addr);
    let signed_up = http
        .post(&url)
        .json(
            &json!({"query": r#"mutation { signUp(email: "own-pg@example.com", password: "correct horse") { id } }"#}),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cookie = signed_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("session=").map(str::to_owned))
        .next()
        .unwrap_or_else(|| panic!("no session cookie"));
    let listed =
        gql(http, setup, r#"mutation { createTicket(title: "Kept", priceCents: 1200) { id } }"#, Some(&cookie)).await;
    listed["data"]["createTicket"]["id"].as_str().unwrap_or_else(|| panic!("{listed}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_database_url_up_runs_its_own_postgresql_under_its_home_and_keeps_the_data() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pg_port = free_port();
    let setup = Setup::new(Err(pg_port));
    let http = reqwest::Client::new();

    let mut child = up(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let data = setup.home.path().join("postgres");
    assert!(data.join("PG_VERSION").is_file(), "PostgreSQL's data lives under TICKETING_HOME/postgres");
    let own = format!("postgres://postgres@127.0.0.1:{pg_port}/ticketing");
    let mut conn = sqlx::PgConnection::connect(&own).await.unwrap_or_else(|e| panic!("its own PostgreSQL: {e}"));
    let id = list_a_ticket(&http, &setup).await;
    let stored: String = sqlx::query_scalar("SELECT title FROM read.tickets WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the read models are in its own PostgreSQL: {e}"));
    assert_eq!(stored, "Kept");
    let cluster = cluster_id(&mut conn).await;
    drop(conn);
    terminate(child).await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", pg_port)).await.is_err(), "its PostgreSQL stopped with it");

    // The next `up` starts the same server on the same data.
    let mut child = up(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let all = statuses(&http, &setup).await;
    assert_eq!(all, ["AVAILABLE"], "the ticket listed before the restart");
    let mut conn = sqlx::PgConnection::connect(&own).await.unwrap_or_else(|e| panic!("its own PostgreSQL: {e}"));
    assert_eq!(cluster_id(&mut conn).await, cluster, "the same cluster, not a new one");
    drop(conn);
    terminate(child).await;
}

/// What identifies a PostgreSQL cluster for its life: a fresh `initdb` makes another.
async fn cluster_id(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_postgresql_cannot_start_up_stops_with_one_line_naming_the_cause() {
    // The port its PostgreSQL would use is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let setup = Setup::new(Err(port));
    let run = up_command(&setup).env("RUST_BACKTRACE", "1").stderr(Stdio::piped()).output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("ticketing up did not stop"))
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "up went on without its PostgreSQL: {said}");
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.contains("could not start PostgreSQL") && last.contains(&format!("port {port} is already taken")),
        "the last line names the cause and the fix: {said}"
    );
    assert!(!said.contains("ready in") && !said.contains("stack backtrace"), "{said}");
    assert!(said.lines().filter(|l| l.contains("PostgreSQL")).all(|l| l.starts_with("ticketing: ")), "{said}");
    drop(taken);
}

/// What `up` says on its standard error when it stops by itself within 90 s.
async fn stopped_saying(mut command: Command) -> (std::process::ExitStatus, String) {
    let run = command.env("RUST_BACKTRACE", "1").stderr(Stdio::piped()).output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("ticketing up did not stop"))
        .unwrap_or_else(|e| panic!("{e}"));
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_address_that_is_taken_or_a_bad_setting_stops_up_with_one_line() {
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    // HEALTH_ADDR taken: not ignored, not half started.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(Ok(db.url.clone()));
    let mut command = up_command(&setup);
    command.env("HEALTH_ADDR", addr.to_string());
    let (status, said) = stopped_saying(command).await;
    assert!(!status.success(), "{said}");
    assert_eq!(said.lines().count(), 1, "nothing started before: {said}");
    assert!(said.starts_with(&format!("ticketing: binding HEALTH_ADDR {addr}")), "{said}");
    drop(taken);

    // A bad value: one line naming the setting, no usage text, no backtrace.
    let mut command = up_command(&setup);
    command.env("PROJECTOR_BATCH_MAX", "0");
    let (status, said) = stopped_saying(command).await;
    assert_eq!(status.code(), Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("ticketing: bad configuration: ") && said.contains("PROJECTOR_BATCH_MAX"), "{said}");

    // The same for a component run alone.
    let mut command = Command::new(BINARY);
    command.arg("command-service").env("ORDER_HOLD_SECONDS", "0").kill_on_drop(true);
    let (status, said) = stopped_saying(command).await;
    assert_eq!(status.code(), Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("bad configuration: ") && said.contains("ORDER_HOLD_SECONDS"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_honours_the_stream_settings_and_serves_probes_and_metrics_on_health_addr() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let setup = Setup::new(Ok(db.url.clone()));
    let health = format!("127.0.0.1:{}", free_port());
    let mut command = up_command(&setup);
    command
        .env("STREAM_NAME", "SHOWTIME")
        .env("SUBJECT_ROOT", "showtime")
        .env("PROJECTOR_BATCH_MAX", "7")
        .env("HEALTH_ADDR", &health)
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{e}"));
    let said = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("no stderr"))).lines();
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = said.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
            }
        });
        said
    };
    let http = reqwest::Client::new();
    wait_ready(&http, &setup, &mut child).await;
    let lines = said.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n");
    assert!(lines.contains("streams SHOWTIME and SHOWTIME_TIMERS"), "{lines}");
    assert!(lines.contains("at most 7 events per transaction"), "{lines}");
    let ticket = list_a_ticket(&http, &setup).await;
    assert!(!ticket.is_empty());

    // The events went to the stream the settings name, under its subject root.
    let operator = std::fs::read_to_string(setup.home.path().join("nats-operator")).unwrap_or_else(|e| panic!("{e}"));
    let client = async_nats::ConnectOptions::with_user_and_password("operator".into(), operator.trim().into())
        .connect(format!("127.0.0.1:{}", setup.nats_port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("SHOWTIME").await.unwrap_or_else(|e| panic!("{e}"));
    let info = stream.info().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(info.config.subjects.iter().all(|s| s.starts_with("showtime.")), "{:?}", info.config.subjects);
    assert!(info.state.messages > 0);
    assert!(js.get_stream("TICKETING").await.is_err(), "nothing in the default stream");

    // Probes and metrics on HEALTH_ADDR (every component's: they share the process).
    let readyz = http.get(format!("http://{health}/readyz")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(readyz.status().is_success());
    let metrics = http.get(format!("http://{health}/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let text = metrics.text().await.unwrap_or_default();
    for name in [
        "ticketing_command_seconds_bucket",
        "ticketing_projector_batch_events_bucket",
        "ticketing_graphql_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    terminate(child).await;
}

/// `up` for a load test: listings are not limited per minute.
fn up_for_load(setup: &Setup) -> Child {
    up_command(setup)
        .env("CREATE_TICKET_PER_MINUTE", "0")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {BINARY}: {e}"))
}

/// A seller's session cookie on `setup`'s `up`.
async fn seller(http: &reqwest::Client, setup: &Setup, email: &str) -> String {
    let url = format!("http://{}/graphql", setup.http_addr);
    let query = format!(r#"mutation {{ signUp(email: "{email}", password: "correct horse") {{ id }} }}"#);
    let signed_up = http.post(&url).json(&json!({ "query": query })).send().await.unwrap_or_else(|e| panic!("{e}"));
    signed_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix("session=").map(str::to_owned))
        .next()
        .unwrap_or_else(|| panic!("no session cookie"))
}

/// Listings made by 8 writers until `stop` is set; answers the ids whose `createTicket` was
/// acknowledged (failures while a server is down are expected and not counted).
fn load(
    http: &reqwest::Client,
    setup: &Setup,
    cookie: &str,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..8)
        .map(|writer| {
            let (http, url, cookie, stop) =
                (http.clone(), format!("http://{}/graphql", setup.http_addr), cookie.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let query = format!(
                        r#"mutation {{ createTicket(title: "Load {writer}-{n}", priceCents: 1000) {{ id }} }}"#
                    );
                    let sent = http
                        .post(&url)
                        .header("cookie", format!("session={cookie}"))
                        .json(&json!({ "query": query }))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let Ok(response) = sent else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let body: Value = response.json().await.unwrap_or_default();
                    match body["data"]["createTicket"]["id"].as_str() {
                        Some(id) if body["errors"].is_null() => acknowledged.push(id.to_owned()),
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                acknowledged
            })
        })
        .collect()
}

async fn acknowledged(writers: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<String> {
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.unwrap_or_else(|e| panic!("{e}")));
    }
    ids
}

/// Every id of `ids` is a ticket `up` answers for.
async fn all_there(http: &reqwest::Client, setup: &Setup, ids: &[String]) {
    let own = setup.database.clone().unwrap_or_else(|port| format!("postgres://postgres@127.0.0.1:{port}/ticketing"));
    let mut conn = sqlx::PgConnection::connect(&own).await.unwrap_or_else(|e| panic!("{e}"));
    // Ready means following the stream, not caught up with it: wait (boundedly) until it has.
    let started = Instant::now();
    loop {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM read.tickets WHERE id = ANY($1::uuid[])")
            .bind(ids)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if found == i64::try_from(ids.len()).unwrap_or(-1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{found} of {} acknowledged listings in the read models",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let some = &ids[ids.len() / 2];
    let body = gql(http, setup, &format!(r#"{{ ticket(id: "{some}") {{ id }} }}"#), None).await;
    assert_eq!(body["data"]["ticket"]["id"].as_str(), Some(some.as_str()), "{body}");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

fn pid_in(file: &Path) -> u32 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no pid in {}", file.display()))
}

async fn gone_within(pid: u32, what: &str, patience: Duration) {
    let started = Instant::now();
    while alive(pid) {
        assert!(started.elapsed() < patience, "{what} (pid {pid}) outlived ticketing up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long `up` takes to answer `/readyz` with 200 again.
async fn ready_again(http: &reqwest::Client, setup: &Setup, child: &mut Child) -> Duration {
    let started = Instant::now();
    wait_ready(http, setup, child).await;
    started.elapsed()
}

/// `ticketing up` killed outright (SIGKILL, as the out-of-memory killer does) under load takes
/// its NATS and PostgreSQL with it; a crash's lock file naming a pid that is now someone else's
/// does not stop the next start; the next `up` starts, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_up_takes_its_servers_along_and_the_next_one_starts_with_every_write() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setup = Setup::new(Err(free_port()));
    let http = reqwest::Client::new();
    let mut child = up_for_load(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let (nats_pid, pg_pid) =
        (pid_in(&setup.home.path().join("nats.pid")), pid_in(&setup.home.path().join("postgres/postmaster.pid")));
    let cookie = seller(&http, &setup, "killed@example.com").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = load(&http, &setup, &cookie, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.start_kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait().await;
    gone_within(nats_pid, "its NATS server", Duration::from_secs(5)).await;
    gone_within(pg_pid, "its PostgreSQL", Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ids = acknowledged(writers).await;
    assert!(ids.len() > 10, "the load wrote too little to tell: {}", ids.len());

    // The crash left postmaster.pid behind; make its pid a live process that is not PostgreSQL
    // (as after a reboot), which PostgreSQL alone would refuse to start over.
    let lock = setup.home.path().join("postgres/postmaster.pid");
    let text = std::fs::read_to_string(&lock).unwrap_or_else(|e| panic!("a crash leaves the lock file: {e}"));
    let rest: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&lock, format!("{}\n{}\n", std::process::id(), rest.join("\n"))).unwrap_or_else(|e| panic!("{e}"));
    // And a NATS pid file naming a live process that is not NATS: it must not be stopped.
    std::fs::write(setup.home.path().join("nats.pid"), format!("{}\n", std::process::id()))
        .unwrap_or_else(|e| panic!("{e}"));
    // A second `up` with the same home while one runs is refused with one line.

    let mut child = up_for_load(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let (status, said) = stopped_saying(up_command(&setup)).await;
    assert!(!status.success() && said.contains("another ticketing up runs"), "{status}: {said}");
    all_there(&http, &setup, &ids).await;
    terminate(child).await;
}

/// Its NATS killed under load, then its PostgreSQL: `up` starts each again, is ready again within
/// 10 s each time, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nats_or_postgresql_is_started_again_and_up_is_ready_within_ten_seconds() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setup = Setup::new(Err(free_port()));
    let http = reqwest::Client::new();
    let mut child = up_for_load(&setup);
    wait_ready(&http, &setup, &mut child).await;
    let cookie = seller(&http, &setup, "crashes@example.com").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = load(&http, &setup, &cookie, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (what, pid_file) in [("NATS", "nats.pid"), ("PostgreSQL", "postgres/postmaster.pid")] {
        let pid = pid_in(&setup.home.path().join(pid_file));
        let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().await;
        assert!(killed.is_ok_and(|s| s.success()), "kill {what}");
        let killed_at = Instant::now();
        gone_within(pid, what, Duration::from_secs(5)).await;
        // Ready again (`/readyz` 200) with a new server of that kind, within 10 s of the kill.
        let new_pid = loop {
            let new = std::fs::read_to_string(setup.home.path().join(pid_file))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
                .filter(|new| *new != pid && alive(*new));
            if let Some(new) = new {
                ready_again(&http, &setup, &mut child).await;
                break new;
            }
            assert!(killed_at.elapsed() < Duration::from_secs(10), "{what} was not started again within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let took = killed_at.elapsed();
        assert!(took < Duration::from_secs(10), "{what}: ready again only after {took:?}");
        eprintln!("{what} killed: ready again after {took:?}");
        assert_ne!(new_pid, pid);
        // Writes go through again.
        let body =
            gql(&http, &setup, r#"mutation { createTicket(title: "After", priceCents: 100) { id } }"#, Some(&cookie))
                .await;
        assert!(body["errors"].is_null(), "{what}: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ids = acknowledged(writers).await;
    assert!(ids.len() > 10, "the load wrote too little to tell: {}", ids.len());
    all_there(&http, &setup, &ids).await;
    terminate(child).await;
}
