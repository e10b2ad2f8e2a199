//! Scale-out on one machine: a 3-node NATS cluster (streams with 3 replicas), two command
//! services, two projectors and two gateways as separate processes on loopback, all run from the
//! `ticketing` binary. The whole flow works through either gateway; after SIGKILL of one process of
//! each kind and of one NATS node it still works, and every acknowledged mutation is there.

mod common;

use common::{Process, User, free_port, wait_ready};
use serde_json::json;

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse battery\") { id } }";
const CREATE: &str = "mutation($t: String!) { createTicket(title: $t, priceCents: 2500) { id } }";
// Holds and payments carry idempotency keys, so a retry after a lost answer is safe.
const HOLD: &str = "mutation($t: ID!, $k: String!) { createOrder(ticketId: $t, idempotencyKey: $k) { id status } }";
const PAY: &str =
    "mutation($o: ID!, $k: String!) { payOrder(orderId: $o, token: \"tok_visa\", idempotencyKey: $k) { status } }";
const TICKET: &str = "query($t: ID!) { ticket(id: $t) { title status } }";

/// Lists a ticket, holds it as `buyer` and pays: each step through the gateway given.
async fn sale(seller: &mut User, buyer: &mut User, via: [&[&str]; 3], title: &str) -> String {
    let ticket = seller.call(via[0], CREATE, json!({"t": title})).await.unwrap_or_else(|e| panic!("listing: {e}"));
    let ticket = ticket["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let order = buyer
        .call(via[1], HOLD, json!({"t": ticket, "k": format!("hold-{title}")}))
        .await
        .unwrap_or_else(|e| panic!("holding: {e}"));
    let order = order["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
    let paid = buyer
        .call(via[2], PAY, json!({"o": order, "k": format!("pay-{title}")}))
        .await
        .unwrap_or_else(|e| panic!("paying: {e}"));
    assert_eq!(paid["payOrder"]["status"], "SUCCEEDED");
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nats_nodes_and_two_of_each_service_survive_a_kill_of_one_of_each() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Authentication and per-service permissions on, as deployed.
    let (mut cluster, urls) = common::secured_cluster(3).await;
    let db = testkit::postgres().await.unwrap_or_else(|e| panic!("{e:#}"));
    let web = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = |extra: &[(&str, String)]| {
        let mut env = vec![
            ("NATS_URL".to_owned(), cluster.url()),
            ("STREAM_REPLICAS".to_owned(), "3".to_owned()),
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("JWT_SECRET".to_owned(), "scale-out-secret-scale-out-secret-0123".to_owned()),
            ("COOKIE_SECURE".to_owned(), "false".to_owned()),
            ("WEB_DIR".to_owned(), web.path().display().to_string()),
            ("ORDER_HOLD_SECONDS".to_owned(), "600".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let (a, b) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let http = reqwest::Client::builder().build().unwrap_or_else(|e| panic!("{e}"));
    // One of each also answers health probes, as in Kubernetes.
    let command_health = format!("127.0.0.1:{}", free_port());
    let projector_health = format!("127.0.0.1:{}", free_port());
    // The other's metrics: a command goes to either one (a queue group).
    let other_command_health = format!("127.0.0.1:{}", free_port());
    let mut commands = [
        Process::start(
            &["command-service"],
            env(&[("HEALTH_ADDR", command_health.clone()), ("NATS_URL", urls.commands.clone())]),
        ),
        Process::start(
            &["command-service"],
            env(&[("HEALTH_ADDR", other_command_health.clone()), ("NATS_URL", urls.commands.clone())]),
        ),
    ];
    let mut projectors = [
        Process::start(
            &["projector"],
            env(&[("HEALTH_ADDR", projector_health.clone()), ("NATS_URL", urls.projector.clone())]),
        ),
        Process::start(&["projector"], env(&[("NATS_URL", urls.projector.clone())])),
    ];
    let mut gateways = [
        Process::start(&["query-service"], env(&[("HTTP_ADDR", a.clone()), ("NATS_URL", urls.gateway.clone())])),
        Process::start(&["query-service"], env(&[("HTTP_ADDR", b.clone()), ("NATS_URL", urls.gateway.clone())])),
    ];
    for ready in [&a, &b, &command_health, &other_command_health, &projector_health] {
        wait_ready(&http, ready).await;
    }

    // The whole flow works through either gateway, a session from one is valid on the other.
    let (mut seller, mut buyer) = (User::new(), User::new());
    seller.call(&[&a], SIGN_UP, json!({"e": "seller@example.com"})).await.unwrap_or_else(|e| panic!("{e}"));
    buyer.call(&[&b], SIGN_UP, json!({"e": "buyer@example.com"})).await.unwrap_or_else(|e| panic!("{e}"));
    let mut sold = vec![sale(&mut seller, &mut buyer, [&[&a], &[&b], &[&a]], "Before the faults").await];
    for gateway in [&a, &b] {
        let seen = buyer.call(&[gateway], TICKET, json!({"t": sold[0]})).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen["ticket"]["status"], "SOLD", "through {gateway}");
    }
    // Every process has its metrics, histograms included: the command service on its health port
    // (the sale's commands and appends), the projector on its own (leading or standby), the
    // gateway on its HTTP port (GraphQL latency, the read-your-writes wait).
    let scrape = |addr: String| {
        let http = http.clone();
        async move {
            let response = http.get(format!("http://{addr}/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
            response.text().await.unwrap_or_default()
        }
    };
    let commands_text = scrape(command_health.clone()).await + &scrape(other_command_health.clone()).await;
    let projector_text = scrape(projector_health.clone()).await;
    let gateway_text = scrape(a.clone()).await;
    for (text, name) in [
        (&commands_text, "ticketing_command_seconds_bucket{command=\"createOrder\",outcome=\"ok\""),
        (&commands_text, "ticketing_append_seconds_bucket{outcome=\"ok\""),
        (&commands_text, "ticketing_timer_backlog{timer=\"reconcile\"}"),
        (&projector_text, "ticketing_projector_leading "),
        (&gateway_text, "ticketing_graphql_seconds_bucket{outcome=\"ok\""),
        (&gateway_text, "ticketing_read_your_writes_wait_seconds_bucket{outcome=\"projected\""),
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }

    // Kill -9 one process of each kind and one NATS node, with listings going on.
    let mut listed = Vec::new();
    let both: &[&str] = &[&a, &b];
    for round in 0..12 {
        match round {
            2 => commands[0].kill().await,
            4 => projectors[0].kill().await,
            6 => gateways[0].kill().await,
            8 => cluster.kill(0).await,
            _ => {}
        }
        let title = format!("Listed in round {round}");
        if let Ok(data) = seller.call(both, CREATE, json!({"t": title})).await {
            listed.push((data["createTicket"]["id"].as_str().unwrap_or_default().to_owned(), title));
        }
    }
    // Still works end to end through what is left.
    let survivors: &[&str] = &[&b];
    sold.push(sale(&mut seller, &mut buyer, [survivors, survivors, survivors], "After the faults").await);

    // Nothing acknowledged is lost: every acknowledged listing and sale is there.
    assert!(listed.len() >= 10, "only {} of 12 listings were acknowledged", listed.len());
    eprintln!(
        "scale-out: {} of 12 listings acknowledged across 4 kills; {} sales; checking all",
        listed.len(),
        sold.len()
    );
    let check = |user: &mut User, gateway: String, listed: Vec<(String, String)>, sold: Vec<String>| {
        let user = std::mem::replace(user, User::new());
        async move {
            let mut user = user;
            for (id, title) in &listed {
                let seen = user.call(&[&gateway], TICKET, json!({"t": id})).await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(seen["ticket"]["title"], title.as_str(), "{id} through {gateway}");
            }
            for id in &sold {
                let seen = user.call(&[&gateway], TICKET, json!({"t": id})).await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(seen["ticket"]["status"], "SOLD", "{id} through {gateway}");
            }
            user
        }
    };
    buyer = check(&mut buyer, b.clone(), listed.clone(), sold.clone()).await;

    // The killed ones come back and agree.
    cluster.restart(0).await.unwrap_or_else(|e| panic!("{e:#}"));
    gateways[0].spawn();
    commands[0].spawn();
    projectors[0].spawn();
    wait_ready(&http, &a).await;
    let _buyer = check(&mut buyer, a.clone(), listed, sold).await;
}
