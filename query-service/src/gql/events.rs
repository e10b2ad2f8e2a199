//! Events (an organiser's on-sale, the domain's shows): their types, queries, mutations and the
//! coalesced `eventChanged` subscription (PRODUCT.md §2 "Events", §3).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription};
use command_api::{Command, Outcome, Request};
use domain::ShowId;
use futures::{Stream, StreamExt};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::*;
use crate::db::{self, EventRow, SeatRow, SectionRow, TicketTypeRow};

/// The shortest time between two pushes of `eventChanged` to one subscriber (at most 10 a second).
pub const EVENT_PUSH_INTERVAL: Duration = Duration::from_millis(100);

/// What a seat is doing.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::SeatStatus")]
pub enum SeatStatus {
    /// Anyone but the organiser may hold it.
    Available,
    /// An open order holds it.
    Reserved,
    /// Sold.
    Sold,
}

/// An event with everything its fields show, read at once: what `eventChanged` pushes, shared by
/// every subscriber of the event.
#[derive(Debug)]
pub struct EventSnapshot {
    /// The event.
    pub event: EventRow,
    /// Its ticket types.
    pub ticket_types: Vec<TicketTypeRow>,
    /// Its sections.
    pub sections: Vec<SectionRow>,
    /// Every seat, by its section's index, row by row.
    pub seats: std::collections::BTreeMap<i32, Vec<SeatRow>>,
    /// Each section's `seatMap`, by its index: written once per snapshot, not per subscriber.
    pub seat_maps: std::collections::BTreeMap<i32, String>,
}

impl EventSnapshot {
    /// Reads an event whole (four queries); `None` when unknown.
    ///
    /// # Errors
    /// A database error.
    pub async fn read(pool: &sqlx::PgPool, id: Uuid) -> sqlx::Result<Option<Self>> {
        let Some(event) = db::event(pool, id).await? else { return Ok(None) };
        let ticket_types = db::ticket_types_of(pool, &[id]).await?;
        let sections = db::sections_of(pool, &[id]).await?;
        let mut seats: std::collections::BTreeMap<i32, Vec<SeatRow>> = std::collections::BTreeMap::new();
        for seat in db::all_seats_of(pool, id).await? {
            seats.entry(seat.section_idx).or_default().push(seat);
        }
        let seat_maps = sections
            .iter()
            .map(|section| (section.idx, seat_map_of(section, seats.get(&section.idx).map_or(&[][..], Vec::as_slice))))
            .collect();
        Ok(Some(Self { event, ticket_types, sections, seats, seat_maps }))
    }
}

/// An organiser's event: ticket types, sections of numbered seats, and what is left.
pub struct Event {
    pub(super) row: EventRow,
    /// Everything read at once (a pushed event); otherwise fields read through the loaders.
    pub(super) snapshot: Option<Arc<EventSnapshot>>,
}

impl Event {
    fn from_row(row: EventRow) -> Self {
        Self { row, snapshot: None }
    }

    fn access(&self) -> domain::ShowAccess {
        domain::ShowAccess { organizer: domain::AccountId(self.row.organizer_id) }
    }

    async fn ticket_type_rows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketTypeRow>> {
        if let Some(snapshot) = &self.snapshot {
            return Ok(snapshot.ticket_types.clone());
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::TicketTypesKey(self.row.id)).await.map_err(internal)?;
        Ok(rows.unwrap_or_default())
    }

    async fn section_rows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SectionRow>> {
        if let Some(snapshot) = &self.snapshot {
            return Ok(snapshot.sections.clone());
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::SectionsKey(self.row.id)).await.map_err(internal)?;
        Ok(rows.unwrap_or_default())
    }
}

#[Object]
impl Event {
    /// The event id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// The title.
    async fn title(&self) -> &str {
        &self.row.title
    }
    /// Where it takes place.
    async fn venue(&self) -> &str {
        &self.row.venue
    }
    /// When it starts (RFC 3339).
    async fn starts_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.starts_at)
    }
    /// Who organises it.
    async fn organizer(&self) -> User {
        user(self.row.organizer_id)
    }
    /// Its general-admission ticket types, in the organiser's order.
    async fn ticket_types(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TicketType>> {
        Ok(self.ticket_type_rows(ctx).await?.into_iter().map(|row| TicketType { row }).collect())
    }
    /// Its sections of numbered seats, in the organiser's order.
    async fn sections(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Section>> {
        let snapshot = self.snapshot.clone();
        Ok(self.section_rows(ctx).await?.into_iter().map(|row| Section { row, snapshot: snapshot.clone() }).collect())
    }
    /// Tickets left in all: every ticket type's and every section's.
    async fn available(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let types: i32 = self.ticket_type_rows(ctx).await?.iter().map(available_of).sum();
        let seats: i32 = self.section_rows(ctx).await?.iter().map(|s| s.available).sum();
        Ok(types + seats)
    }
    /// When it was created (RFC 3339).
    async fn created_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.created_at)
    }
    /// When anything about it last happened (RFC 3339).
    async fn updated_at(&self) -> async_graphql::Result<String> {
        rfc3339(self.row.updated_at)
    }
    /// How many changes it has seen (its events, orders on it included).
    async fn version(&self) -> i32 {
        self.row.version
    }
    /// Every change, oldest first: for its organiser and admins only.
    #[graphql(complexity = "HISTORY_COST + child_complexity")]
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<EventChange>> {
        let me = signed_in(ctx)?;
        if !self.access().may_read_history(&me.actor()) {
            return Err(ApiError::Forbidden("only the organiser or an admin may read the history").into());
        }
        let rows = loaders(ctx)?.load_one(crate::loaders::EventHistoryKey(self.row.id)).await.map_err(internal)?;
        rows.unwrap_or_default()
            .into_iter()
            .map(|row| Ok(EventChange { kind: row.event_type, at: rfc3339(row.at)?, version: row.version }))
            .collect()
    }
    /// Whether the viewer may change it: its organiser or an admin. False when signed out.
    async fn viewer_can_edit(&self, ctx: &Context<'_>) -> bool {
        actor(ctx).is_some_and(|me| self.access().may_edit(&me))
    }
    /// Whether the viewer may order tickets to it: anyone signed in but its organiser, before it
    /// starts. False when signed out.
    async fn viewer_can_order(&self, ctx: &Context<'_>) -> bool {
        actor(ctx).is_some_and(|me| self.access().may_order(me.id))
            && self.row.starts_at > time::OffsetDateTime::now_utc()
    }
}

fn available_of(row: &TicketTypeRow) -> i32 {
    (row.capacity - row.held - row.sold).max(0)
}

/// One line of an event's history.
#[derive(SimpleObject)]
pub struct EventChange {
    /// The stored event's type (`ShowCreated`, `ShowOrdersPlaced`, …).
    #[graphql(name = "type")]
    pub kind: String,
    /// When (RFC 3339).
    pub at: String,
    /// The event's version after it.
    pub version: i32,
}

/// A general-admission ticket type.
pub struct TicketType {
    pub(super) row: TicketTypeRow,
}

#[Object]
impl TicketType {
    /// The ticket type id (`ticketTypeId` of an order item).
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// Its name.
    async fn name(&self) -> &str {
        &self.row.name
    }
    /// The price of one ticket, in cents.
    async fn price_cents(&self) -> i64 {
        self.row.price_cents
    }
    /// The currency (`USD`).
    async fn currency(&self) -> &'static str {
        domain::Currency::Usd.code()
    }
    /// How many tickets it has.
    async fn capacity(&self) -> i32 {
        self.row.capacity
    }
    /// Capacity − held − sold.
    async fn available(&self) -> i32 {
        available_of(&self.row)
    }
    /// How many of its tickets open orders hold.
    async fn held(&self) -> i32 {
        self.row.held
    }
    /// How many of its tickets are sold.
    async fn sold(&self) -> i32 {
        self.row.sold
    }
}

/// A section of numbered seats.
pub struct Section {
    pub(super) row: SectionRow,
    snapshot: Option<Arc<EventSnapshot>>,
}

#[Object]
impl Section {
    /// Its name: the first part of its seats' ids.
    async fn name(&self) -> &str {
        &self.row.name
    }
    /// The price of each seat, in cents.
    async fn price_cents(&self) -> i64 {
        self.row.price_cents
    }
    /// How many rows.
    async fn rows(&self) -> i32 {
        self.row.rows
    }
    /// How many seats each row has.
    async fn seats_per_row(&self) -> i32 {
        self.row.seats_per_row
    }
    /// How many seats are available.
    async fn available(&self) -> i32 {
        self.row.available
    }
    /// Its seats, row by row, optionally only those with one status.
    #[graphql(complexity = "SEATS_COST + child_complexity")]
    async fn seats(&self, ctx: &Context<'_>, status: Option<SeatStatus>) -> async_graphql::Result<Vec<Seat>> {
        let rows = match &self.snapshot {
            Some(snapshot) => snapshot.seats.get(&self.row.idx).cloned().unwrap_or_default(),
            None => db::seats_of(&state(ctx)?.pool, self.row.event_id, self.row.idx).await.map_err(internal)?,
        };
        let wanted = status.map(|s| stored_text(&domain::SeatStatus::from(s), "seat status")).transpose()?;
        Ok(rows
            .into_iter()
            .filter(|s| wanted.as_deref().is_none_or(|w| w == s.status))
            .map(|row| Seat { section: self.row.name.clone(), row })
            .collect())
    }
    /// Every seat's status in one string, row by row, one letter per seat: `A` available, `R`
    /// reserved (held), `S` sold; seat `<section>-<row>-<number>` is at
    /// `(row − 1) × seatsPerRow + number − 1`. What a live seat map needs, at a fraction of
    /// `seats`' size.
    #[graphql(complexity = "SEATS_COST")]
    async fn seat_map(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        if let Some(map) = self.snapshot.as_ref().and_then(|s| s.seat_maps.get(&self.row.idx)) {
            return Ok(map.clone());
        }
        let rows = db::seats_of(&state(ctx)?.pool, self.row.event_id, self.row.idx).await.map_err(internal)?;
        Ok(seat_map_of(&self.row, &rows))
    }
}

/// A section's seats as one letter each, row by row: `A` available, `R` reserved (held), `S` sold
/// (the initials of `SeatStatus`). Each letter is at its seat's place, so a seat missing from the
/// rows (or a status no rule writes) reads as `S` and is never offered, and no other seat moves.
fn seat_map_of(section: &SectionRow, seats: &[SeatRow]) -> String {
    let per_row = usize::try_from(section.seats_per_row).unwrap_or(0);
    let rows = usize::try_from(section.rows).unwrap_or(0);
    let mut map = vec![b'S'; rows * per_row];
    for seat in seats {
        let (row, number) = (usize::try_from(seat.row).unwrap_or(0), usize::try_from(seat.number).unwrap_or(0));
        if (1..=rows).contains(&row) && (1..=per_row).contains(&number) {
            map[(row - 1) * per_row + number - 1] = match seat.status.as_str() {
                "AVAILABLE" => b'A',
                "RESERVED" => b'R',
                _ => b'S',
            };
        }
    }
    String::from_utf8(map).unwrap_or_default()
}

/// What a section's seat list costs on top of its fields: it is long (up to 20,000 seats), so a
/// query may ask for the seats of one event's sections, not of a page of events.
pub(super) const SEATS_COST: usize = 1_000;

/// A numbered seat.
pub struct Seat {
    section: String,
    row: SeatRow,
}

#[Object]
impl Seat {
    /// Its id: `<section>-<row>-<number>` (`A-3-17`).
    async fn id(&self) -> String {
        format!("{}-{}-{}", self.section, self.row.row, self.row.number)
    }
    /// Its section's name.
    async fn section(&self) -> &str {
        &self.section
    }
    /// Its row, from 1.
    async fn row(&self) -> i32 {
        self.row.row
    }
    /// Its number in the row, from 1.
    async fn number(&self) -> i32 {
        self.row.number
    }
    /// Whether it is available, held or sold.
    async fn status(&self) -> async_graphql::Result<SeatStatus> {
        stored::<domain::SeatStatus>(&self.row.status, "seat status").map(Into::into)
    }
}

/// One ticket of an order on an event: a ticket of a type, or a seat, at its price.
pub struct OrderItem {
    pub(super) row: db::OrderItemRow,
}

#[Object]
impl OrderItem {
    /// The ticket type of a general-admission ticket.
    async fn ticket_type(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<TicketType>> {
        let Some(id) = self.row.ticket_type_id else { return Ok(None) };
        let row = loaders(ctx)?.load_one(crate::loaders::TicketTypeKey(id)).await.map_err(internal)?;
        Ok(row.map(|row| TicketType { row }))
    }
    /// The seat's id (`A-3-17`) of a seat.
    async fn seat(&self) -> Option<String> {
        match (&self.row.section, self.row.row, self.row.number) {
            (Some(section), Some(row), Some(number)) => Some(format!("{section}-{row}-{number}")),
            _ => None,
        }
    }
    /// Its price at the time of the hold, in cents.
    async fn price_cents(&self) -> i64 {
        self.row.price_cents
    }
}

/// A page of events.
#[derive(SimpleObject)]
pub struct EventConnection {
    /// The events.
    pub nodes: Vec<Event>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A ticket type of a new event.
#[derive(InputObject)]
pub struct TicketTypeInput {
    /// 1..=60 characters, unique in the event.
    pub name: String,
    /// 1..=10,000,000 cents.
    pub price_cents: i32,
    /// 1..=100,000 tickets.
    pub capacity: i32,
}

/// A section of numbered seats of a new event.
#[derive(InputObject)]
pub struct SectionInput {
    /// 1..=20 letters, digits and spaces, unique in the event.
    pub name: String,
    /// The price of each seat: 1..=10,000,000 cents.
    pub price_cents: i32,
    /// 1..=100 rows.
    pub rows: i32,
    /// 1..=200 seats per row.
    pub seats_per_row: i32,
}

/// A new event.
#[derive(InputObject)]
pub struct CreateEventInput {
    /// 1..=120 characters after trimming.
    pub title: String,
    /// 1..=120 characters after trimming.
    pub venue: String,
    /// When it starts (RFC 3339, in the future).
    pub starts_at: String,
    /// General-admission ticket types.
    #[graphql(default)]
    pub ticket_types: Vec<TicketTypeInput>,
    /// Sections of numbered seats.
    #[graphql(default)]
    pub sections: Vec<SectionInput>,
}

/// Tickets of one ticket type for an event order.
#[derive(InputObject)]
pub struct OrderItemInput {
    /// The ticket type.
    pub ticket_type_id: ID,
    /// How many.
    pub quantity: i32,
}

fn parse_time(raw: &str, field: &'static str) -> async_graphql::Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| ApiError::bad_input(field, format!("{field} must be an RFC 3339 time")).into())
}

/// Queries about events.
#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Events, soonest first; `upcoming` (the default) leaves out those that have started. With
    /// `search`, those whose titles or venues have every word of it (case and accents aside, the
    /// last word as a prefix), best match first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        #[graphql(default_with = "Some(true)")] upcoming: Option<bool>,
        search: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let (pool, upcoming) = (&state(ctx)?.pool, upcoming.unwrap_or(true));
        if let Some(words) = search_words(search.as_deref())? {
            let after = search_cursor(after.as_deref(), true)?;
            let rows = db::search_events(pool, &words, limit, after, upcoming).await.map_err(internal)?;
            let cursor = |r: &db::RankedEvent| db::SearchCursor::after_event(r).encode();
            let (nodes, page_info) = page(rows, first, cursor, |r| Event::from_row(r.row));
            return Ok(EventConnection { nodes, page_info });
        }
        let after = cursor(ctx, db::Cursor::Event, after.as_deref()).await?;
        let rows = db::events(pool, limit, after, upcoming).await.map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position.to_string(), Event::from_row);
        Ok(EventConnection { nodes, page_info })
    }

    /// One event, or null when unknown.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Event>> {
        let Ok(id) = Uuid::parse_str(&id) else { return Ok(None) };
        let row = loaders(ctx)?.load_one(crate::loaders::EventKey(id)).await.map_err(internal)?;
        Ok(row.map(Event::from_row))
    }

    /// The events I organise, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn my_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let me = signed_in(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        let limit = page_limit(first)?;
        let after = cursor(ctx, db::Cursor::Event, after.as_deref()).await?;
        let rows = db::events_of(&state(ctx)?.pool, me.sub.0, limit, after).await.map_err(internal)?;
        let (nodes, page_info) = page(rows, first, |r| r.created_position.to_string(), Event::from_row);
        Ok(EventConnection { nodes, page_info })
    }
}

/// Mutations of events.
#[derive(Default)]
pub struct EventMutation;

impl EventMutation {
    async fn event_result(ctx: &Context<'_>, request: Request) -> async_graphql::Result<Event> {
        let state = state(ctx)?;
        let success = state.command(request).await.map_err(from_failure)?;
        let Outcome::Event { event_id } = success.result else { return Err(internal("unexpected command result")) };
        let row = db::event(&state.pool, event_id.0).await.map_err(internal)?;
        row.map(Event::from_row).ok_or_else(|| internal("event not projected in time"))
    }
}

#[Object]
impl EventMutation {
    /// Puts an event on sale; the caller organises it.
    async fn create_event(&self, ctx: &Context<'_>, input: CreateEventInput) -> async_graphql::Result<Event> {
        let me = signed_in(ctx)?;
        let command = Command::CreateEvent {
            title: input.title,
            venue: input.venue,
            starts_at: parse_time(&input.starts_at, "startsAt")?,
            ticket_types: input
                .ticket_types
                .into_iter()
                .map(|t| command_api::TicketTypeInput {
                    name: t.name,
                    price_cents: i64::from(t.price_cents),
                    capacity: i64::from(t.capacity),
                })
                .collect(),
            sections: input
                .sections
                .into_iter()
                .map(|s| command_api::SectionInput {
                    name: s.name,
                    price_cents: i64::from(s.price_cents),
                    rows: i64::from(s.rows),
                    seats_per_row: i64::from(s.seats_per_row),
                })
                .collect(),
        };
        Self::event_result(ctx, Request::new(command).by(me.actor())).await
    }

    /// Changes an event's title, venue or start time (organiser or admin).
    async fn update_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: Option<String>,
        venue: Option<String>,
        starts_at: Option<String>,
    ) -> async_graphql::Result<Event> {
        let me = signed_in(ctx)?;
        let event_id = ShowId(parse_id(&id, "id")?);
        let starts_at = starts_at.map(|s| parse_time(&s, "startsAt")).transpose()?;
        let command = Command::UpdateEvent { event_id, title, venue, starts_at };
        Self::event_result(ctx, Request::new(command).by(me.actor())).await
    }

    /// Holds tickets and seats of an event for `ORDER_HOLD_SECONDS`: all or nothing.
    async fn create_event_order(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        items: Option<Vec<OrderItemInput>>,
        seats: Option<Vec<String>>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Order> {
        let me = signed_in(ctx)?;
        let state = state(ctx)?;
        // An id that is no id names no event (or type): unknown, as the domain would say.
        let not_found = |what: &'static str| async_graphql::Error::from(ApiError::NotFound(what));
        let event_id = ShowId(Uuid::parse_str(&event_id).map_err(|_| not_found("event not found"))?);
        let items = items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let ticket_type_id =
                    Uuid::parse_str(&item.ticket_type_id).map_err(|_| not_found("ticket type not found"))?;
                Ok(command_api::OrderItemInput {
                    ticket_type_id: domain::TicketTypeId(ticket_type_id),
                    quantity: i64::from(item.quantity),
                })
            })
            .collect::<async_graphql::Result<Vec<_>>>()?;
        let command = Command::CreateEventOrder { event_id, items, seats: seats.unwrap_or_default() };
        let mut request = Request::new(command).by(me.actor());
        request.idempotency_key = idempotency_key;
        let success = state.command(request).await.map_err(from_failure)?;
        let Outcome::EventOrder { order_id, .. } = success.result else {
            return Err(internal("unexpected command result"));
        };
        let row = state.written_order(order_id.0).await.map_err(internal)?;
        row.map(|row| Order { row }).ok_or_else(|| internal("order not projected in time"))
    }
}

/// Subscriptions to events.
#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// The event with its availability after changes: at most 10 pushes a second, the last one
    /// always the latest state. Every subscriber of an event shares one read per commit.
    async fn event_changed(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<impl Stream<Item = Event>> {
        let event = parse_id(&id, "id")?;
        let state = state(ctx)?.clone();
        // Known when any snapshot of it is cached (events are never removed): 10,000 subscribers
        // arriving at once cost one read, not 10,000. Only an unknown answer is checked afresh.
        let cached = matches!(state.event_snapshots.get(&state.pool, event, 0).await, Ok(Some(_)));
        if !cached && db::event(&state.pool, event).await.map_err(internal)?.is_none() {
            return Err(ApiError::NotFound("event not found").into());
        }
        Ok(event_changes(state, event))
    }
}

/// The pushes of one `eventChanged` subscriber of `event`: at most one per
/// [`EVENT_PUSH_INTERVAL`], each the latest state after the commits that changed it.
fn event_changes(state: crate::AppState, event: Uuid) -> impl Stream<Item = Event> {
    let receiver = state.changes.subscribe();
    let watching = crate::metrics::Watching::new(&state.metrics);
    let start = (receiver, state, None::<tokio::time::Instant>, watching);
    futures::stream::unfold(start, move |(mut receiver, state, last, watching)| async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        // Wait for a commit that changed this event (or one after missed notifications): the
        // position to read at or after.
        let mut at_least = loop {
            match receiver.recv().await {
                Ok(changed) if changed.resync || changed.events.contains(&event) => break changed.position,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => break *state.projected.borrow(),
                Err(RecvError::Closed) => return None,
            }
        };
        if let Some(last) = last {
            tokio::time::sleep_until(last + EVENT_PUSH_INTERVAL).await;
        }
        // What came meanwhile is covered by reading the latest state now.
        loop {
            match receiver.try_recv() {
                Ok(changed) if changed.resync || changed.events.contains(&event) => {
                    at_least = at_least.max(changed.position);
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => at_least = at_least.max(*state.projected.borrow()),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        // One read for every subscriber of this event at this position (the cache is shared).
        let pushed = match state.event_snapshots.get(&state.pool, event, at_least).await {
            Ok(Some(snapshot)) => Some(Event { row: snapshot.event.clone(), snapshot: Some(snapshot) }),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "could not read a changed event");
                None
            }
        };
        Some((pushed, (receiver, state, Some(tokio::time::Instant::now()), watching)))
    })
    .filter_map(|pushed| async move { pushed })
}

#[cfg(test)]
mod tests {
    /// The size of what `f` returns, without calling it.
    fn size_of_return<A, B, R>(_: impl Fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// 10,000 watchers of an event each hold one of these while idle (944 bytes when written):
    /// a read future inlined into it would be held by every one of them.
    #[test]
    fn an_idle_subscriber_holds_little() {
        let bytes = size_of_return(super::event_changes);
        assert!(bytes <= 2048, "an eventChanged subscriber's stream is {bytes} bytes");
    }
}
