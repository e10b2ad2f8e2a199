//! Queries: reads of the read models, checked against the domain's rules.

use async_graphql::{Context, ID, Object};
use uuid::Uuid;

use super::*;
use crate::db;

/// Queries about users, tickets and orders.
#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// The signed-in user, or null.
    async fn me(&self, ctx: &Context<'_>) -> Option<User> {
        viewer(ctx).map(|me| user(me.sub.0))
    }

    /// Tickets, newest first, optionally with one status; with `search`, those whose titles have
    /// every word of it (case and accents aside, the last word as a prefix), best match first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        status: Option<TicketStatus>,
        search: Option<String>,
    ) -> async_graphql::Result<TicketConnection> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let status =
            status.map(|status| stored_text(&domain::TicketStatus::from(status), "ticket status")).transpose()?;
        let pool = &state(ctx)?.pool;
        if let Some(words) = search_words(search.as_deref())? {
            let after = search_cursor(after.as_deref(), false)?;
            let rows = db::search_tickets(pool, &words, limit, after, status.as_deref()).await.map_err(internal)?;
            let cursor = |r: &db::RankedTicket| db::SearchCursor::after_ticket(r).encode();
            let (nodes, page_info) = page(rows, first, cursor, |r| Ticket { row: r.row });
            return Ok(TicketConnection { nodes, page_info });
        }
        let after = cursor(ctx, db::Cursor::Ticket, after.as_deref()).await?;
        let rows = db::tickets(pool, limit, after, status.as_deref(), None).await.map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position.to_string(), |row| Ticket { row });
        Ok(TicketConnection { nodes, page_info })
    }

    /// One ticket, or null when unknown.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Ticket>> {
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let row = state(ctx)?.tickets.get(id).await.map_err(internal)?;
        Ok(row.map(|row| Ticket { row }))
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
        let (nodes, page_info) = page(rows, first, |r| r.created_position.to_string(), |row| Ticket { row });
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
        let (nodes, page_info) = page(rows, first, |r| r.created_position.to_string(), |row| Order { row });
        Ok(OrderConnection { nodes, page_info })
    }

    /// One order: for its buyer and admins.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Order>> {
        let me = signed_in(ctx)?;
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let Some(row) = state(ctx)?.orders.get(id).await.map_err(internal)? else { return Ok(None) };
        if !access_of(&row)?.may_read(&me.actor()) {
            return Err(ApiError::Forbidden("only the buyer or an admin may read this order").into());
        }
        Ok(Some(Order { row }))
    }
}
