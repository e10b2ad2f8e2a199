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

    // The command service may write events but not send commands.
    let (commands, mut command_complaints) = client(&urls.commands, Role::CommandService.user()).await;
    commands.publish("ticketing.cmd.signUp", "{}".into()).await.unwrap_or_else(|e| panic!("{e}"));
    commands.flush().await.unwrap_or_else(|e| panic!("{e}"));
    violation(&mut command_complaints, "the command service sending a command").await;
}
