//! Mutations: each becomes a command, and answers once the read models reflect it.

use async_graphql::{Context, ID, Object};
use command_api::{Command, Outcome, Request};
use domain::{OrderId, ShowId, TicketId};
use uuid::Uuid;

use super::*;
use crate::db::{self, AccountRow};

/// Mutations of accounts, tickets and orders. Each sends a command and answers once the read
/// models reflect it.
#[derive(Default)]
pub struct TicketMutation;

impl TicketMutation {
    async fn session(&self, ctx: &Context<'_>, command: Command) -> async_graphql::Result<User> {
        let state = state(ctx)?;
        let success = state.command(Request::new(command)).await.map_err(from_failure)?;
        let Outcome::Session { account_id, email, session_id, .. } = success.result else {
            return Err(internal("unexpected command result"));
        };
        // Informational only: every request decides roles from the configuration in force.
        let roles = state.roles(&email);
        let (token, _) = state.sessions.issue(account_id, session_id, &email, roles).map_err(internal)?;
        ctx.append_http_header("Set-Cookie", state.sessions.cookie(&token));
        Ok(User { id: account_id.0, row: Some(AccountRow { id: account_id.0, email }), is_viewer: true })
    }

    /// Sends a ticket command and answers the ticket. A write that succeeded never reports a
    /// failure: when the projector is so far behind that a new listing is not in the read model
    /// yet, the answer is the ticket as the command wrote it (the next read shows the rest).
    async fn ticket_result(ctx: &Context<'_>, request: Request) -> async_graphql::Result<Ticket> {
        let state = state(ctx)?;
        let success = state.command(request.clone()).await.map_err(from_failure)?;
        let Outcome::Ticket { ticket_id, status } = success.result else {
            return Err(internal("unexpected command result"));
        };
        if let Some(row) = db::ticket(&state.pool, ticket_id.0).await.map_err(internal)? {
            return Ok(Ticket { row });
        }
        match (&request.command, request.actor) {
            (Command::CreateTicket { title, price_cents }, Some(seller)) => {
                tracing::warn!(%ticket_id, "answering a new listing not projected yet from its command");
                let now = time::OffsetDateTime::now_utc();
                let title =
                    domain::Title::parse(title).map(|t| t.as_str().to_owned()).unwrap_or_else(|_| title.clone());
                Ok(Ticket {
                    row: db::TicketRow {
                        id: ticket_id.0,
                        seller_id: seller.id.0,
                        title,
                        price_cents: *price_cents,
                        currency: domain::Currency::Usd.code().to_owned(),
                        status: stored_text(&status, "ticket status")?,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                        created_position: i64::try_from(success.position).unwrap_or(i64::MAX),
                    },
                })
            }
            _ => Err(internal("ticket not projected in time")),
        }
    }

    /// Sends an order command and answers the order; a new hold not projected yet is answered as
    /// the command wrote it (see [`TicketMutation::ticket_result`]).
    async fn order_result(ctx: &Context<'_>, request: Request) -> async_graphql::Result<Order> {
        let state = state(ctx)?;
        let success = state.command(request.clone()).await.map_err(from_failure)?;
        let (order_id, ticket_id, status, cancel_reason, expires_at, amount_cents) = match success.result {
            Outcome::Order { order_id, ticket_id, status, cancel_reason, expires_at, amount_cents } => {
                (order_id, ticket_id, status, cancel_reason, expires_at, amount_cents)
            }
            // A cancelled event order: its row is in the read model.
            Outcome::EventOrder { order_id, .. } => {
                let row = state.written_order(order_id.0).await.map_err(internal)?;
                return row.map(|row| Order { row }).ok_or_else(|| internal("order not projected in time"));
            }
            _ => return Err(internal("unexpected command result")),
        };
        // A new hold is answered even when its row cannot be read: the write succeeded.
        let found = state.written_order(order_id.0).await;
        if let Ok(Some(row)) = found {
            return Ok(Order { row });
        }
        match (&request.command, request.actor) {
            (Command::CreateOrder { .. }, Some(buyer)) => {
                tracing::warn!(%order_id, "answering a new hold not projected yet from its command");
                Ok(Order {
                    row: db::OrderRow {
                        id: order_id.0,
                        ticket_id: Some(ticket_id.0),
                        event_id: None,
                        amount_cents,
                        buyer_id: buyer.id.0,
                        status: stored_text(&status, "order status")?,
                        cancel_reason: cancel_reason.map(|r| stored_text(&r, "cancel reason")).transpose()?,
                        expires_at,
                        payment_id: None,
                        // The placement is the order's first event: a lower bound, so a newer
                        // pushed state still replaces this one in clients.
                        version: 1,
                        created_at: time::OffsetDateTime::now_utc(),
                        created_position: i64::try_from(success.position)
                            .unwrap_or(i64::MAX)
                            .saturating_mul(domain::show::ORDER_SLOTS),
                    },
                })
            }
            _ => Err(found.err().map_or_else(|| internal("order not projected in time"), internal)),
        }
    }

    /// Where an order lives, as the read model knows it: its ticket, or its event.
    async fn home_of(ctx: &Context<'_>, order: Uuid) -> async_graphql::Result<(Option<TicketId>, Option<ShowId>)> {
        let row = state(ctx)?.written_order(order).await.map_err(internal)?;
        Ok(row.map_or((None, None), |o| (o.ticket_id.map(TicketId), o.event_id.map(ShowId))))
    }
}

#[Object]
impl TicketMutation {
    /// Creates an account and signs it in (sets the `session` cookie).
    async fn sign_up(&self, ctx: &Context<'_>, email: String, password: String) -> async_graphql::Result<User> {
        let client_addr = ctx.data_opt::<crate::ClientAddr>().map(|a| a.0.clone());
        self.session(ctx, Command::SignUp { email, password, client_addr }).await
    }

    /// Signs in (sets the `session` cookie). Repeated failures are throttled.
    async fn sign_in(&self, ctx: &Context<'_>, email: String, password: String) -> async_graphql::Result<User> {
        let client_addr = ctx.data_opt::<crate::ClientAddr>().map(|a| a.0.clone());
        self.session(ctx, Command::SignIn { email, password, client_addr }).await
    }

    /// Signs out: clears the cookie and revokes the session.
    async fn sign_out(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let state = state(ctx)?;
        if let Some(me) = viewer(ctx) {
            let expires_at =
                time::OffsetDateTime::from_unix_timestamp(me.exp).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
            let request = Request::new(Command::SignOut { session_id: me.jti, expires_at }).by(me.actor());
            state.command(request).await.map_err(from_failure)?;
            state.signed_out_here(me);
        }
        ctx.append_http_header("Set-Cookie", state.sessions.clear_cookie());
        Ok(true)
    }

    /// Lists a ticket for sale.
    async fn create_ticket(&self, ctx: &Context<'_>, title: String, price_cents: i32) -> async_graphql::Result<Ticket> {
        let me = signed_in(ctx)?;
        let command = Command::CreateTicket { title, price_cents: i64::from(price_cents) };
        Self::ticket_result(ctx, Request::new(command).by(me.actor())).await
    }

    /// Edits a ticket while it is available (seller or admin).
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: Option<String>,
        price_cents: Option<i32>,
    ) -> async_graphql::Result<Ticket> {
        let me = signed_in(ctx)?;
        let ticket_id = TicketId(parse_id(&id, "id")?);
        let command = Command::UpdateTicket { ticket_id, title, price_cents: price_cents.map(i64::from) };
        Self::ticket_result(ctx, Request::new(command).by(me.actor())).await
    }

    /// Holds a ticket for `ORDER_HOLD_SECONDS`.
    async fn create_order(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Order> {
        let me = signed_in(ctx)?;
        let ticket_id = TicketId(parse_id(&ticket_id, "ticketId")?);
        let mut request = Request::new(Command::CreateOrder { ticket_id }).by(me.actor());
        request.idempotency_key = idempotency_key;
        Self::order_result(ctx, request).await
    }

    /// Cancels an open order (buyer or admin).
    async fn cancel_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Order> {
        let me = signed_in(ctx)?;
        let order_id = parse_id(&id, "id")?;
        let (ticket_id, event_id) = Self::home_of(ctx, order_id).await?;
        let command = Command::CancelOrder { order_id: OrderId(order_id), ticket_id, event_id };
        Self::order_result(ctx, Request::new(command).by(me.actor())).await
    }

    /// Pays for an order (buyer only).
    async fn pay_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        token: String,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Payment> {
        let me = signed_in(ctx)?;
        let state = state(ctx)?;
        let order = parse_id(&order_id, "orderId")?;
        let (ticket_id, event_id) = Self::home_of(ctx, order).await?;
        let command = Command::PayOrder { order_id: OrderId(order), ticket_id, event_id, token };
        let mut request = Request::new(command).by(me.actor());
        request.idempotency_key = idempotency_key;
        let success = state.command(request).await.map_err(from_failure)?;
        let Outcome::Payment { payment_id, order_id, status, provider_ref, amount_cents, .. } = success.result else {
            return Err(internal("unexpected command result"));
        };
        if let Some(row) = db::payment(&state.pool, payment_id.0).await.map_err(internal)? {
            return Ok(Payment { row });
        }
        // Stored but not projected yet (the projector is far behind): the payment as written.
        tracing::warn!(%payment_id, "answering a payment not projected yet from its command");
        Ok(Payment {
            row: db::PaymentRow {
                id: payment_id.0,
                order_id: order_id.0,
                amount_cents,
                currency: domain::Currency::Usd.code().to_owned(),
                status: stored_text(&status, "payment status")?,
                provider_ref,
                created_at: time::OffsetDateTime::now_utc(),
            },
        })
    }
}
