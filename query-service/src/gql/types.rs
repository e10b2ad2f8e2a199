//! The objects and enums of the schema. Enums are the domain's (async-graphql `remote` enums);
//! who may see or do what is asked of the domain's rules (`domain::access`).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use uuid::Uuid;

use super::{ApiError, HISTORY_COST, actor, internal, loaders, rfc3339, signed_in, state, stored, user};
use crate::db::{AccountRow, HistoryRow, OrderRow, PaymentRow, TicketRow};

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

/// A person with an account.
pub struct User {
    pub(super) id: Uuid,
    /// The account row when it is at hand; otherwise read (batched) only when a field needs it,
    /// so `seller { id }` costs no query.
    pub(super) row: Option<AccountRow>,
    /// Answering `signUp`/`signIn`: the cookie is only being set, but this is the viewer.
    pub(super) is_viewer: bool,
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

impl TryFrom<HistoryRow> for TicketEvent {
    type Error = async_graphql::Error;

    fn try_from(row: HistoryRow) -> async_graphql::Result<Self> {
        Ok(Self { kind: row.event_type, at: rfc3339(row.at)?, version: row.version })
    }
}

/// A ticket for sale.
pub struct Ticket {
    pub(super) row: TicketRow,
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
    async fn created_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.created_at)
    }
    /// When it last changed (RFC 3339).
    async fn updated_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.updated_at)
    }
    /// Every event of the ticket, oldest first: for its seller and admins only.
    #[graphql(complexity = "HISTORY_COST + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketEvent>> {
        let me = signed_in(ctx)?;
        if !self.access()?.may_read_history(&me.actor()) {
            return Err(ApiError::Forbidden("only the seller or an admin may read the history").into());
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::HistoryKey(self.row.id)).await.map_err(internal)?;
        rows.unwrap_or_default().into_iter().map(TicketEvent::try_from).collect()
    }
    /// Whether the viewer may change its title or price now: its seller or an admin, while it is
    /// available. False when signed out.
    async fn viewer_can_edit(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_edit(&me))
    }
    /// Whether the viewer may hold it now: anyone signed in but its seller, while it is
    /// available. False when signed out.
    async fn viewer_can_hold(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_hold(me.id))
    }
    /// Whether the viewer may read its `history`: its seller or an admin. False when signed out.
    async fn viewer_can_read_history(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(me) = actor(ctx) else { return Ok(false) };
        Ok(self.access()?.may_read_history(&me))
    }
}

/// An order: a buyer's hold on a ticket.
pub struct Order {
    pub(super) row: OrderRow,
}

impl Order {
    /// The facts the domain's rules about this order need.
    fn access(&self) -> async_graphql::Result<domain::OrderAccess> {
        access_of(&self.row)
    }
}

/// The facts the domain's rules about an order need, from its row.
pub(super) fn access_of(row: &OrderRow) -> async_graphql::Result<domain::OrderAccess> {
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
    /// The ticket it holds (null for an order on an event).
    async fn ticket(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Ticket>> {
        let Some(id) = self.row.ticket_id else { return Ok(None) };
        let row = loaders(ctx)?.load_one(crate::loaders::TicketKey(id)).await.map_err(internal)?;
        row.map(|row| Some(Ticket { row })).ok_or_else(|| internal("order without ticket"))
    }
    /// The event it holds tickets of (null for an order on a ticket).
    async fn event(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<super::Event>> {
        let Some(id) = self.row.event_id else { return Ok(None) };
        let row = loaders(ctx)?.load_one(crate::loaders::EventKey(id)).await.map_err(internal)?;
        row.map(|row| Some(super::Event { row, snapshot: None })).ok_or_else(|| internal("order without event"))
    }
    /// Its tickets, one item each, at their prices at the time of the hold (a ticket order has
    /// none: its ticket is `ticket`).
    async fn items(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::OrderItem>> {
        if self.row.event_id.is_none() {
            return Ok(vec![]);
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::ItemsKey(self.row.id)).await.map_err(internal)?;
        Ok(rows.unwrap_or_default().into_iter().map(|row| super::OrderItem { row }).collect())
    }
    /// What the buyer pays, in cents: the ticket's price, or the sum of the items' prices, at the
    /// time of the hold.
    async fn amount_cents(&self) -> i64 {
        self.row.amount_cents
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
    async fn expires_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.expires_at)
    }
    /// When it was placed (RFC 3339).
    async fn created_at(&self) -> async_graphql::Result<String> {
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
    pub(super) row: PaymentRow,
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
    async fn created_at(&self) -> async_graphql::Result<String> {
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
