//! The whole system in one process: the command service (answering and expiring holds), the
//! projector and the gateway's state, wired the same way wherever they share a process:
//! `ticketing up`, the gateway's tests and the benchmarks. Serving HTTP is left to the caller,
//! which knows its listener.

use command_service::Service;
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// The settings of the three components.
pub struct Settings {
    /// The command service's (its stream settings are everyone's).
    pub commands: command_service::config::Config,
    /// The gateway's.
    pub gateway: query_service::config::Config,
    /// The most events the projector applies in one transaction.
    pub projector_batch_max: usize,
}

/// What the components connect with: a NATS client each (in `ticketing up` each is its own NATS
/// user, with its own permissions), and the read models' database.
pub struct Connections {
    /// The command service's NATS client.
    pub commands: async_nats::Client,
    /// The projector's NATS client.
    pub projector: async_nats::Client,
    /// The gateway's NATS client.
    pub gateway: async_nats::Client,
    /// The read models.
    pub pool: PgPool,
}

impl Connections {
    /// One NATS client for all three (a server without authentication, as in tests).
    pub fn shared(client: &async_nats::Client, pool: &PgPool) -> Self {
        Self { commands: client.clone(), projector: client.clone(), gateway: client.clone(), pool: pool.clone() }
    }
}

/// Why the system did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The command service could not open its streams, buckets or provider, or subscribe.
    #[error("command-service: {0}")]
    Commands(#[from] command_service::ConnectError),
    /// The projector could not create or migrate the read models.
    #[error("projector: {0}")]
    Projector(#[from] projector::ProjectorError),
}

/// The running system's background tasks: each runs until it fails (or is aborted).
pub struct Tasks {
    /// Answering commands.
    pub commands: JoinHandle<anyhow::Result<()>>,
    /// Expiring holds and reconciling payments.
    pub expiry: JoinHandle<anyhow::Result<()>>,
    /// Projecting into the read models.
    pub projector: JoinHandle<Result<(), projector::ProjectorError>>,
    /// The projector's watchdog (its lag metrics; it never stops by itself).
    pub watchdog: JoinHandle<()>,
}

impl Tasks {
    /// Waits for the first task to stop; says which and why.
    pub async fn first_to_stop(&mut self) -> String {
        tokio::select! {
            result = &mut self.commands => format!("command-service stopped: {}", outcome(result)),
            result = &mut self.expiry => format!("hold expiry stopped: {}", outcome(result)),
            result = &mut self.projector => format!("projector stopped: {}", outcome(result)),
        }
    }

    /// Stops every task.
    pub fn abort(&self) {
        self.commands.abort();
        self.expiry.abort();
        self.projector.abort();
        self.watchdog.abort();
    }
}

fn outcome<E: std::fmt::Display>(result: Result<Result<(), E>, tokio::task::JoinError>) -> String {
    match result {
        Ok(Ok(())) => "done".into(),
        Ok(Err(error)) => format!("{error:#}"),
        Err(error) => error.to_string(),
    }
}

/// The started system.
pub struct System {
    /// The command service (for callers that send commands in process or read its store).
    pub service: Service,
    /// The gateway's state: [`query_service::app`] of it is the HTTP service.
    pub gateway: query_service::AppState,
    /// The background tasks.
    pub tasks: Tasks,
}

impl System {
    /// Starts the command service (subscribed before this returns, so commands sent from now on
    /// are answered), hold expiry, the projector (its read models migrated first) and the
    /// gateway's state.
    ///
    /// # Errors
    /// When a component cannot start; nothing is left running then.
    pub async fn start(settings: Settings, connections: Connections) -> Result<Self, StartError> {
        let Settings { commands, gateway, projector_batch_max } = settings;
        let service = Service::connect(commands, connections.commands, None).await?;
        let requests = service.subscribe().await?;
        projector::schema::ensure_live(&connections.pool).await?;
        let projector = projector::Projector::new(
            connections.pool.clone(),
            connections.projector,
            service.store().settings().clone(),
            projector_batch_max,
        );
        let tasks = Tasks {
            commands: tokio::spawn(service.clone().serve_subscription(requests)),
            expiry: tokio::spawn(service.clone().run_expiry()),
            watchdog: tokio::spawn(projector.clone().watch()),
            projector: tokio::spawn(projector.run()),
        };
        let gateway = query_service::AppState::new(gateway, connections.pool, connections.gateway).await;
        Ok(Self { service, gateway, tasks })
    }

    /// The gateway's HTTP service: GraphQL, the web app, the payment webhook, health.
    pub fn app(&self) -> axum::Router {
        query_service::app(self.gateway.clone())
    }

    /// Serves [`Self::app`] on `listener` (with each peer's address, as the gateway's throttles
    /// need) on a task of its own.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> JoinHandle<std::io::Result<()>> {
        let service = self.app().into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await })
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.tasks.abort();
    }
}
