//! The command API: typed JSON envelopes over NATS request-reply.
//!
//! A client sends a [`Request`] to `ticketing.cmd.<name>` (the name is the command's `type`, e.g.
//! `ticketing.cmd.createOrder`) and gets a [`Reply`]. The service listens in the queue group
//! [`QUEUE_GROUP`], so any number of replicas share the load. The subject names the command so
//! that NATS permissions can allow each client only what it needs (for instance only the gateway
//! may send `paymentWebhook`).
//!
//! NATS is the trust boundary: the `actor` is whoever the caller (the GraphQL gateway) has
//! authenticated, via `signIn`, `signUp` or `authenticate`.

use domain::{AccountId, Actor, ErrorCode, OrderId, PaymentId, SessionId, ShowId, TicketId, TicketTypeId, Timestamp};
use serde::{Deserialize, Serialize};

/// The queue group every replica joins.
pub const QUEUE_GROUP: &str = "command-service";

/// A command request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// What to do.
    pub command: Command,
    /// Who asks (absent for anonymous commands such as `signUp` and webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Ties the command to the caller's logs and traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Makes `createOrder` and `payOrder` safe to repeat: the same key returns the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Request {
    /// A request with no actor and no keys.
    pub fn new(command: Command) -> Self {
        Self { command, actor: None, correlation_id: None, idempotency_key: None }
    }

    /// The same request on behalf of `actor`.
    #[must_use]
    pub fn by(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The same request with an idempotency key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The subject to send it to.
    pub fn subject(&self) -> String {
        domain::subjects::command(self.command.name())
    }
}

/// Every command the service takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Command {
    /// Create an account and sign it in.
    SignUp {
        /// The address (trimmed and lower-cased by the service).
        email: String,
        /// The password (8..=128 characters).
        password: String,
        /// The client's network address, for per-address throttling of sign-ups.
        #[serde(default)]
        client_addr: Option<String>,
    },
    /// Check credentials and open a session. Repeated failures are throttled.
    SignIn {
        /// The address.
        email: String,
        /// The password.
        password: String,
        /// The client's network address, for per-address throttling.
        #[serde(default)]
        client_addr: Option<String>,
    },
    /// Revoke the actor's session for good.
    SignOut {
        /// The session (the token's `jti`).
        session_id: SessionId,
        /// When the token expires anyway.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: Timestamp,
    },
    /// Check that a session is still valid and get the account's roles.
    Authenticate {
        /// The account the token names.
        account_id: AccountId,
        /// The token's `jti`.
        session_id: SessionId,
    },
    /// List a ticket (signed in).
    CreateTicket {
        /// Title, 1..=120 characters after trimming.
        title: String,
        /// Price in cents, 1..=10,000,000.
        price_cents: i64,
    },
    /// Edit an available ticket (seller or admin).
    UpdateTicket {
        /// The ticket.
        ticket_id: TicketId,
        /// A new title.
        #[serde(default)]
        title: Option<String>,
        /// A new price in cents.
        #[serde(default)]
        price_cents: Option<i64>,
    },
    /// Hold a ticket (signed in; not the seller).
    CreateOrder {
        /// The ticket.
        ticket_id: TicketId,
    },
    /// Put an event on sale (signed in; the caller organises it).
    CreateEvent {
        /// Title, 1..=120 characters after trimming.
        title: String,
        /// Venue, 1..=120 characters after trimming.
        venue: String,
        /// When it starts (in the future).
        #[serde(with = "time::serde::rfc3339")]
        starts_at: Timestamp,
        /// General-admission ticket types.
        #[serde(default)]
        ticket_types: Vec<TicketTypeInput>,
        /// Sections of numbered seats.
        #[serde(default)]
        sections: Vec<SectionInput>,
    },
    /// Change an event's title, venue or start time (organiser or admin).
    UpdateEvent {
        /// The event.
        event_id: ShowId,
        /// A new title.
        #[serde(default)]
        title: Option<String>,
        /// A new venue.
        #[serde(default)]
        venue: Option<String>,
        /// A new start time.
        #[serde(default, with = "time::serde::rfc3339::option")]
        starts_at: Option<Timestamp>,
    },
    /// Hold tickets and seats of an event (signed in; not the organiser): all or nothing.
    CreateEventOrder {
        /// The event.
        event_id: ShowId,
        /// Ticket types and how many of each.
        #[serde(default)]
        items: Vec<OrderItemInput>,
        /// Seat ids (`A-3-17`).
        #[serde(default)]
        seats: Vec<String>,
    },
    /// Cancel an open order (buyer or admin).
    CancelOrder {
        /// The order.
        order_id: OrderId,
        /// The order's ticket, when the caller knows it (saves a lookup).
        #[serde(default)]
        ticket_id: Option<TicketId>,
        /// The order's event, when it is an event order and the caller knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<ShowId>,
    },
    /// Pay for an order (buyer only).
    PayOrder {
        /// The order.
        order_id: OrderId,
        /// The order's ticket, when the caller knows it (saves a lookup).
        #[serde(default)]
        ticket_id: Option<TicketId>,
        /// The order's event, when it is an event order and the caller knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<ShowId>,
        /// The payment method token (`tok_visa`, `tok_chargeDeclined`, `tok_async` with the fake
        /// provider).
        token: String,
    },
    /// A payment provider webhook, exactly as received over HTTP.
    PaymentWebhook {
        /// The raw request body.
        body: String,
        /// The `Stripe-Signature` header.
        #[serde(default)]
        signature: Option<String>,
    },
}

impl Command {
    /// The command's name: its `type` and the last token of its subject.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::SignUp { .. } => "signUp",
            Self::SignIn { .. } => "signIn",
            Self::SignOut { .. } => "signOut",
            Self::Authenticate { .. } => "authenticate",
            Self::CreateTicket { .. } => "createTicket",
            Self::UpdateTicket { .. } => "updateTicket",
            Self::CreateOrder { .. } => "createOrder",
            Self::CreateEvent { .. } => "createEvent",
            Self::UpdateEvent { .. } => "updateEvent",
            Self::CreateEventOrder { .. } => "createEventOrder",
            Self::CancelOrder { .. } => "cancelOrder",
            Self::PayOrder { .. } => "payOrder",
            Self::PaymentWebhook { .. } => "paymentWebhook",
        }
    }
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply {
    /// Done (or already done: commands are idempotent where the API says so).
    Ok(Success),
    /// Refused or failed; nothing changed.
    Error(Failure),
}

/// A successful command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Success {
    /// The stream position that reflects the outcome: wait for the projector to reach it to
    /// read your own write.
    pub position: u64,
    /// How many events the aggregate's boundary holds now (`version` on the wire, its name
    /// before; kept so replicas of two releases understand each other).
    #[serde(rename = "version")]
    pub event_count: u64,
    /// What the command produced.
    pub result: Outcome,
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Outcome {
    /// A signed-in account (`signUp`, `signIn`, `authenticate`).
    Session {
        /// The account.
        account_id: AccountId,
        /// Its address.
        email: String,
        /// `USER`, plus `ADMIN` for addresses in `ADMIN_EMAILS`.
        #[serde(deserialize_with = "crate::known_roles")]
        roles: Vec<crate::Role>,
        /// The session to put in the token (`jti`).
        session_id: SessionId,
    },
    /// The session was revoked.
    SignedOut,
    /// A ticket.
    Ticket {
        /// The ticket.
        ticket_id: TicketId,
        /// Where it stands in its lifecycle.
        status: domain::TicketStatus,
    },
    /// An order.
    Order {
        /// The order.
        order_id: OrderId,
        /// Its ticket.
        ticket_id: TicketId,
        /// Where it stands in its lifecycle.
        status: domain::OrderStatus,
        /// Why it was cancelled.
        cancel_reason: Option<domain::CancelReason>,
        /// When the hold lapses.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: Timestamp,
        /// What the buyer pays, in cents (the ticket's price at the time of the hold).
        #[serde(default)]
        amount_cents: i64,
    },
    /// A payment.
    Payment {
        /// The payment.
        payment_id: PaymentId,
        /// Its order.
        order_id: OrderId,
        /// Its order's ticket (an order on a ticket).
        #[serde(default)]
        ticket_id: Option<TicketId>,
        /// Its order's event (an order on an event).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<ShowId>,
        /// Where it stands in its lifecycle.
        status: domain::PaymentStatus,
        /// The provider's reference.
        provider_ref: Option<String>,
        /// The amount charged, in cents.
        #[serde(default)]
        amount_cents: i64,
    },
    /// An event (created or updated).
    Event {
        /// The event.
        event_id: ShowId,
    },
    /// An order on an event.
    EventOrder {
        /// The order.
        order_id: OrderId,
        /// Its event.
        event_id: ShowId,
        /// Where it stands in its lifecycle.
        status: domain::OrderStatus,
        /// Why it was cancelled.
        cancel_reason: Option<domain::CancelReason>,
        /// When the hold lapses.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: Timestamp,
        /// What the buyer pays: the sum of its items' prices, in cents.
        amount_cents: i64,
    },
    /// A webhook was handled: answer the provider with this HTTP status.
    Webhook {
        /// 200 when handled or a duplicate, 400 for a bad signature or body.
        http_status: u16,
    },
}

/// A ticket type of a new event, as the organiser typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketTypeInput {
    /// 1..=60 characters, unique in the event.
    pub name: String,
    /// Price in cents, 1..=10,000,000.
    pub price_cents: i64,
    /// How many tickets, 1..=100,000.
    pub capacity: i64,
}

/// A section of numbered seats of a new event, as the organiser typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionInput {
    /// 1..=20 letters, digits and spaces, unique in the event.
    pub name: String,
    /// The price of each seat in cents, 1..=10,000,000.
    pub price_cents: i64,
    /// Rows, 1..=100.
    pub rows: i64,
    /// Seats in each row, 1..=200.
    pub seats_per_row: i64,
}

/// Tickets of one ticket type asked for in an event order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemInput {
    /// The ticket type.
    pub ticket_type_id: TicketTypeId,
    /// How many.
    pub quantity: i64,
}

/// A refused or failed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The API error code.
    pub code: ErrorCode,
    /// A short message for people (never internal detail).
    pub message: String,
    /// The input field at fault (`BAD_USER_INPUT`, email `CONFLICT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The stream position of what the failed command did write (a declined charge, a refunded
    /// late payment), so the caller can wait for it to be projected before it answers: the page
    /// that reloads after the error then shows the new state. `None` when nothing was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// For an event order refused because something is taken (`CONFLICT`): the seat ids and
    /// ticket type ids that are not available (`extensions.unavailable`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

impl Failure {
    /// A failure with no field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, position: None, unavailable: vec![] }
    }

    /// A failure that names a field.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: Some(field.to_owned()), position: None, unavailable: vec![] }
    }

    /// The same failure, after a write at `position`.
    #[must_use]
    pub fn after_write(mut self, position: u64) -> Self {
        self.position = Some(position).filter(|p| *p > 0);
        self
    }

    /// The generic internal error: detail goes to the logs, not to clients.
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalServerError, "internal error")
    }
}
