//! One operation, one trace across the processes: the real binaries (gateway, command service,
//! projector) export spans over OTLP/HTTP to a small receiver in the test, and one hold's
//! `createOrder` yields connected spans from all three (one trace id; the command's span a child
//! of the gateway's, the projector's commit in the same trace).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Process, User, free_port, wait_ready};

/// One exported span: its service, name, trace, own and parent ids.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    /// Its string attributes.
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP receiver (JSON) on a loopback port; every span it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let export: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut spans = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    let service = resource["resource"]["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "service.name")
                        .and_then(|a| a["value"]["stringValue"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let text = |k: &str| span[k].as_str().unwrap_or_default().to_owned();
                            spans.push(Span {
                                service: service.clone(),
                                name: text("name"),
                                trace: text("traceId"),
                                id: text("spanId"),
                                parent: text("parentSpanId"),
                                attributes: span["attributes"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|a| {
                                        Some((
                                            a["key"].as_str()?.to_owned(),
                                            a["value"]["stringValue"].as_str()?.to_owned(),
                                        ))
                                    })
                                    .collect(),
                            });
                        }
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hold_is_one_trace_through_gateway_command_service_and_projector() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = testkit::nats().await.unwrap_or_else(|e| panic!("{e:#}"));
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let web = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (endpoint, spans) = receiver().await;
    let gateway = format!("127.0.0.1:{}", free_port());
    let env = |extra: &[(&str, String)]| {
        let mut env = vec![
            ("NATS_URL".to_owned(), nats.url.clone()),
            ("STREAM_NAME".to_owned(), nats.stream.clone()),
            ("SUBJECT_ROOT".to_owned(), nats.root.clone()),
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("JWT_SECRET".to_owned(), "traces-secret-traces-secret-0123456789".to_owned()),
            ("COOKIE_SECURE".to_owned(), "false".to_owned()),
            ("WEB_DIR".to_owned(), web.path().display().to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint.clone()),
            // Exported within a quarter of a second, not the default five.
            ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "250".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    // The command service logs JSON lines (LOG_FORMAT=json), read here.
    let mut commands = tokio::process::Command::new(env!("CARGO_BIN_EXE_ticketing"))
        .arg("command-service")
        .envs(env(&[("LOG_FORMAT", "json".to_owned()), ("RUST_LOG", "info".to_owned())]))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut log = {
        use tokio::io::AsyncBufReadExt;
        tokio::io::BufReader::new(commands.stdout.take().unwrap_or_else(|| panic!("no stdout"))).lines()
    };
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = log.next_line().await {
            let parsed: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if parsed["fields"]["message"] == "command-service ready" {
                return parsed;
            }
        }
        panic!("the command service's log ended before it was ready");
    })
    .await
    .unwrap_or_else(|_| panic!("no JSON log line saying the command service is ready"));
    assert_eq!(ready["level"], "INFO", "{ready}");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let _projector = Process::start(&["projector"], env(&[]));
    let _gateway = Process::start(&["query-service"], env(&[("HTTP_ADDR", gateway.clone())]));
    let http = reqwest::Client::new();
    wait_ready(&http, &gateway).await;

    let (mut seller, mut buyer) = (User::new(), User::new());
    let sign_up = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";
    seller.call(&[&gateway], sign_up, json!({"e": "seller@example.com"})).await.unwrap_or_else(|e| panic!("{e}"));
    buyer.call(&[&gateway], sign_up, json!({"e": "buyer@example.com"})).await.unwrap_or_else(|e| panic!("{e}"));
    let listed = seller
        .call(&[&gateway], "mutation { createTicket(title: \"Traced\", priceCents: 500) { id } }", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ticket = listed["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let hold = "mutation Hold($t: ID!) { createOrder(ticketId: $t) { id status } }";
    let held = buyer
        .http
        .post(format!("http://{gateway}/graphql"))
        .header("cookie", format!("session={}", buyer.cookie.clone().unwrap_or_default()))
        .json(&json!({"query": hold, "operationName": "Hold", "variables": {"t": ticket}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json::<Value>()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = &held["data"];
    assert_eq!(held["createOrder"]["status"], "CREATED");

    // The hold's trace: the gateway's GraphQL span of `Hold`, the command service's `command`
    // span under it, and the projector's commit of the hold's events in the same trace.
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let seen = spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let by_trace = seen.iter().fold(BTreeMap::<&str, Vec<&Span>>::new(), |mut map, span| {
            map.entry(span.trace.as_str()).or_default().push(span);
            map
        });
        let hold_trace = by_trace.iter().find(|(_, spans)| {
            let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
            let graphql = spans.iter().find(|s| {
                s.service == "query-service"
                    && s.name == "graphql"
                    && s.attributes.get("operation").is_some_and(|o| o == "Hold")
            });
            let command_under_gateway = spans.iter().any(|s| {
                s.service == "command-service"
                    && s.name == "command"
                    && s.attributes.get("command").is_some_and(|c| c == "createOrder")
                    && spans.iter().any(|p| p.id == s.parent && p.service == "query-service")
            });
            graphql.is_some()
                && command_under_gateway
                && spans.iter().any(|s| s.service == "projector" && s.name == "projection commit")
                && services.len() == 3
                && spans.iter().any(|s| s.name == "append")
        });
        if let Some((trace, spans)) = hold_trace {
            break ((*trace).to_owned(), spans.iter().map(|s| format!("{}:{}", s.service, s.name)).collect::<Vec<_>>());
        }
        if Instant::now() > deadline {
            let summary: Vec<String> = seen
                .iter()
                .map(|s| {
                    format!(
                        "{} {} trace={} id={} parent={} {:?}",
                        s.service, s.name, s.trace, s.id, s.parent, s.attributes
                    )
                })
                .collect();
            panic!("no trace connects all three processes; spans seen:\n{}", summary.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("traces: {} spans in trace {}: {:?}", found.1.len(), found.0, found.1);
    assert_eq!(found.0.len(), 32, "a W3C trace id");
}
