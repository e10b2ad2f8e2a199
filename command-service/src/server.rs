//! Answering commands: a queue subscription on `ticketing.cmd.>`, one task per request.

use std::sync::Arc;

use bytes::Bytes;
use domain::ErrorCode;
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::api::{Command, Failure, QUEUE_GROUP, Reply, Request, Success};
use crate::{CommandError, ConnectError, Refused, Service};

/// Requests handled at once per replica; more wait in NATS.
const MAX_IN_FLIGHT: usize = 2048;

/// The reply sent when a reply cannot be encoded: the generic internal error, never an empty body.
const INTERNAL_REPLY: &[u8] = br#"{"error":{"code":"INTERNAL_SERVER_ERROR","message":"internal error"}}"#;

impl Service {
    /// Answers commands until the subscription ends.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn serve(self) -> anyhow::Result<()> {
        let requests = self.subscribe().await?;
        self.serve_subscription(requests).await
    }

    /// Answers commands until `shutdown` completes, then leaves gracefully: unsubscribes (so the
    /// server routes new commands to the other replicas), answers what was already delivered,
    /// and waits for every command in flight. No command delivered to this replica goes
    /// unanswered, which makes rolling restarts lossless.
    ///
    /// # Errors
    /// When the subscription fails.
    pub async fn serve_until(
        self,
        mut requests: async_nats::Subscriber,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                message = requests.next() => match message {
                    Some(message) => self.dispatch(message, &permits).await?,
                    None => anyhow::bail!("the command subscription ended"),
                },
                () = &mut shutdown => break,
            }
        }
        // Drain: the client unsubscribes, keeps delivering what the server routed here before it
        // processed that, and ends the subscription once the server confirms.
        requests.drain().await?;
        while let Ok(Some(message)) = tokio::time::timeout(std::time::Duration::from_secs(10), requests.next()).await {
            self.dispatch(message, &permits).await?;
        }
        let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
        let _drained = permits.acquire_many(all).await?;
        Ok(())
    }

    /// Joins the queue group on the command subjects; [`Service::serve_subscription`] answers.
    /// Split from [`Service::serve`] so a caller can know the subscription is in place.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn subscribe(&self) -> Result<async_nats::Subscriber, ConnectError> {
        let prefix = self.store().settings().wire_subject(domain::subjects::COMMAND_PREFIX);
        let client = self.store().client();
        let failed = |e: &dyn std::fmt::Display| ConnectError::Subscribe(e.to_string());
        let requests =
            client.queue_subscribe(format!("{prefix}.>"), QUEUE_GROUP.to_owned()).await.map_err(|e| failed(&e))?;
        // `flush` only writes the socket; a round trip on the same connection proves the server
        // has processed the subscription, so commands sent from now on find us.
        client.request("$JS.API.INFO", bytes::Bytes::new()).await.map_err(|e| failed(&e))?;
        Ok(requests)
    }

    /// Answers the commands arriving on a subscription until it ends.
    ///
    /// # Errors
    /// Only when the subscription ends.
    pub async fn serve_subscription(self, requests: async_nats::Subscriber) -> anyhow::Result<()> {
        self.serve_until(requests, std::future::pending()).await
    }

    /// Answers one request on a task of its own, holding a permit while it runs (to an inbox only).
    async fn dispatch(&self, message: async_nats::Message, permits: &Arc<Semaphore>) -> anyhow::Result<()> {
        let Some(reply_to) = message.reply.clone() else { return Ok(()) };
        // Answers go to inboxes only: a reply subject names where this service publishes, and it
        // may write events and key-value entries, so a caller must not choose one of those.
        if !is_inbox(&reply_to) {
            tracing::warn!(reply = %reply_to, "a command asked to be answered outside an inbox; ignored");
            return Ok(());
        }
        let permit = permits.clone().acquire_owned().await?;
        let subject = self.store().settings().domain_subject(&message.subject);
        let name = domain::subjects::command_name(&subject).map(str::to_owned);
        let service = self.clone();
        // A child of the sender's trace (its `traceparent`), when it sent one.
        let span = tracing::info_span!("command", command = name.as_deref().unwrap_or(""), otel.kind = "server");
        service_kit::telemetry::continue_trace(&span, message.headers.as_ref());
        let answering = async move {
            let reply = match name {
                Some(name) => service.answer(&name, &message.payload).await,
                None => {
                    Reply::Error(Failure::new(ErrorCode::BadUserInput, format!("not a command subject: {subject}")))
                }
            };
            let body = serde_json::to_vec(&reply).unwrap_or_else(|error| {
                tracing::error!(%error, "a reply could not be encoded; answering an internal error");
                INTERNAL_REPLY.to_vec()
            });
            match service.store().client().publish(reply_to, Bytes::from(body)).await {
                Ok(()) => {
                    service.inner.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(error) => tracing::warn!(%error, "could not send a reply"),
            }
            drop(permit);
        };
        tokio::spawn(tracing::Instrument::instrument(answering, span));
        Ok(())
    }

    /// Decodes, checks and handles one request.
    pub async fn answer(&self, name: &str, payload: &[u8]) -> Reply {
        let request: Request = match serde_json::from_slice(payload) {
            Ok(request) => request,
            Err(error) => {
                return Reply::Error(Failure::new(ErrorCode::BadUserInput, format!("malformed command: {error}")));
            }
        };
        if request.command.name() != name {
            return Reply::Error(Failure::new(
                ErrorCode::BadUserInput,
                format!("command {} sent to the subject for {name}", request.command.name()),
            ));
        }
        let correlation = request.correlation_id.clone().unwrap_or_default();
        let (command, started) = (request.command.name(), std::time::Instant::now());
        let result = self.handle(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CommandError::Refused { .. }) => "refused",
            Err(_) => "failed",
        };
        metrics::histogram!("ticketing_command_seconds", "command" => command, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(success) => Reply::Ok(success),
            Err(error) => {
                if !matches!(error, CommandError::Refused { .. }) {
                    tracing::error!(command = name, %correlation, %error, "command failed");
                }
                Reply::Error(error.to_failure())
            }
        }
    }

    /// Handles one decoded request in this process: what [`Self::answer`] does after decoding,
    /// with the error still typed (a refusal names its domain rule).
    ///
    /// # Errors
    /// When the command is refused ([`CommandError::Refused`]) or fails.
    pub async fn handle(&self, request: Request) -> Result<Success, CommandError> {
        let signed_in = || request.actor.ok_or(CommandError::refused(Refused::SignInRequired));
        let key = request.idempotency_key.as_deref();
        if key.is_some_and(|k| k.is_empty() || k.len() > 255) {
            return Err(Refused::IdempotencyKeyLength.into());
        }
        match &request.command {
            Command::SignUp { email, password, client_addr } => {
                self.sign_up(email, password, client_addr.as_deref()).await
            }
            Command::SignIn { email, password, client_addr } => {
                self.sign_in(email, password, client_addr.as_deref()).await
            }
            Command::SignOut { session_id, expires_at } => self.sign_out(signed_in()?, *session_id, *expires_at).await,
            Command::Authenticate { account_id, session_id } => self.authenticate(*account_id, *session_id).await,
            Command::CreateTicket { title, price_cents } => self.create_ticket(signed_in()?, title, *price_cents).await,
            Command::UpdateTicket { ticket_id, title, price_cents } => {
                self.update_ticket(signed_in()?, *ticket_id, title.as_deref(), *price_cents).await
            }
            Command::CreateOrder { ticket_id } => self.create_order(signed_in()?, *ticket_id, key).await,
            Command::CreateEvent { title, venue, starts_at, ticket_types, sections } => {
                let fields =
                    crate::shows::EventFields { title: Some(title), venue: Some(venue), starts_at: Some(*starts_at) };
                self.create_event(signed_in()?, &fields, ticket_types, sections).await
            }
            Command::UpdateEvent { event_id, title, venue, starts_at } => {
                let fields = crate::shows::EventFields {
                    title: title.as_deref(),
                    venue: venue.as_deref(),
                    starts_at: *starts_at,
                };
                self.update_event(signed_in()?, *event_id, &fields).await
            }
            Command::CreateEventOrder { event_id, items, seats } => {
                self.create_event_order(signed_in()?, *event_id, items, seats, key).await
            }
            Command::CancelOrder { order_id, ticket_id, event_id } => {
                let actor = signed_in()?;
                match self.order_home(actor, *order_id, *ticket_id, *event_id).await? {
                    crate::paying::Till::Listing(ticket) => self.cancel_order(actor, *order_id, ticket).await,
                    crate::paying::Till::Show(show) => self.cancel_event_order(actor, show, *order_id).await,
                }
            }
            Command::PayOrder { order_id, ticket_id, event_id, token } => {
                self.pay_order(signed_in()?, *order_id, (*ticket_id, *event_id), token, key).await
            }
            Command::PaymentWebhook { body, signature } => self.payment_webhook(body, signature.as_deref()).await,
        }
    }
}

/// Whether a subject is a reply inbox (`_INBOX.…`, or a service's own `_INBOX_<service>.…`).
fn is_inbox(subject: &str) -> bool {
    subject.starts_with("_INBOX.") || (subject.starts_with("_INBOX_") && subject.contains('.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_go_to_inboxes_only() {
        assert!(super::is_inbox("_INBOX.abc.def"));
        assert!(super::is_inbox("_INBOX_query-service.abc.def"));
        for forged in
            ["ticketing.account.x", "$KV.TICKETING_SIGNIN_FAILURES.k", "$JS.API.STREAM.PURGE.TICKETING", "_INBOX_"]
        {
            assert!(!super::is_inbox(forged), "{forged}");
        }
    }

    #[test]
    fn the_fallback_reply_is_the_generic_internal_error() {
        let reply: super::Reply = serde_json::from_slice(super::INTERNAL_REPLY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply, super::Reply::Error(super::Failure::internal()));
    }
}
