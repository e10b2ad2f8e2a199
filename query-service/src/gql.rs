//! The GraphQL schema, code first: every type, query and mutation of PRODUCT.md §3.

use async_graphql::{Context, Enum, ErrorExtensions, ID, Object, SimpleObject, Subscription as SubscriptionRoot};
use command_api::{Command, Failure, Outcome, Request};
use domain::{ErrorCode, OrderId, TicketId};
use futures::{Stream, StreamExt};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::db::{self, AccountRow, HistoryRow, OrderRow, PaymentRow, TicketRow};
use crate::session::Claims;
use crate::{AppState, Viewer};

/// The largest page a connection returns.
const MAX_PAGE: i32 = 100;

/// The page a connection returns when `first` is left out or null.
const DEFAULT_PAGE: i32 = 20;

/// A GraphQL error with `extensions.code` (and `field`).
pub fn error(code: ErrorCode, message: impl Into<String>, field: Option<&str>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| {
        e.set("code", code.as_str());
        if let Some(field) = field {
            e.set("field", field);
        }
    })
}

fn from_failure(failure: Failure) -> async_graphql::Error {
    error(failure.code, failure.message, failure.field.as_deref())
}

fn internal(detail: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!(%detail, "internal error");
    error(ErrorCode::InternalServerError, "internal error", None)
}

/// An enum's serde name (`AVAILABLE`, `CREATED`, …): the form the read models store.
fn stored_text(value: &impl serde::Serialize, what: &'static str) -> async_graphql::Result<String> {
    domain::stored::text(value, what).map_err(internal)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

fn viewer<'a>(ctx: &Context<'a>) -> Option<&'a Claims> {
    ctx.data_opt::<Viewer>().and_then(|v| v.0.as_ref())
}

fn signed_in<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Claims> {
    viewer(ctx).ok_or_else(|| error(ErrorCode::Unauthenticated, "sign in first", None))
}

fn parse_id(id: &ID, field: &str) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| error(ErrorCode::BadUserInput, format!("{field} is not a valid id"), Some(field)))
}

/// A user's role.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "command_api::Role")]
pub enum Role {
    /// Every signed-up account.
    User,
    /// Accounts in `ADMIN_EMAILS`.
    Admin,
}

/// Where a ticket is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::TicketStatus")]
pub enum TicketStatus {
    /// Anyone but the seller may hold it.
    Available,
    /// An open order holds it.
    Reserved,
    /// Sold.
    Sold,
}

/// Where an order is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::OrderStatus")]
pub enum OrderStatus {
    /// Held, unpaid.
    Created,
    /// A payment is under way.
    AwaitingPayment,
    /// Paid; the ticket is sold.
    Complete,
    /// Cancelled; the ticket was released.
    Cancelled,
}

/// Why an order was cancelled.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::CancelReason")]
pub enum CancelReason {
    /// By the buyer.
    User,
    /// The hold lapsed.
    Expired,
    /// By an admin.
    Admin,
}

/// Where a payment is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::PaymentStatus")]
pub enum PaymentStatus {
    /// Being charged or settling.
    Pending,
    /// The money arrived.
    Succeeded,
    /// The charge failed.
    Failed,
    /// The money went back.
    Refunded,
}

/// A status as the read models store it (the domain enum's serde form), read back as the
/// domain's enum. A value no domain variant names is an inconsistency: logged and answered as an
/// internal error, never shown as some default.
fn stored<T: serde::de::DeserializeOwned>(value: &str, what: &'static str) -> async_graphql::Result<T> {
    domain::stored::read(value, what).map_err(internal)
}

/// The signed-in viewer as the domain's actor, or `None` when signed out.
fn actor(ctx: &Context<'_>) -> Option<domain::Actor> {
    viewer(ctx).map(Claims::actor)
}

/// A person with an account.
pub struct User {
    id: Uuid,
    /// The account row when it is at hand; otherwise read (batched) only when a field needs it,
    /// so `seller { id }` costs no query.
    row: Option<AccountRow>,
    /// Answering `signUp`/`signIn`: the cookie is only being set, but this is the viewer.
    is_viewer: bool,
}

#[Object]
impl User {
    /// The account id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The email address: shown to the user themselves and to admins only, null to anyone else.
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if !self.private_visible(ctx) {
            return Ok(None);
        }
        Ok(Some(self.account(ctx).await?.email))
    }

    /// `USER`, and `ADMIN` while the address is in `ADMIN_EMAILS`: shown to the user themselves
    /// and to admins only, null to anyone else.
    async fn roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<Role>>> {
        if !self.private_visible(ctx) {
            return Ok(None);
        }
        let roles = state(ctx)?.roles(&self.account(ctx).await?.email);
        Ok(Some(roles.into_iter().map(Role::from).collect()))
    }
}

impl User {
    /// Whether the viewer may see this user's personal data (email, roles): it is them, or an
    /// admin.
    fn private_visible(&self, ctx: &Context<'_>) -> bool {
        self.is_viewer || actor(ctx).is_some_and(|me| me.may_read_personal_data_of(domain::AccountId(self.id)))
    }

    /// The account's row: the one at hand, or read through the batch loader.
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<AccountRow> {
        if let Some(row) = &self.row {
            return Ok(row.clone());
        }
        let row = loaders(ctx)?.load_one(crate::loaders::AccountKey(self.id)).await.map_err(internal)?;
        // Accounts are projected before anything they do, so a missing one is an inconsistency.
        row.ok_or_else(|| internal(format!("account {} not in the read model", self.id)))
    }
}

fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::loaders::Loaders> {
    ctx.data::<crate::loaders::Loaders>()
}

/// The user with this id; its row is read only if a field asks for more than the id.
fn user(id: Uuid) -> User {
    User { id, row: None, is_viewer: false }
}

/// One line of a ticket's history.
#[derive(SimpleObject)]
pub struct TicketEvent {
    /// The event type (`TicketListed`, `OrderPlaced`, …).
    #[graphql(name = "type")]
    pub kind: String,
    /// When (RFC 3339).
    pub at: String,
    /// The ticket's version after it.
    pub version: i32,
}

impl From<HistoryRow> for TicketEvent {
    fn from(row: HistoryRow) -> Self {
        Self { kind: row.event_type, at: rfc3339(row.at), version: row.version }
    }
}

/// A ticket for sale.
pub struct Ticket {
    row: TicketRow,
}

impl Ticket {
    /// The facts the domain's rules about this ticket need.
    fn access(&self) -> async_graphql::Result<domain::TicketAccess> {
        Ok(domain::TicketAccess {
            seller: domain::AccountId(self.row.seller_id),
            status: stored(&self.row.status, "ticket status")?,
        })
    }
}

#[Object]
impl Ticket {
    /// The ticket id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The title.
    async fn title(&self) -> &str {
        &self.row.title
    }
    /// The price in cents.
    async fn price_cents(&self) -> i64 {
        self.row.price_cents
    }
    /// The currency (`USD`).
    async fn currency(&self) -> &str {
        &self.row.currency
    }
    /// The status.
    async fn status(&self) -> async_graphql::Result<TicketStatus> {
        stored::<domain::TicketStatus>(&self.row.status, "ticket status").map(Into::into)
    }
    /// How many changes the ticket has seen (its listing events).
    async fn version(&self) -> i32 {
        self.row.version
    }
    /// Who sells it.
    async fn seller(&self) -> User {
        user(self.row.seller_id)
    }
    /// When it was listed (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.row.created_at)
    }
    /// When it last changed (RFC 3339).
    async fn updated_at(&self) -> String {
        rfc3339(self.row.updated_at)
    }
    /// Every event of the ticket, oldest first: for its seller and admins only.
    #[graphql(complexity = "HISTORY_COST + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEvent>> {
        let me = signed_in(ctx)?;
        if !self.access()?.may_read_history(&me.actor()) {
            return Err(error(ErrorCode::Forbidden, "only the seller or an admin may read the history", None));
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::HistoryKey(self.row.id)).await.map_err(internal)?;
        Ok(rows.unwrap_or_default().into_iter().map(Into::into).collect())
    }
    /// Whether the viewer may change its title or price now: its seller or an admin, while it is
    /// available. False when signed out.
    async fn viewer_can_edit(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_edit(&me))
    }
}

/// An order: a buyer's hold on a ticket.
pub struct Order {
    row: OrderRow,
}

impl Order {
    /// The facts the domain's rules about this order need.
    fn access(&self) -> async_graphql::Result<domain::OrderAccess> {
        access_of(&self.row)
    }
}

/// The facts the domain's rules about an order need, from its row.
fn access_of(row: &OrderRow) -> async_graphql::Result<domain::OrderAccess> {
    Ok(domain::OrderAccess {
        buyer: domain::AccountId(row.buyer_id),
        status: stored(&row.status, "order status")?,
        expires_at: row.expires_at,
    })
}

#[Object]
impl Order {
    /// The order id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The ticket it holds.
    async fn ticket(&self, ctx: &Context<'_>) -> async_graphql::Result<Ticket> {
        let row = loaders(ctx)?.load_one(crate::loaders::TicketKey(self.row.ticket_id)).await.map_err(internal)?;
        row.map(|row| Ticket { row }).ok_or_else(|| internal("order without ticket"))
    }
    /// The buyer.
    async fn buyer(&self) -> User {
        user(self.row.buyer_id)
    }
    /// The status.
    async fn status(&self) -> async_graphql::Result<OrderStatus> {
        stored::<domain::OrderStatus>(&self.row.status, "order status").map(Into::into)
    }
    /// Why it was cancelled.
    async fn cancel_reason(&self) -> async_graphql::Result<Option<CancelReason>> {
        self.row
            .cancel_reason
            .as_deref()
            .map(|reason| stored::<domain::CancelReason>(reason, "cancel reason").map(Into::into))
            .transpose()
    }
    /// When the hold lapses unless paid (RFC 3339).
    async fn expires_at(&self) -> String {
        rfc3339(self.row.expires_at)
    }
    /// When it was placed (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.row.created_at)
    }
    /// The latest payment attempt.
    async fn payment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Payment>> {
        let Some(id) = self.row.payment_id else { return Ok(None) };
        let row = loaders(ctx)?.load_one(crate::loaders::PaymentKey(id)).await.map_err(internal)?;
        Ok(row.map(|row| Payment { row }))
    }
    /// How many changes the order has seen.
    async fn version(&self) -> i32 {
        self.row.version
    }
    /// Whether the viewer may cancel it now: its buyer or an admin, while the hold is open.
    /// False when signed out.
    async fn viewer_can_cancel(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_cancel(&me))
    }
    /// Whether the viewer may pay for it now: its buyer, while it is held, unpaid, no payment is
    /// under way and the hold has not lapsed. False when signed out.
    async fn viewer_can_pay(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_pay(&me, time::OffsetDateTime::now_utc()))
    }
}

/// A payment attempt.
pub struct Payment {
    row: PaymentRow,
}

#[Object]
impl Payment {
    /// The payment id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The order it pays for.
    async fn order(&self, ctx: &Context<'_>) -> async_graphql::Result<Order> {
        let row = loaders(ctx)?.load_one(crate::loaders::OrderKey(self.row.order_id)).await.map_err(internal)?;
        row.map(|row| Order { row }).ok_or_else(|| internal("payment without order"))
    }
    /// The amount in cents.
    async fn amount_cents(&self) -> i64 {
        self.row.amount_cents
    }
    /// The currency.
    async fn currency(&self) -> &str {
        &self.row.currency
    }
    /// The status.
    async fn status(&self) -> async_graphql::Result<PaymentStatus> {
        stored::<domain::PaymentStatus>(&self.row.status, "payment status").map(Into::into)
    }
    /// The provider's reference.
    async fn provider_ref(&self) -> Option<&str> {
        self.row.provider_ref.as_deref()
    }
    /// When it started (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.row.created_at)
    }
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow.
    pub has_next_page: bool,
    /// The cursor to pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A page of tickets, newest first.
#[derive(SimpleObject)]
pub struct TicketConnection {
    /// The tickets.
    pub nodes: Vec<Ticket>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A page of orders, newest first.
#[derive(SimpleObject)]
pub struct OrderConnection {
    /// The orders.
    pub nodes: Vec<Order>,
    /// Paging.
    pub page_info: PageInfo,
}

fn page_limit(first: i32) -> async_graphql::Result<i64> {
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(error(ErrorCode::BadUserInput, format!("first must be between 0 and {MAX_PAGE}"), Some("first")));
    }
    Ok(i64::from(first) + 1)
}

/// What one item of a page costs in the complexity limit: `first` times its selection, so a
/// client asking for 100 items pays for 100.
fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)).unwrap_or(1) * child_complexity
}

/// What a ticket's history costs on top of its fields: it is a list of unbounded length.
const HISTORY_COST: usize = 10;

/// The position an `after` cursor names; a cursor that names no item of `table` is refused.
async fn cursor(ctx: &Context<'_>, table: db::Cursor, after: Option<&str>) -> async_graphql::Result<Option<i64>> {
    let Some(after) = after else { return Ok(None) };
    let unknown = || error(ErrorCode::BadUserInput, "after is not a cursor of this list", Some("after"));
    let position = after.parse::<i64>().map_err(|_| unknown())?;
    if !db::cursor_exists(&state(ctx)?.pool, table, position).await.map_err(internal)? {
        return Err(unknown());
    }
    Ok(Some(position))
}

fn page<R, T>(mut rows: Vec<R>, first: i32, position: impl Fn(&R) -> i64, wrap: impl Fn(R) -> T) -> (Vec<T>, PageInfo) {
    let wanted = usize::try_from(first).unwrap_or(0);
    let has_next_page = rows.len() > wanted;
    rows.truncate(wanted);
    let end_cursor = rows.last().map(|r| position(r).to_string());
    (rows.into_iter().map(wrap).collect(), PageInfo { has_next_page, end_cursor })
}

/// Queries.
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user, or null.
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        viewer(ctx).map(|me| user(me.sub.0))
    }

    /// Tickets, newest first, optionally with one status.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        status: Option<TicketStatus>,
    ) -> async_graphql::Result<TicketConnection> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let rows = db::tickets(
            &state(ctx)?.pool,
            limit,
            cursor(ctx, db::Cursor::Ticket, after.as_deref()).await?,
            status
                .map(|status| stored_text(&domain::TicketStatus::from(status), "ticket status"))
                .transpose()?
                .as_deref(),
            None,
        )
        .await
        .map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position, |row| Ticket { row });
        Ok(TicketConnection { nodes, page_info })
    }

    /// One ticket, or null when unknown.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Ticket>> {
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        Ok(db::ticket(&state(ctx)?.pool, id).await.map_err(internal)?.map(|row| Ticket { row }))
    }

    /// The tickets I sell, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn my_tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<TicketConnection> {
        let me = signed_in(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let after = cursor(ctx, db::Cursor::Ticket, after.as_deref()).await?;
        let rows = db::tickets(&state(ctx)?.pool, limit, after, None, Some(me.sub.0)).await.map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position, |row| Ticket { row });
        Ok(TicketConnection { nodes, page_info })
    }

    /// My orders, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<OrderConnection> {
        let me = signed_in(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let after = cursor(ctx, db::Cursor::Order, after.as_deref()).await?;
        let rows = db::orders_of(&state(ctx)?.pool, me.sub.0, limit, after).await.map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position, |row| Order { row });
        Ok(OrderConnection { nodes, page_info })
    }

    /// One order: for its buyer and admins.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Order>> {
        let me = signed_in(ctx)?;
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let Some(row) = db::order(&state(ctx)?.pool, id).await.map_err(internal)? else { return Ok(None) };
        if !access_of(&row)?.may_read(&me.actor()) {
            return Err(error(ErrorCode::Forbidden, "only the buyer or an admin may read this order", None));
        }
        Ok(Some(Order { row }))
    }
}

/// Mutations. Each sends a command and answers once the read models reflect it.
pub struct Mutation;

impl Mutation {
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
    /// the command wrote it (see [`Mutation::ticket_result`]).
    async fn order_result(ctx: &Context<'_>, request: Request) -> async_graphql::Result<Order> {
        let state = state(ctx)?;
        let success = state.command(request.clone()).await.map_err(from_failure)?;
        let Outcome::Order { order_id, ticket_id, status, cancel_reason, expires_at } = success.result else {
            return Err(internal("unexpected command result"));
        };
        if let Some(row) = db::order(&state.pool, order_id.0).await.map_err(internal)? {
            return Ok(Order { row });
        }
        match (&request.command, request.actor) {
            (Command::CreateOrder { .. }, Some(buyer)) => {
                tracing::warn!(%order_id, "answering a new hold not projected yet from its command");
                Ok(Order {
                    row: db::OrderRow {
                        id: order_id.0,
                        ticket_id: ticket_id.0,
                        buyer_id: buyer.id.0,
                        status: stored_text(&status, "order status")?,
                        cancel_reason: cancel_reason.map(|r| stored_text(&r, "cancel reason")).transpose()?,
                        expires_at,
                        payment_id: None,
                        // The placement is the order's first event: a lower bound, so a newer
                        // pushed state still replaces this one in clients.
                        version: 1,
                        created_at: time::OffsetDateTime::now_utc(),
                        created_position: i64::try_from(success.position).unwrap_or(i64::MAX),
                    },
                })
            }
            _ => Err(internal("order not projected in time")),
        }
    }

    async fn ticket_of(ctx: &Context<'_>, order: Uuid) -> async_graphql::Result<Option<TicketId>> {
        Ok(db::order(&state(ctx)?.pool, order).await.map_err(internal)?.map(|o| TicketId(o.ticket_id)))
    }
}

#[Object]
impl Mutation {
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
        let ticket_id = Self::ticket_of(ctx, order_id).await?;
        let command = Command::CancelOrder { order_id: OrderId(order_id), ticket_id };
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
        let ticket_id = Self::ticket_of(ctx, order).await?;
        let mut request = Request::new(Command::PayOrder { order_id: OrderId(order), ticket_id, token }).by(me.actor());
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

/// Subscriptions: pushed after every projector commit that touches what you watch.
pub struct Subscription;

/// Follows the projector's commits, yielding the rows `pick` chooses from each.
fn follow<T, F, Fut>(state: &AppState, pick: F) -> impl Stream<Item = T> + use<T, F, Fut>
where
    T: Send + 'static,
    F: Fn(AppState, std::sync::Arc<crate::Changed>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<T>> + Send,
{
    let receiver = state.changes.subscribe();
    // The position this subscriber has seen up to: where a re-read after a gap starts.
    let seen = *state.projected.borrow();
    let start = (receiver, state.clone(), pick, seen, false);
    futures::stream::unfold(start, |(mut receiver, state, pick, seen, mut behind)| async move {
        loop {
            let changed = match receiver.recv().await {
                // Nothing missed: the commit as notified.
                Ok(changed) if !changed.resync && !behind => changed,
                // A subscriber that skipped commits (or a listener that reconnected) may have
                // missed the last change of what it watches: re-read what changed since.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    match crate::db::changed_since(&state.pool, seen).await {
                        Ok(changed) => {
                            behind = false;
                            std::sync::Arc::new(changed)
                        }
                        Err(error) => {
                            // Still behind: try again at the next commit.
                            tracing::warn!(%error, "could not re-read after missed notifications");
                            behind = true;
                            continue;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            let seen = seen.max(changed.position);
            let items = pick(state.clone(), changed).await;
            return Some((futures::stream::iter(items), (receiver, state, pick, seen, behind)));
        }
    })
    .flatten()
}

#[SubscriptionRoot]
impl Subscription {
    /// The ticket after every change; every ticket when `id` is null.
    async fn ticket_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Ticket>> {
        let wanted = id.map(|id| parse_id(&id, "id")).transpose()?;
        Ok(follow(state(ctx)?, move |state, changed| async move {
            // After missed notifications one watched ticket is read as it is now, whatever the
            // (bounded) list of changes says.
            if changed.resync
                && let Some(id) = wanted
            {
                return db::ticket(&state.pool, id)
                    .await
                    .ok()
                    .flatten()
                    .map(|row| Ticket { row })
                    .into_iter()
                    .collect();
            }
            let mut tickets = Vec::new();
            for ticket in changed.tickets.iter().filter(|t| wanted.is_none_or(|w| w == **t)) {
                if let Ok(Some(row)) = changed.ticket(&state.pool, *ticket).await {
                    tickets.push(Ticket { row });
                }
            }
            tickets
        }))
    }

    /// The order after every change: for its buyer and admins only.
    async fn order_changed(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<impl Stream<Item = Order>> {
        let me = signed_in(ctx)?;
        let order = parse_id(&id, "id")?;
        let row = db::order(&state(ctx)?.pool, order).await.map_err(internal)?;
        match row {
            None => return Err(error(ErrorCode::NotFound, "order not found", None)),
            Some(row) if !access_of(&row)?.may_read(&me.actor()) => {
                return Err(error(ErrorCode::Forbidden, "only the buyer or an admin may follow this order", None));
            }
            Some(_) => {}
        }
        Ok(follow(state(ctx)?, move |state, changed| async move {
            if changed.resync {
                return db::order(&state.pool, order)
                    .await
                    .ok()
                    .flatten()
                    .map(|row| Order { row })
                    .into_iter()
                    .collect();
            }
            if !changed.orders.contains(&order) {
                return vec![];
            }
            changed.order(&state.pool, order).await.ok().flatten().map(|row| Order { row }).into_iter().collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_reads_back_and_an_unknown_one_is_an_error() {
        for status in [domain::TicketStatus::Available, domain::TicketStatus::Reserved, domain::TicketStatus::Sold] {
            let text = stored_text(&status, "ticket status").unwrap_or_else(|e| panic!("{e:?}"));
            assert!(stored::<domain::TicketStatus>(&text, "ticket status").is_ok_and(|s| s == status), "{text}");
        }
        for status in [
            domain::OrderStatus::Created,
            domain::OrderStatus::AwaitingPayment,
            domain::OrderStatus::Complete,
            domain::OrderStatus::Cancelled,
        ] {
            let text = stored_text(&status, "order status").unwrap_or_else(|e| panic!("{e:?}"));
            assert!(stored::<domain::OrderStatus>(&text, "order status").is_ok_and(|s| s == status), "{text}");
        }
        // Before, an unknown value read as AVAILABLE, CREATED or PENDING.
        assert!(stored::<domain::TicketStatus>("ON_FIRE", "ticket status").is_err());
        assert!(stored::<domain::OrderStatus>("", "order status").is_err());
        assert!(stored::<domain::PaymentStatus>("pending", "payment status").is_err());
        assert!(stored::<domain::CancelReason>("BORED", "cancel reason").is_err());
    }
}
