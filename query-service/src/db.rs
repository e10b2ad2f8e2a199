//! Reads from the read models (the views in schema `read`, maintained by the projector).

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A ticket as the gateway reads it from `read.tickets`: what `Ticket` answers, and the
/// facts the domain's rules about it need (seller, status).
#[derive(Debug, Clone, FromRow)]
pub struct TicketRow {
    /// The ticket's id, as the API shows it.
    pub id: Uuid,
    /// Who sells it: `seller`, and who may edit it.
    pub seller_id: Uuid,
    /// The title as listed or last edited.
    pub title: String,
    /// The current price in cents.
    pub price_cents: i64,
    /// The ISO 4217 code (`USD`).
    pub currency: String,
    /// The domain's `TicketStatus` in its serde form (`AVAILABLE`, …).
    pub status: String,
    /// How many events of its listing were applied: clients keep the highest.
    pub version: i32,
    /// When it was listed.
    pub created_at: OffsetDateTime,
    /// When anything in its listing last happened.
    pub updated_at: OffsetDateTime,
    /// The stream position of its listing: the cursor of newest-first pages.
    pub created_position: i64,
}

/// An order as the gateway reads it from `read.orders`: what `Order` answers, and the facts
/// the domain's rules about it need (buyer, status, expiry).
#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    /// The order's id, as the API shows it.
    pub id: Uuid,
    /// The ticket it holds or bought (none for an order on an event).
    pub ticket_id: Option<Uuid>,
    /// The event it holds tickets of (none for an order on a ticket).
    pub event_id: Option<Uuid>,
    /// What the buyer pays, in cents: the price of the ticket, or the sum of the items' prices,
    /// at the time of the hold.
    pub amount_cents: i64,
    /// Who placed it: who may read, cancel and pay it.
    pub buyer_id: Uuid,
    /// The domain's `OrderStatus` in its serde form (`CREATED`, …).
    pub status: String,
    /// The domain's `CancelReason` in its serde form, once cancelled.
    pub cancel_reason: Option<String>,
    /// When the hold lapses unless paid.
    pub expires_at: OffsetDateTime,
    /// The latest payment attempt, shown as `payment`.
    pub payment_id: Option<Uuid>,
    /// How many events about it were applied: clients keep the highest.
    pub version: i32,
    /// When it was placed.
    pub created_at: OffsetDateTime,
    /// The stream position of its placement: the cursor of newest-first pages.
    pub created_position: i64,
}

/// A payment attempt as the gateway reads it from `read.payments`.
#[derive(Debug, Clone, FromRow)]
pub struct PaymentRow {
    /// The payment's id, as the API shows it.
    pub id: Uuid,
    /// The order it pays for.
    pub order_id: Uuid,
    /// What is charged, in cents.
    pub amount_cents: i64,
    /// The ISO 4217 code (`USD`).
    pub currency: String,
    /// The domain's `PaymentStatus` in its serde form (`PENDING`, …).
    pub status: String,
    /// The provider's reference, once it answered.
    pub provider_ref: Option<String>,
    /// When the attempt started.
    pub created_at: OffsetDateTime,
}

/// The public part of an account, from `read.accounts`.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    /// The account's id.
    pub id: Uuid,
    /// Its address: shown to the account itself and to admins only.
    pub email: String,
}

/// One line of a ticket's history, from `read.ticket_history`.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    /// The ticket whose listing the event belongs to.
    pub ticket_id: Uuid,
    /// The event's stable type name (`OrderPlaced`, …).
    pub event_type: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The ticket's version after it.
    pub version: i32,
}

/// Every column of a ticket row.
pub const TICKET: &str = "SELECT id, seller_id, title, price_cents, currency, status, version, created_at, updated_at, created_position FROM read.tickets";
/// Every column of an order row.
pub const ORDER: &str = "SELECT id, ticket_id, event_id, amount_cents, buyer_id, status, cancel_reason, expires_at, payment_id, version, created_at, created_position FROM read.orders";

/// Every column of a payment row.
pub const PAYMENT: &str =
    "SELECT id, order_id, amount_cents, currency, status, provider_ref, created_at FROM read.payments";

/// The rows `select` (one of [`TICKET`], [`ORDER`], …) gives for these ids, in one query, in no
/// particular order; ids without a row are left out.
///
/// # Errors
/// A database error.
pub async fn by_ids<R>(pool: &PgPool, select: &str, ids: &[Uuid]) -> sqlx::Result<Vec<R>>
where
    R: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(&format!("{select} WHERE id = ANY($1)")).bind(ids).fetch_all(pool).await
}

/// The tickets of `ids` that exist, by id (one query).
///
/// # Errors
/// A database error.
pub async fn tickets_by_id(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<std::collections::HashMap<Uuid, TicketRow>> {
    let rows: Vec<TicketRow> = by_ids(pool, TICKET, ids).await?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// How many rows of each kind a re-read after a lag brings at most (the latest changes first).
const CHANGED_SINCE_LIMIT: i64 = 1000;

/// The tickets and orders changed at or after `position` (a notification split in chunks shares
/// one position), as one resync [`crate::Changed`] at the projected position now: what a
/// subscriber that lagged behind the notifications may have missed.
///
/// # Errors
/// A database error.
pub async fn changed_since(pool: &PgPool, position: u64) -> sqlx::Result<crate::Changed> {
    let after = i64::try_from(position).unwrap_or(i64::MAX);
    let head: i64 = sqlx::query_scalar("SELECT position FROM read.checkpoint").fetch_one(pool).await?;
    let ids = |table: &str| {
        format!("SELECT id FROM read.{table} WHERE position >= $1 ORDER BY position DESC LIMIT {CHANGED_SINCE_LIMIT}")
    };
    let tickets: Vec<Uuid> = sqlx::query_scalar(&ids("tickets")).bind(after).fetch_all(pool).await?;
    let orders: Vec<Uuid> = sqlx::query_scalar(&ids("orders")).bind(after).fetch_all(pool).await?;
    Ok(crate::Changed::resync(u64::try_from(head).unwrap_or(0), tickets, orders))
}

/// One ticket.
///
/// # Errors
/// A database error.
pub async fn ticket(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<TicketRow>> {
    sqlx::query_as(&format!("{TICKET} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// A page of tickets, newest first, optionally by status or seller; one row more than asked
/// tells whether there is a next page.
///
/// # Errors
/// A database error.
pub async fn tickets(
    pool: &PgPool,
    limit: i64,
    before_position: Option<i64>,
    status: Option<&str>,
    seller: Option<Uuid>,
) -> sqlx::Result<Vec<TicketRow>> {
    sqlx::query_as(&format!(
        "{TICKET} WHERE ($1::bigint IS NULL OR created_position < $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::uuid IS NULL OR seller_id = $3) ORDER BY created_position DESC LIMIT $4"
    ))
    .bind(before_position)
    .bind(status)
    .bind(seller)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The most characters a `search` may have.
pub const SEARCH_MAX_CHARS: usize = 200;

/// The words of a search as the read models compare them: runs of letters and digits, anything
/// else a separator. Being only letters and digits, no word can carry text-search syntax.
/// No words (an empty or all-punctuation search) means no search.
#[must_use]
pub fn search_words(search: &str) -> Vec<String> {
    search.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(str::to_owned).collect()
}

/// `q`: the text-search query of the words in `$1` (a `text[]`): every word, folded as the
/// stored titles are (`public.search_text`: case and accents), the last one as a prefix.
const SEARCH_QUERY: &str = "q AS (
    SELECT to_tsquery('simple', string_agg(
               quote_literal(public.search_text(w)) || CASE WHEN i = cardinality($1::text[]) THEN ':*' ELSE '' END,
               ' & ' ORDER BY i)) AS q
      FROM unnest($1::text[]) WITH ORDINALITY AS words(w, i))";

/// Where a page of search results goes on: the last row's rank and its place in the order (for
/// events also its start, by which equal matches are ordered). The values themselves, not a row
/// to look up: a row renamed or moved since keeps no page from going on where it left off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchCursor {
    /// `ts_rank` of the row (PostgreSQL prints a `real` so that it reads back exactly).
    pub rank: f32,
    /// The row's `starts_at` in microseconds since the epoch (events only).
    pub starts_at: Option<i64>,
    /// The row's creation position.
    pub position: i64,
}

impl SearchCursor {
    /// The cursor after an event a search found.
    #[must_use]
    pub fn after_event(found: &RankedEvent) -> Self {
        let micros = i64::try_from(found.row.starts_at.unix_timestamp_nanos() / 1000).ok();
        Self { rank: found.rank, starts_at: micros, position: found.row.created_position }
    }

    /// The cursor after a ticket a search found.
    #[must_use]
    pub fn after_ticket(found: &RankedTicket) -> Self {
        Self { rank: found.rank, starts_at: None, position: found.row.created_position }
    }

    /// `starts_at` as a time (one out of a time's range, which only a made-up cursor has, as the
    /// epoch).
    fn start(&self) -> Option<OffsetDateTime> {
        let micros = self.starts_at?;
        Some(OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    /// `r<rank>:<position>`, or `r<rank>:<starts_at>:<position>` for events.
    #[must_use]
    pub fn encode(&self) -> String {
        match self.starts_at {
            Some(starts_at) => format!("r{}:{starts_at}:{}", self.rank, self.position),
            None => format!("r{}:{}", self.rank, self.position),
        }
    }

    /// The cursor `text` encodes, when it is one of a search of tickets (`event: false`) or of
    /// events.
    #[must_use]
    pub fn decode(text: &str, event: bool) -> Option<Self> {
        let mut parts = text.strip_prefix('r')?.split(':');
        let rank: f32 = parts.next()?.parse().ok().filter(|r: &f32| r.is_finite())?;
        let starts_at = if event { Some(parts.next()?.parse().ok()?) } else { None };
        let position = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self { rank, starts_at, position })
    }
}

#[cfg(test)]
mod search_cursor_tests {
    use super::SearchCursor;

    #[test]
    fn a_search_cursor_reads_back_exactly_and_nothing_else_reads_as_one() {
        for rank in [0.0_f32, 0.060_792_7, 1.0e-7, 0.1, 0.999_999_9, f32::MIN_POSITIVE] {
            for starts_at in [None, Some(1_780_000_000_123_456_i64), Some(-5)] {
                let cursor = SearchCursor { rank, starts_at, position: 4711 };
                assert_eq!(SearchCursor::decode(&cursor.encode(), starts_at.is_some()), Some(cursor), "{cursor:?}");
            }
        }
        for bad in ["4711", "r", "r0.5", "r0.5:x", "rNaN:1", "rinf:1", "r0.5:1:2", "r0.5:1:"] {
            assert_eq!(SearchCursor::decode(bad, false), None, "{bad}");
        }
        assert_eq!(SearchCursor::decode("r0.5:1", true), None, "an event's cursor has its start");
    }
}

/// A ticket a search found, with its rank.
#[derive(Debug, Clone, FromRow)]
pub struct RankedTicket {
    /// The ticket.
    #[sqlx(flatten)]
    pub row: TicketRow,
    /// How well it matches (`ts_rank`).
    pub rank: f32,
}

/// A page of the tickets whose titles match `words` (see [`search_words`]), best match first
/// (then newest first), optionally by status; one row more than asked tells whether there is a
/// next page.
///
/// # Errors
/// A database error.
pub async fn search_tickets(
    pool: &PgPool,
    words: &[String],
    limit: i64,
    after: Option<SearchCursor>,
    status: Option<&str>,
) -> sqlx::Result<Vec<RankedTicket>> {
    sqlx::query_as(&format!(
        "WITH {SEARCH_QUERY}
         SELECT t.id, t.seller_id, t.title, t.price_cents, t.currency, t.status, t.version, t.created_at,
                t.updated_at, t.created_position, ts_rank(t.search, q.q, 1) AS rank
           FROM read.tickets t CROSS JOIN q
          WHERE t.search @@ q.q AND ($3::text IS NULL OR t.status = $3)
            AND ($2::real IS NULL OR (ts_rank(t.search, q.q, 1), t.created_position) < ($2::real, $4::bigint))
          ORDER BY rank DESC, t.created_position DESC LIMIT $5"
    ))
    .bind(words)
    .bind(after.map(|c| c.rank))
    .bind(status)
    .bind(after.map(|c| c.position))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The settings every connection to the read models is made with: `plan_cache_mode =
/// force_custom_plan` on top of `url`.
///
/// A prepared lookup such as `WHERE id = ANY($1)` first planned while its table was nearly empty
/// (a fresh database, a rebuild) gets a generic plan with a sequential scan, and keeps it as the
/// table grows until the table is next analyzed. Measured in one flash sale of the benchmark:
/// 1,236 such scans of `orders` reading 6.7 million rows and 1,976 of `tickets` reading 9.7
/// million, PostgreSQL's busiest work. Planned per execution, a lookup always sees the table as it
/// is now, for tens of microseconds of planning.
///
/// A `plan_cache_mode` the operator gives in `url`'s own `options` is kept as given.
///
/// # Errors
/// `url` is not a PostgreSQL URL.
pub fn connect_options(url: &str) -> sqlx::Result<sqlx::postgres::PgConnectOptions> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    if options.get_options().is_some_and(|given| given.contains("plan_cache_mode")) {
        return Ok(options);
    }
    Ok(options.options([("plan_cache_mode", "force_custom_plan")]))
}

/// One order.
///
/// # Errors
/// A database error.
pub async fn order(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(&format!("{ORDER} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// A page of a buyer's orders, newest first.
///
/// # Errors
/// A database error.
pub async fn orders_of(
    pool: &PgPool,
    buyer: Uuid,
    limit: i64,
    before_position: Option<i64>,
) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as(&format!(
        "{ORDER} WHERE buyer_id = $1 AND ($2::bigint IS NULL OR created_position < $2) ORDER BY created_position DESC LIMIT $3"
    ))
    .bind(buyer)
    .bind(before_position)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One payment.
///
/// # Errors
/// A database error.
pub async fn payment(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!("{PAYMENT} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// One account.
///
/// # Errors
/// A database error.
pub async fn account(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as("SELECT id, email FROM read.accounts WHERE id = $1").bind(id).fetch_optional(pool).await
}

/// The histories of these tickets, each oldest first.
///
/// # Errors
/// A database error.
pub async fn histories(pool: &PgPool, tickets: &[Uuid]) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as(
        "SELECT ticket_id, event_type, at, version FROM read.ticket_history WHERE ticket_id = ANY($1)
         ORDER BY ticket_id, position",
    )
    .bind(tickets)
    .fetch_all(pool)
    .await
}

/// Whether a page cursor names an item: a ticket's (`tickets`) or an order's (`orders`)
/// creation position.
///
/// # Errors
/// A database error.
pub async fn cursor_exists(pool: &PgPool, table: Cursor, position: i64) -> sqlx::Result<bool> {
    let sql = match table {
        Cursor::Ticket => "SELECT EXISTS (SELECT 1 FROM read.tickets WHERE created_position = $1)",
        Cursor::Order => "SELECT EXISTS (SELECT 1 FROM read.orders WHERE created_position = $1)",
        Cursor::Event => "SELECT EXISTS (SELECT 1 FROM read.events WHERE created_position = $1)",
    };
    sqlx::query_scalar(sql).bind(position).fetch_one(pool).await
}

/// What a page cursor points into.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    /// A ticket connection.
    Ticket,
    /// An order connection.
    Order,
    /// An event connection.
    Event,
}

/// An event (the domain's show) as the gateway reads it from `read.events`.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    /// The event's id, as the API shows it.
    pub id: Uuid,
    /// Who organises it: who may edit it and read its history.
    pub organizer_id: Uuid,
    /// Its title.
    pub title: String,
    /// Its venue.
    pub venue: String,
    /// When it starts.
    pub starts_at: OffsetDateTime,
    /// How many of its events were applied: clients keep the highest.
    pub version: i32,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When anything about it last happened.
    pub updated_at: OffsetDateTime,
    /// The stream position of its creation: the cursor of its pages.
    pub created_position: i64,
}

/// A ticket type of an event, with its counts, from `read.ticket_types`.
#[derive(Debug, Clone, FromRow)]
pub struct TicketTypeRow {
    /// The ticket type's id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Its place in the event's list.
    pub idx: i32,
    /// Its name.
    pub name: String,
    /// The price of one ticket, in cents.
    pub price_cents: i64,
    /// How many tickets it has.
    pub capacity: i32,
    /// Tickets held by open orders.
    pub held: i32,
    /// Tickets of paid orders.
    pub sold: i32,
}

/// A section of an event, from `read.sections`.
#[derive(Debug, Clone, FromRow)]
pub struct SectionRow {
    /// Its event.
    pub event_id: Uuid,
    /// Its place in the event's list.
    pub idx: i32,
    /// Its name: the first part of its seats' ids.
    pub name: String,
    /// The price of each seat, in cents.
    pub price_cents: i64,
    /// How many rows.
    pub rows: i32,
    /// How many seats per row.
    pub seats_per_row: i32,
    /// How many of its seats are available.
    pub available: i32,
}

/// A seat, from `read.seats`.
#[derive(Debug, Clone, FromRow)]
pub struct SeatRow {
    /// Its event.
    pub event_id: Uuid,
    /// Its section's place in the event's list.
    pub section_idx: i32,
    /// Its row, from 1.
    pub row: i32,
    /// Its number in the row, from 1.
    pub number: i32,
    /// The domain's `SeatStatus` in its serde form (`AVAILABLE`, …).
    pub status: String,
}

/// One ticket of an order on an event, from `read.order_items`.
#[derive(Debug, Clone, FromRow)]
pub struct OrderItemRow {
    /// Its order.
    pub order_id: Uuid,
    /// A general-admission ticket's type.
    pub ticket_type_id: Option<Uuid>,
    /// A seat's section name.
    pub section: Option<String>,
    /// A seat's row.
    pub row: Option<i32>,
    /// A seat's number.
    pub number: Option<i32>,
    /// Its price at the time of the hold, in cents.
    pub price_cents: i64,
}

/// One line of an event's history, from `read.event_history`.
#[derive(Debug, Clone, FromRow)]
pub struct EventHistoryRow {
    /// The event.
    pub event_id: Uuid,
    /// The stored event's type name (`ShowOrdersPlaced`, …).
    pub event_type: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The event's version after it.
    pub version: i32,
}

/// Every column of an event row.
pub const EVENT: &str = "SELECT id, organizer_id, title, venue, starts_at, version, created_at, updated_at, created_position FROM read.events";

/// One event.
///
/// # Errors
/// A database error.
pub async fn event(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<EventRow>> {
    sqlx::query_as(&format!("{EVENT} WHERE id = $1")).bind(id).fetch_optional(pool).await
}

/// A page of events, soonest first (ties by creation); `upcoming` leaves out those that have
/// started. The cursor is the creation position of the last event of the page before.
///
/// # Errors
/// A database error.
pub async fn events(pool: &PgPool, limit: i64, after: Option<i64>, upcoming: bool) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(&format!(
        "{EVENT} WHERE (NOT $3 OR starts_at > now())
           AND ($1::bigint IS NULL OR (starts_at, created_position) >
                (SELECT starts_at, created_position FROM read.events WHERE created_position = $1))
         ORDER BY starts_at, created_position LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .bind(upcoming)
    .fetch_all(pool)
    .await
}

/// An event a search found, with its rank.
#[derive(Debug, Clone, FromRow)]
pub struct RankedEvent {
    /// The event.
    #[sqlx(flatten)]
    pub row: EventRow,
    /// How well it matches (`ts_rank`).
    pub rank: f32,
}

/// A page of the events whose titles or venues match `words` (see [`search_words`]), best match
/// first (a title's words weigh more than a venue's), then soonest first; `upcoming` leaves out
/// those that have started.
///
/// # Errors
/// A database error.
pub async fn search_events(
    pool: &PgPool,
    words: &[String],
    limit: i64,
    after: Option<SearchCursor>,
    upcoming: bool,
) -> sqlx::Result<Vec<RankedEvent>> {
    sqlx::query_as(&format!(
        "WITH {SEARCH_QUERY}
         SELECT e.id, e.organizer_id, e.title, e.venue, e.starts_at, e.version, e.created_at, e.updated_at,
                e.created_position, ts_rank(e.search, q.q, 1) AS rank
           FROM read.events e CROSS JOIN q
          WHERE e.search @@ q.q AND (NOT $3 OR e.starts_at > now())
            AND ($2::real IS NULL OR ts_rank(e.search, q.q, 1) < $2::real
                 OR (ts_rank(e.search, q.q, 1) = $2::real AND (e.starts_at, e.created_position) > ($4::timestamptz, $5::bigint)))
          ORDER BY rank DESC, e.starts_at, e.created_position LIMIT $6"
    ))
    .bind(words)
    .bind(after.map(|c| c.rank))
    .bind(upcoming)
    .bind(after.and_then(|c| c.start()))
    .bind(after.map(|c| c.position))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The sitemap's pages, at most `limit`: upcoming events (soonest first), then available
/// tickets (newest first), each with when it last changed.
///
/// # Errors
/// A database error.
pub async fn sitemap(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<(String, OffsetDateTime)>> {
    sqlx::query_as(
        "(SELECT '/events/' || id, updated_at FROM read.events WHERE starts_at > now()
           ORDER BY starts_at, created_position LIMIT $1)
         UNION ALL
         (SELECT '/tickets/' || id, updated_at FROM read.tickets WHERE status = 'AVAILABLE'
           ORDER BY created_position DESC LIMIT $1)
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A page of an organiser's events, newest first.
///
/// # Errors
/// A database error.
pub async fn events_of(pool: &PgPool, organizer: Uuid, limit: i64, before: Option<i64>) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(&format!(
        "{EVENT} WHERE organizer_id = $1 AND ($2::bigint IS NULL OR created_position < $2)
         ORDER BY created_position DESC LIMIT $3"
    ))
    .bind(organizer)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The ticket types of these events, in their events' order.
///
/// # Errors
/// A database error.
pub async fn ticket_types_of(pool: &PgPool, events: &[Uuid]) -> sqlx::Result<Vec<TicketTypeRow>> {
    sqlx::query_as(
        "SELECT id, event_id, idx, name, price_cents, capacity, held, sold FROM read.ticket_types
         WHERE event_id = ANY($1) ORDER BY event_id, idx",
    )
    .bind(events)
    .fetch_all(pool)
    .await
}

/// Ticket types by id.
///
/// # Errors
/// A database error.
pub async fn ticket_types(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<TicketTypeRow>> {
    sqlx::query_as(
        "SELECT id, event_id, idx, name, price_cents, capacity, held, sold FROM read.ticket_types WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// The sections of these events, in their events' order.
///
/// # Errors
/// A database error.
pub async fn sections_of(pool: &PgPool, events: &[Uuid]) -> sqlx::Result<Vec<SectionRow>> {
    sqlx::query_as(
        "SELECT event_id, idx, name, price_cents, rows, seats_per_row, available FROM read.sections
         WHERE event_id = ANY($1) ORDER BY event_id, idx",
    )
    .bind(events)
    .fetch_all(pool)
    .await
}

/// The seats of one section, row by row.
///
/// # Errors
/// A database error.
pub async fn seats_of(pool: &PgPool, event: Uuid, section_idx: i32) -> sqlx::Result<Vec<SeatRow>> {
    sqlx::query_as(
        "SELECT event_id, section_idx, row, number, status FROM read.seats
         WHERE event_id = $1 AND section_idx = $2 ORDER BY row, number",
    )
    .bind(event)
    .bind(section_idx)
    .fetch_all(pool)
    .await
}

/// Every seat of an event, section by section, row by row.
///
/// # Errors
/// A database error.
pub async fn all_seats_of(pool: &PgPool, event: Uuid) -> sqlx::Result<Vec<SeatRow>> {
    sqlx::query_as(
        "SELECT event_id, section_idx, row, number, status FROM read.seats
         WHERE event_id = $1 ORDER BY section_idx, row, number",
    )
    .bind(event)
    .fetch_all(pool)
    .await
}

/// The items of these orders, each order's in its own order.
///
/// # Errors
/// A database error.
pub async fn items_of(pool: &PgPool, orders: &[Uuid]) -> sqlx::Result<Vec<OrderItemRow>> {
    sqlx::query_as(
        "SELECT i.order_id, i.ticket_type_id, s.name AS section, i.row, i.number, i.price_cents
         FROM read.order_items i
         LEFT JOIN read.orders o ON o.id = i.order_id
         LEFT JOIN read.sections s ON s.event_id = o.event_id AND s.idx = i.section_idx
         WHERE i.order_id = ANY($1) ORDER BY i.order_id, i.idx",
    )
    .bind(orders)
    .fetch_all(pool)
    .await
}

/// The histories of these events, each oldest first.
///
/// # Errors
/// A database error.
pub async fn event_histories(pool: &PgPool, events: &[Uuid]) -> sqlx::Result<Vec<EventHistoryRow>> {
    sqlx::query_as(
        "SELECT event_id, event_type, at, version FROM read.event_history WHERE event_id = ANY($1)
         ORDER BY event_id, position",
    )
    .bind(events)
    .fetch_all(pool)
    .await
}

/// Which of `sessions` were signed out (one query for all of them).
///
/// # Errors
/// A database error.
pub async fn revoked_among(pool: &PgPool, sessions: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT session_id FROM read.revoked_sessions WHERE session_id = ANY($1)")
        .bind(sessions)
        .fetch_all(pool)
        .await
}

/// The projected position.
///
/// # Errors
/// A database error.
pub async fn checkpoint(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT position FROM read.checkpoint").fetch_one(pool).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn connections_plan_per_execution_unless_the_url_says_otherwise() {
        let ours = super::connect_options("postgres://app@db/ticketing").unwrap_or_else(|e| panic!("{e}"));
        assert!(ours.get_options().is_some_and(|o| o.contains("plan_cache_mode=force_custom_plan")), "{ours:?}");
        let given = super::connect_options("postgres://app@db/ticketing?options=-c%20plan_cache_mode%3Dauto")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(given.get_options(), Some("-c plan_cache_mode=auto"));
    }
}
