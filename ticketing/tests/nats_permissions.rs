//! NATS is the trust boundary (a command carries its actor): with authentication and
//! per-service permissions on, as `ticketing up`, the multi-process tests and the manifests run
//! it, a connection without credentials is refused, only gateways send commands, only the
//! command service writes events, projectors only read, and no service reads another's replies.

use std::time::Duration;

use event_store::auth::Role;
use futures::StreamExt;

mod common;

/// A client of `url`, with the server's complaints (permission violations) on a channel.
async fn client(url: &str, name: &str) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (options, servers) = event_store::connect_options(url, name).unwrap_or_else(|e| panic!("{e:#}"));
    let client = options
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = tx.send(error.to_string());
                }
            }
        })
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (client, rx)
}

async fn violation(complaints: &mut tokio::sync::mpsc::UnboundedReceiver<String>, what: &str) -> String {
    let complaint = tokio::time::timeout(Duration::from_secs(5), complaints.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no permissions violation within 5 s"))
        .unwrap_or_default();
    assert!(complaint.to_lowercase().contains("permission"), "{what}: {complaint}");
    complaint
}

#[tokio::test]
async fn each_service_may_do_only_its_own_part() {
    let (cluster, urls) = common::secured_cluster(3).await;

    // Without credentials, or with a wrong password: refused.
    let anonymous = async_nats::ConnectOptions::new().connect(cluster.bare_url()).await;
    assert!(anonymous.is_err(), "a connection without credentials was accepted");
    let wrong = event_store::auth::url_with_credentials(&cluster.bare_url(), "query-service", "guess");
    let (options, servers) = event_store::connect_options(&wrong, "query-service").unwrap_or_else(|e| panic!("{e:#}"));
    assert!(options.connect(servers).await.is_err(), "a wrong password was accepted");

    // The harness watches everything.
    let (harness, _) = client(&cluster.url(), "harness").await;
    let mut events = harness.subscribe("ticketing.>").await.unwrap_or_else(|e| panic!("{e}"));
    harness.flush().await.unwrap_or_else(|e| panic!("{e}"));

    // A gateway may send commands, but not write an event.
    let (gateway, mut gateway_complaints) = client(&urls.gateway, Role::Gateway.user()).await;
    gateway.publish("ticketing.cmd.signUp", "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
    gateway.publish("ticketing.ticket.forged", "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
    gateway.flush().await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut gateway_complaints, "a gateway publishing an event").await;
    let first = tokio::time::timeout(Duration::from_secs(2), events.next()).await.ok().flatten();
    assert_eq!(first.map(|m| m.subject.to_string()).as_deref(), Some("ticketing.cmd.signUp"));
    let forged = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(forged.is_err(), "a gateway's forged event arrived: {forged:?}");

    // A gateway may not listen to commands or read another service's replies.
    let _commands = gateway.subscribe("ticketing.cmd.>").await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut gateway_complaints, "a gateway subscribing to commands").await;
    let _replies = gateway.subscribe("_INBOX_command-service.>").await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut gateway_complaints, "a gateway reading the command service's replies").await;

    // A projector may neither send a command (as any user, even an admin) nor change the stream.
    let (projector, mut projector_complaints) = client(&urls.projector, Role::Projector.user()).await;
    let forged_admin = r#"{"command":{"type":"createTicket","title":"x","priceCents":1},"actor":{"id":"00000000-0000-0000-0000-000000000000","is_admin":true}}"#;
    projector.publish("ticketing.cmd.createTicket", forged_admin.into()).await.unwrap_or_else(|e| panic!("{e}"));
    projector.flush().await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut projector_complaints, "a projector sending a command").await;
    projector.publish("$JS.API.STREAM.DELETE.TICKETING", "".into()).await.unwrap_or_else(|e| panic!("{e}"));
    projector.flush().await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut projector_complaints, "a projector deleting the stream").await;
    let sent = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(sent.is_err(), "a projector's command arrived: {sent:?}");

    // Nor touch the command service's consumers, or make one of another name.
    let (harness_store, _) = client(&cluster.url(), "harness").await;
    let store = event_store::EventStore::connect(harness_store, &event_store::StreamSettings::default())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let js = async_nats::jetstream::new(store.client().clone());
    let stream = js.get_stream("TICKETING").await.unwrap_or_else(|e| panic!("{e}"));
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("command-service-timers".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for subject in [
        "$JS.API.CONSUMER.MSG.NEXT.TICKETING.command-service-timers",
        "$JS.API.CONSUMER.DELETE.TICKETING.command-service-timers",
        "$JS.API.CONSUMER.CREATE.TICKETING.command-service-timers",
        "$JS.API.CONSUMER.CREATE.TICKETING.other",
        "$JS.API.CONSUMER.CREATE.TICKETING",
    ] {
        projector.publish(subject, "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
        projector.flush().await.unwrap_or_else(|e| panic!("{e}"));
        violation(&mut projector_complaints, &format!("a projector publishing to {subject}")).await;
    }

    // A gateway may not write key-value entries or purge a stream.
    for subject in ["$KV.TICKETING_SIGNIN_FAILURES.email.x", "$JS.API.STREAM.PURGE.TICKETING"] {
        gateway.publish(subject, "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
        gateway.flush().await.unwrap_or_else(|e| panic!("{e}"));
        violation(&mut gateway_complaints, &format!("a gateway publishing to {subject}")).await;
    }

    // The command service may write events but not send commands.
    let (commands, mut command_complaints) = client(&urls.commands, Role::CommandService.user()).await;
    commands.publish("ticketing.cmd.signUp", "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
    commands.flush().await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut command_complaints, "the command service sending a command").await;

    // And it answers in inboxes only: a gateway cannot have it write where it may (an event).
    let config = command_service::config::Config::with_nats_url(&urls.commands);
    let service = command_service::Service::connect(config, commands, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    let requests = service.subscribe().await.unwrap_or_else(|e| panic!("{e:#}"));
    tokio::spawn(service.serve_subscription(requests));
    let body = r#"{"command":{"type":"signUp","email":"x","password":"y"}}"#;
    let answered = gateway.request("ticketing.cmd.signUp", body.into()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&answered.payload).contains("BAD_USER_INPUT"), "{answered:?}");
    let mut forged_events = harness.subscribe("ticketing.account.>").await.unwrap_or_else(|e| panic!("{e}"));
    harness.flush().await.unwrap_or_else(|e| panic!("{e}"));
    gateway
        .publish_with_reply("ticketing.cmd.signUp", "ticketing.account.forged", body.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    gateway.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let relayed = tokio::time::timeout(Duration::from_secs(1), forged_events.next()).await;
    assert!(relayed.is_err(), "the command service wrote its answer where a gateway told it to: {relayed:?}");
}
