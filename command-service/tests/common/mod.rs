//! A command service wired to real NATS for tests, and helpers to talk to it over NATS.
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use command_service::Service;
use command_service::api::{Command, Failure, Outcome, Reply, Request, Success};
use command_service::config::Config;
use command_service::payments::PaymentProvider;
use command_service::payments::fake::FakeProvider;
use domain::{Actor, ErrorCode, Listing, OrderId, TicketId, subjects};
use tokio::task::JoinHandle;

pub const WEBHOOK_SECRET: &str = "whsec_test_secret";
pub const ADMIN_EMAIL: &str = "admin@example.com";

/// A running command service.
pub struct System {
    pub nats: testkit::TestNats,
    pub config: Config,
    pub service: Service,
    pub provider: Arc<FakeProvider>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl System {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_provider(tweak, FakeProvider::default()).await
    }

    pub async fn start_with_provider(tweak: impl FnOnce(&mut Config), provider: FakeProvider) -> Self {
        Self::start_inner(tweak, Some(provider)).await
    }

    /// Starts with the provider the configuration names (e.g. Stripe at a stub server).
    pub async fn start_configured(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_inner(tweak, None).await
    }

    async fn start_inner(tweak: impl FnOnce(&mut Config), fake: Option<FakeProvider>) -> Self {
        let nats = testkit::nats().await.unwrap_or_else(|e| panic!("{e:#}"));
        let mut config = test_config(&nats);
        tweak(&mut config);
        let use_fake = fake.is_some();
        let provider = Arc::new(fake.unwrap_or_default());
        let chosen = use_fake.then(|| provider.clone() as Arc<dyn PaymentProvider>);
        let (service, tasks) = launch(&config, &nats, chosen).await;
        Self { nats, config, service, provider, tasks }
    }

    /// Sends a request over NATS, as any client would.
    pub async fn send(&self, request: Request) -> Reply {
        let subject = self.service.store().settings().wire_subject(&request.subject());
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let reply =
            self.nats.client.request(subject, body.into()).await.unwrap_or_else(|e| panic!("request failed: {e}"));
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("bad reply: {e}"))
    }

    pub async fn ok(&self, request: Request) -> Success {
        match self.send(request.clone()).await {
            Reply::Ok(success) => success,
            Reply::Error(failure) => panic!("{} refused: {failure:?}", request.command.name()),
        }
    }

    pub async fn fail(&self, request: Request) -> Failure {
        match self.send(request.clone()).await {
            Reply::Error(failure) => failure,
            Reply::Ok(success) => panic!("{} should fail, got {success:?}", request.command.name()),
        }
    }

    /// Handles a request in process and returns the typed refusal: the rule, not only its code.
    pub async fn refused(&self, request: Request) -> command_service::Refused {
        let name = request.command.name();
        match self.service.handle(request).await {
            Err(command_service::CommandError::Refused { why, .. }) => why,
            other => panic!("{name} should be refused, got {other:?}"),
        }
    }

    pub async fn code(&self, request: Request) -> ErrorCode {
        self.fail(request).await.code
    }

    /// Signs up a fresh user and returns them as an actor.
    pub async fn user(&self, name: &str) -> Actor {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        self.sign_up(&email).await
    }

    pub async fn sign_up(&self, email: &str) -> Actor {
        let success = self
            .ok(Request::new(Command::SignUp {
                email: email.into(),
                password: "correct horse".into(),
                client_addr: None,
            }))
            .await;
        match success.result {
            Outcome::Session { account_id, roles, .. } => {
                Actor { id: account_id, is_admin: roles.contains(&command_service::api::Role::Admin) }
            }
            other => panic!("sign-up answered {other:?}"),
        }
    }

    pub async fn admin(&self) -> Actor {
        self.sign_up(ADMIN_EMAIL).await
    }

    pub async fn ticket(&self, seller: Actor, price_cents: i64) -> TicketId {
        let success =
            self.ok(Request::new(Command::CreateTicket { title: "Opera night".into(), price_cents }).by(seller)).await;
        match success.result {
            Outcome::Ticket { ticket_id, .. } => ticket_id,
            other => panic!("createTicket answered {other:?}"),
        }
    }

    pub async fn order(&self, buyer: Actor, ticket_id: TicketId) -> OrderId {
        match self.ok(Request::new(Command::CreateOrder { ticket_id }).by(buyer)).await.result {
            Outcome::Order { order_id, .. } => order_id,
            other => panic!("createOrder answered {other:?}"),
        }
    }

    pub async fn listing(&self, ticket_id: TicketId) -> Listing {
        self.service
            .store()
            .load::<Listing>(&subjects::listing(ticket_id))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .state
    }

    /// A listing with its history and version, straight from the stream.
    pub async fn loaded_listing(&self, ticket_id: TicketId) -> event_store::Loaded<Listing> {
        self.service.store().load::<Listing>(&subjects::listing(ticket_id)).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// An account with its history, straight from the stream.
    pub async fn account(&self, id: domain::AccountId) -> event_store::Loaded<domain::Account> {
        self.service.store().load::<domain::Account>(&subjects::account(id)).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for a condition on a listing, checking as events arrive, up to `within`.
    pub async fn wait_for_listing(
        &self,
        ticket_id: TicketId,
        within: Duration,
        what: impl Fn(&Listing) -> bool,
    ) -> Listing {
        let deadline = Instant::now() + within;
        loop {
            let listing = self.listing(ticket_id).await;
            if what(&listing) {
                return listing;
            }
            assert!(Instant::now() < deadline, "condition not met within {within:?}: {listing:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops this service instance (as a crash would: no cleanup).
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Starts a fresh service instance on the same NATS and streams.
    pub async fn restart(&mut self) {
        self.stop();
        let (service, tasks) =
            launch(&self.config, &self.nats, Some(self.provider.clone() as Arc<dyn PaymentProvider>)).await;
        self.service = service;
        self.tasks = tasks;
    }

    /// Starts another replica on the same NATS and streams; it leaves gracefully when the sender
    /// is used or dropped.
    pub async fn replica(&self) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>, Service) {
        let client = testkit::connect(&self.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
        let provider = Some(self.provider.clone() as Arc<dyn PaymentProvider>);
        let service = Service::connect(self.config.clone(), client, provider).await.unwrap_or_else(|e| panic!("{e:#}"));
        let requests = service.subscribe().await.unwrap_or_else(|e| panic!("{e:#}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(service.clone().serve_until(requests, async move {
            let _ = stopped.await;
        }));
        (stop, task, service)
    }

    /// Sends a signed webhook; answers its HTTP status.
    pub async fn webhook(&self, body: &str) -> u16 {
        let signature = command_service::payments::webhook::sign(
            WEBHOOK_SECRET,
            time::OffsetDateTime::now_utc().unix_timestamp(),
            body,
        );
        self.webhook_signed(body, Some(signature)).await
    }

    pub async fn webhook_signed(&self, body: &str, signature: Option<String>) -> u16 {
        match self.ok(Request::new(Command::PaymentWebhook { body: body.into(), signature })).await.result {
            Outcome::Webhook { http_status } => http_status,
            other => panic!("webhook answered {other:?}"),
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn test_config(nats: &testkit::TestNats) -> Config {
    let mut config = Config::with_nats_url(&nats.url);
    config.stream_name = nats.stream.clone();
    config.subject_root = nats.root.clone();
    config.payment_webhook_secret = WEBHOOK_SECRET.into();
    config.admin_emails =
        command_service::config::AdminEmails(vec![domain::Email::parse(ADMIN_EMAIL).unwrap_or_else(|e| panic!("{e}"))]);
    config
}

async fn launch(
    config: &Config,
    nats: &testkit::TestNats,
    provider: Option<Arc<dyn PaymentProvider>>,
) -> (Service, Vec<JoinHandle<anyhow::Result<()>>>) {
    let client = testkit::connect(&nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let service = Service::connect(config.clone(), client, provider).await.unwrap_or_else(|e| panic!("{e:#}"));
    let requests = service.subscribe().await.unwrap_or_else(|e| panic!("{e:#}"));
    let tasks =
        vec![tokio::spawn(service.clone().serve_subscription(requests)), tokio::spawn(service.clone().run_expiry())];
    (service, tasks)
}

pub fn webhook_body(event_id: &str, kind: &str, provider_ref: &str, order: OrderId) -> String {
    serde_json::json!({
        "id": event_id,
        "type": kind,
        "data": { "object": { "id": provider_ref, "amount": 2500, "currency": "usd", "metadata": { "order_id": order.to_string() } } }
    })
    .to_string()
}

/// The `payOrder` command for an order, without a ticket hint.
pub fn pay(order_id: OrderId, token: &str) -> Command {
    Command::PayOrder { order_id, ticket_id: None, event_id: None, token: token.into() }
}

/// A fresh seller's ticket at 25.00, held by a fresh buyer.
pub async fn held(system: &System) -> (Actor, TicketId, OrderId) {
    let (seller, buyer) = (system.user("seller").await, system.user("buyer").await);
    let ticket = system.ticket(seller, 2500).await;
    let order = system.order(buyer, ticket).await;
    (buyer, ticket, order)
}
