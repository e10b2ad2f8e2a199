//! Shared by the multi-process tests: component processes run from the `ticketing` binary, and
//! a client that fails over between gateways like a load balancer.
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const BINARY: &str = env!("CARGO_BIN_EXE_ticketing");

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// One component process.
pub struct Process {
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub child: Option<Child>,
}

impl Process {
    pub fn start(args: &[&str], env: Vec<(String, String)>) -> Self {
        let mut process = Self { args: args.iter().map(|a| (*a).to_owned()).collect(), env, child: None };
        process.spawn();
        process
    }

    pub fn spawn(&mut self) {
        let child = Command::new(BINARY)
            .args(&self.args)
            // Every test client comes from one loopback address: the per-client limits on sign-ups
            // and listings are the abuse suite's subject, not these tests'.
            .env("SIGNUP_PER_MINUTE_PER_CLIENT", "0")
            .env("CREATE_TICKET_PER_MINUTE", "0")
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            // Logs go to stdout: shown with a failing test.
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BINARY} {:?}: {e}", self.args));
        self.child = Some(child);
    }

    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// A browser-like client that keeps its cookie and, like a load balancer, goes to the next
/// gateway when one does not answer.
pub struct User {
    pub http: reqwest::Client,
    pub cookie: Option<String>,
}

impl User {
    pub fn new() -> Self {
        Self { http: reqwest::Client::builder().build().unwrap_or_else(|e| panic!("{e}")), cookie: None }
    }

    /// One attempt at one gateway: the data, a GraphQL error code, or `None` (no answer).
    pub async fn try_once(&mut self, gateway: &str, query: &str, variables: &Value) -> Option<Result<Value, String>> {
        let mut request = self
            .http
            .post(format!("http://{gateway}/graphql"))
            .timeout(Duration::from_secs(10))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("session={cookie}"));
        }
        let response = request.send().await.ok()?;
        for value in response.headers().get_all("set-cookie") {
            if let Some(token) =
                value.to_str().unwrap_or_default().split(';').next().and_then(|kv| kv.strip_prefix("session="))
            {
                self.cookie = Some(token.to_owned());
            }
        }
        let body: Value = response.json().await.ok()?;
        match body["errors"][0]["extensions"]["code"].as_str() {
            None => Some(Ok(body["data"].clone())),
            Some("INTERNAL_SERVER_ERROR") => None,
            Some(code) => Some(Err(code.to_owned())),
        }
    }

    /// Tries the gateways in turn until one answers (30 s at most).
    pub async fn call(&mut self, gateways: &[&str], query: &str, variables: Value) -> Result<Value, String> {
        let started = Instant::now();
        loop {
            for gateway in gateways {
                if let Some(answer) = self.try_once(gateway, query, &variables).await {
                    return answer;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("no gateway answered within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

pub async fn wait_ready(http: &reqwest::Client, gateway: &str) {
    let started = Instant::now();
    let mut last;
    loop {
        match http.get(format!("http://{gateway}/readyz")).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => last = format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
            Err(error) => last = error.to_string(),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{gateway} not ready within 60 s (last: {last})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each service's `NATS_URL` on a cluster that requires credentials.
pub struct RoleUrls {
    /// command-service's.
    pub commands: String,
    /// projector's.
    pub projector: String,
    /// query-service's.
    pub gateway: String,
}

/// A NATS cluster with authentication and per-service permissions on, as deployed: each service
/// gets its own user ([`RoleUrls`]); `cluster.url()` carries the harness's own user, which may do
/// anything (to check the stream from outside every service).
pub async fn secured_cluster(size: usize) -> (testkit::NatsCluster, RoleUrls) {
    use event_store::auth::{self, Role};
    let secret = || uuid::Uuid::new_v4().simple().to_string();
    let passwords = [secret(), secret(), secret()];
    let harness = secret();
    let authorization =
        auth::authorization(&event_store::StreamSettings::default(), &passwords, &[("harness", harness.as_str())]);
    let cluster = testkit::NatsCluster::start_secured(size, &authorization, "harness", &harness)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let url = |n: usize| auth::url_with_credentials(&cluster.bare_url(), Role::ALL[n].user(), &passwords[n]);
    let urls = RoleUrls { commands: url(0), projector: url(1), gateway: url(2) };
    (cluster, urls)
}
