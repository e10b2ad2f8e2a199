//! The GraphQL schema, code first: every type, query, mutation and subscription of PRODUCT.md §3,
//! one file per job: [`error`] (every error the API answers, and its `extensions.code`), [`types`]
//! (objects and enums), [`queries`], [`mutations`], [`subscriptions`]. This file holds what they
//! share: the request's context, ids, times, stored values and pages.

mod error;
mod events;
mod mutations;
mod queries;
mod subscriptions;
mod types;

use async_graphql::{Context, ID};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::db;
use crate::session::Claims;
use crate::{AppState, Viewer};

pub use error::ApiError;
use error::{from_failure, internal};
pub use events::{
    CreateEventInput, EVENT_PUSH_INTERVAL, Event, EventChange, EventConnection, EventMutation, EventQuery,
    EventSnapshot, EventSubscription, OrderItem, OrderItemInput, Seat, SeatStatus, Section, SectionInput, TicketType,
    TicketTypeInput,
};
pub use mutations::TicketMutation;
pub use queries::TicketQuery;
pub use subscriptions::TicketSubscription;
pub use types::*;

/// Every query: tickets and orders, and events.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct Query(TicketQuery, EventQuery);

/// Every mutation: accounts, tickets and orders, and events.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(TicketMutation, EventMutation);

/// Every subscription: tickets and orders, and events.
#[derive(async_graphql::MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct Subscription(TicketSubscription, EventSubscription);

/// The largest page a connection returns.
pub(super) const MAX_PAGE: i32 = 100;

/// The page a connection returns when `first` is left out or null.
pub(super) const DEFAULT_PAGE: i32 = 20;

/// An enum's serde name (`AVAILABLE`, `CREATED`, …): the form the read models store.
pub(super) fn stored_text(value: &impl serde::Serialize, what: &'static str) -> async_graphql::Result<String> {
    domain::stored::text(value, what).map_err(internal)
}

/// A fault of ours as a response error of its own: logged with `detail`, answered without it.
pub(crate) fn internal_error(detail: &str) -> async_graphql::ServerError {
    internal(detail).into_server_error(async_graphql::Pos::default())
}

/// A time as RFC 3339. Only a year outside 0..=9999 (or an offset with seconds) cannot be written
/// so: a stored value no rule produces, answered as an internal error rather than an empty string.
pub(super) fn rfc3339(t: time::OffsetDateTime) -> async_graphql::Result<String> {
    t.format(&Rfc3339).map_err(|e| internal(format!("the time {t} has no RFC 3339 form: {e}")))
}

pub(super) fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

pub(super) fn viewer<'a>(ctx: &Context<'a>) -> Option<&'a Claims> {
    ctx.data_opt::<Viewer>().and_then(|v| v.0.as_ref())
}

pub(super) fn signed_in<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Claims> {
    viewer(ctx).ok_or_else(|| ApiError::Unauthenticated("sign in first").into())
}

pub(super) fn parse_id(id: &ID, field: &'static str) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::bad_input(field, format!("{field} is not a valid id")).into())
}

/// A status as the read models store it (the domain enum's serde form), read back as the
/// domain's enum. A value no domain variant names is an inconsistency: logged and answered as an
/// internal error, never shown as some default.
pub(super) fn stored<T: serde::de::DeserializeOwned>(value: &str, what: &'static str) -> async_graphql::Result<T> {
    domain::stored::read(value, what).map_err(internal)
}

/// The signed-in viewer as the domain's actor, or `None` when signed out.
pub(super) fn actor(ctx: &Context<'_>) -> Option<domain::Actor> {
    viewer(ctx).map(Claims::actor)
}

pub(super) fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a crate::loaders::Loaders> {
    ctx.data::<crate::loaders::Loaders>()
}

/// The user with this id; its row is read only if a field asks for more than the id.
pub(super) fn user(id: Uuid) -> User {
    User { id, row: None, is_viewer: false }
}

pub(super) fn page_limit(first: i32) -> async_graphql::Result<i64> {
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::bad_input("first", format!("first must be between 0 and {MAX_PAGE}")).into());
    }
    Ok(i64::from(first) + 1)
}

/// The words of a `search` argument: `None` when there is none to search for (absent, or no
/// letters or digits in it); longer than [`db::SEARCH_MAX_CHARS`] is refused.
pub(super) fn search_words(search: Option<&str>) -> async_graphql::Result<Option<Vec<String>>> {
    let Some(search) = search else { return Ok(None) };
    if search.chars().count() > db::SEARCH_MAX_CHARS {
        let message = format!("search must be at most {} characters", db::SEARCH_MAX_CHARS);
        return Err(ApiError::bad_input("search", message).into());
    }
    let words = db::search_words(search);
    Ok(if words.is_empty() { None } else { Some(words) })
}

/// What one item of a page costs in the complexity limit: `first` times its selection, so a
/// client asking for 100 items pays for 100.
pub(super) fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)).unwrap_or(1) * child_complexity
}

/// What a ticket's history costs on top of its fields: it is a list of unbounded length.
pub(super) const HISTORY_COST: usize = 10;

/// The position an `after` cursor names; a cursor that names no item of `table` is refused.
pub(super) async fn cursor(
    ctx: &Context<'_>,
    table: db::Cursor,
    after: Option<&str>,
) -> async_graphql::Result<Option<i64>> {
    let Some(after) = after else { return Ok(None) };
    let unknown = || async_graphql::Error::from(ApiError::bad_input("after", "after is not a cursor of this list"));
    let position = after.parse::<i64>().map_err(|_| unknown())?;
    if !db::cursor_exists(&state(ctx)?.pool, table, position).await.map_err(internal)? {
        return Err(unknown());
    }
    Ok(Some(position))
}

/// The `after` of a search: a cursor of the same search's pages (see [`db::SearchCursor`]), else
/// refused like any unknown cursor.
pub(super) fn search_cursor(after: Option<&str>, event: bool) -> async_graphql::Result<Option<db::SearchCursor>> {
    let Some(after) = after else { return Ok(None) };
    match db::SearchCursor::decode(after, event) {
        Some(cursor) => Ok(Some(cursor)),
        None => Err(ApiError::bad_input("after", "after is not a cursor of this list").into()),
    }
}

pub(super) fn page<R, T>(
    mut rows: Vec<R>,
    first: i32,
    cursor: impl Fn(&R) -> String,
    wrap: impl Fn(R) -> T,
) -> (Vec<T>, PageInfo) {
    let wanted = usize::try_from(first).unwrap_or(0);
    let has_next_page = rows.len() > wanted;
    rows.truncate(wanted);
    let end_cursor = rows.last().map(cursor);
    (rows.into_iter().map(wrap).collect(), PageInfo { has_next_page, end_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_rfc3339_and_one_without_that_form_is_an_error_not_an_empty_string() {
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(rfc3339(epoch).ok().as_deref(), Some("1970-01-01T00:00:00Z"));
        let odd = time::UtcOffset::from_hms(0, 0, 30).unwrap_or_else(|e| panic!("{e}"));
        let error = rfc3339(epoch.to_offset(odd)).err().unwrap_or_else(|| panic!("formatted"));
        assert_eq!(error.message, "internal error", "no detail for clients");
    }

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
