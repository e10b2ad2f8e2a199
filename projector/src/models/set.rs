//! The batch applied set-based: the rows a batch touches are read once, the batch's events are
//! folded into them in memory with the same rules as the per-event statements in the sibling
//! modules, and each table is written back with one `unnest` statement.
//!
//! The per-event path (`super::apply`) stays the reference and the fallback: when a set-based
//! batch fails, the projector redoes it event by event to find and park the culprit. The tests
//! compare both: a live projection (set-based) must equal a rebuild, table by table.

use std::collections::HashMap;

use domain::{Event, Timestamp};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Applied, Changes};

#[derive(Debug, Clone, sqlx::FromRow)]
struct TicketRow {
    id: Uuid,
    seller_id: Uuid,
    title: String,
    price_cents: i64,
    currency: String,
    status: String,
    holder_order_id: Option<Uuid>,
    version: i32,
    created_at: Timestamp,
    updated_at: Timestamp,
    created_position: i64,
    position: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    ticket_id: Uuid,
    buyer_id: Uuid,
    seller_id: Uuid,
    amount_cents: i64,
    currency: String,
    status: String,
    cancel_reason: Option<String>,
    expires_at: Timestamp,
    payment_id: Option<Uuid>,
    version: i32,
    created_at: Timestamp,
    updated_at: Timestamp,
    created_position: i64,
    position: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    ticket_id: Uuid,
    amount_cents: i64,
    currency: String,
    status: String,
    provider_ref: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    position: i64,
}

/// The rows a batch reads and writes, keyed by id; `None` marks a row known to be absent.
#[derive(Default)]
struct Rows {
    tickets: HashMap<Uuid, Option<TicketRow>>,
    orders: HashMap<Uuid, Option<OrderRow>>,
    payments: HashMap<Uuid, Option<PaymentRow>>,
    history: Vec<(Uuid, i64, &'static str, Timestamp, i32)>,
    accounts: Vec<(Uuid, String, Timestamp, i64)>,
    revoked: Vec<(Uuid, Uuid, Timestamp)>,
}

/// Applies `events` (in stream order) with a few statements per table.
///
/// # Errors
/// A database error; the caller then redoes the batch event by event.
pub async fn apply(conn: &mut PgConnection, events: &[Applied<'_>], changes: &mut Changes) -> sqlx::Result<()> {
    let mut rows = load(conn, events).await?;
    for applied in events {
        fold(&mut rows, applied, changes);
    }
    flush(conn, rows).await
}

/// Reads every ticket, order and payment row the events name.
async fn load(conn: &mut PgConnection, events: &[Applied<'_>]) -> sqlx::Result<Rows> {
    let (mut tickets, mut orders, mut payments) = (Vec::new(), Vec::new(), Vec::new());
    for applied in events {
        if let Some(ticket) = applied.ticket() {
            tickets.push(ticket.0);
        }
        match applied.event {
            Event::OrderPlaced { order_id, .. } | Event::OrderCancelled { order_id, .. } => orders.push(order_id.0),
            Event::PaymentStarted { order_id, payment_id, .. }
            | Event::PaymentPending { order_id, payment_id, .. }
            | Event::PaymentSucceeded { order_id, payment_id, .. }
            | Event::LatePaymentReceived { order_id, payment_id, .. }
            | Event::PaymentFailed { order_id, payment_id, .. }
            | Event::PaymentRefunded { order_id, payment_id, .. } => {
                orders.push(order_id.0);
                payments.push(payment_id.0);
            }
            _ => {}
        }
    }
    let mut rows = Rows {
        tickets: tickets.iter().map(|id| (*id, None)).collect(),
        orders: orders.iter().map(|id| (*id, None)).collect(),
        payments: payments.iter().map(|id| (*id, None)).collect(),
        ..Rows::default()
    };
    if !tickets.is_empty() {
        let found: Vec<TicketRow> =
            sqlx::query_as("SELECT * FROM tickets WHERE id = ANY($1)").bind(&tickets).fetch_all(&mut *conn).await?;
        rows.tickets.extend(found.into_iter().map(|row| (row.id, Some(row))));
    }
    if !orders.is_empty() {
        let found: Vec<OrderRow> =
            sqlx::query_as("SELECT * FROM orders WHERE id = ANY($1)").bind(&orders).fetch_all(&mut *conn).await?;
        rows.orders.extend(found.into_iter().map(|row| (row.id, Some(row))));
    }
    if !payments.is_empty() {
        let found: Vec<PaymentRow> =
            sqlx::query_as("SELECT * FROM payments WHERE id = ANY($1)").bind(&payments).fetch_all(&mut *conn).await?;
        rows.payments.extend(found.into_iter().map(|row| (row.id, Some(row))));
    }
    Ok(rows)
}

/// One event, folded into the rows with the rules of the per-event statements.
fn fold(rows: &mut Rows, applied: &Applied<'_>, changes: &mut Changes) {
    let at = applied.event.at();
    let position = applied.position;
    match applied.event {
        Event::AccountRegistered { account_id, email, at, .. } => {
            rows.accounts.push((account_id.0, email.as_str().to_owned(), *at, position));
        }
        Event::SessionRevoked { account_id, session_id, expires_at, .. } => {
            rows.revoked.push((session_id.0, account_id.0, *expires_at));
            changes.sessions.insert(*session_id);
        }
        _ => {}
    }
    fold_ticket(rows, applied, at, changes);
    fold_order(rows, applied, at, changes);
    fold_payment(rows, applied, at, changes);
}

fn fold_ticket(rows: &mut Rows, applied: &Applied<'_>, at: Timestamp, changes: &mut Changes) {
    let Some(ticket) = applied.ticket() else { return };
    let slot = rows.tickets.entry(ticket.0).or_insert(None);
    match applied.event {
        Event::TicketListed { seller, title, price_cents, currency, .. } if slot.is_none() => {
            *slot = Some(TicketRow {
                id: ticket.0,
                seller_id: seller.0,
                title: title.as_str().to_owned(),
                price_cents: price_cents.cents(),
                currency: currency.code().to_owned(),
                status: "AVAILABLE".into(),
                holder_order_id: None,
                version: 0,
                created_at: at,
                updated_at: at,
                created_position: applied.position,
                position: applied.position,
            });
        }
        Event::TicketUpdated { title, price_cents, .. } => {
            if let Some(row) = slot.as_mut() {
                if let Some(title) = title {
                    row.title = title.as_str().to_owned();
                }
                if let Some(price) = price_cents {
                    row.price_cents = price.cents();
                }
            }
        }
        Event::OrderPlaced { order_id, .. } => {
            if let Some(row) = slot.as_mut() {
                row.status = "RESERVED".into();
                row.holder_order_id = Some(order_id.0);
            }
        }
        Event::OrderCancelled { order_id, .. } => {
            if let Some(row) = slot.as_mut().filter(|row| row.holder_order_id == Some(order_id.0)) {
                row.status = "AVAILABLE".into();
                row.holder_order_id = None;
            }
        }
        Event::PaymentSucceeded { order_id, .. } => {
            if let Some(row) = slot.as_mut() {
                row.status = "SOLD".into();
                row.holder_order_id = Some(order_id.0);
            }
        }
        _ => {}
    }
    if let Some(row) = slot.as_mut() {
        row.version += 1;
        row.updated_at = at;
        row.position = applied.position;
        rows.history.push((ticket.0, applied.position, applied.event.type_name(), at, row.version));
        changes.tickets.insert(ticket);
    }
}

fn fold_order(rows: &mut Rows, applied: &Applied<'_>, at: Timestamp, changes: &mut Changes) {
    let order_id = match applied.event {
        Event::OrderPlaced { order_id, ticket_id, buyer, seller, amount_cents, currency, expires_at, .. } => {
            let slot = rows.orders.entry(order_id.0).or_insert(None);
            if slot.is_none() {
                *slot = Some(OrderRow {
                    id: order_id.0,
                    ticket_id: ticket_id.0,
                    buyer_id: buyer.0,
                    seller_id: seller.0,
                    amount_cents: amount_cents.cents(),
                    currency: currency.code().to_owned(),
                    status: "CREATED".into(),
                    cancel_reason: None,
                    expires_at: *expires_at,
                    payment_id: None,
                    version: 0,
                    created_at: at,
                    updated_at: at,
                    created_position: applied.position,
                    position: applied.position,
                });
            }
            order_id
        }
        Event::OrderCancelled { order_id, reason: why, .. } => {
            if let Some(Some(row)) = rows.orders.get_mut(&order_id.0) {
                row.status = "CANCELLED".into();
                row.cancel_reason = Some(super::orders::reason(*why).into());
            }
            order_id
        }
        Event::PaymentStarted { order_id, payment_id, .. } => {
            if let Some(Some(row)) = rows.orders.get_mut(&order_id.0) {
                row.status = "AWAITING_PAYMENT".into();
                row.payment_id = Some(payment_id.0);
            }
            order_id
        }
        Event::PaymentSucceeded { order_id, .. } => {
            if let Some(Some(row)) = rows.orders.get_mut(&order_id.0) {
                row.status = "COMPLETE".into();
            }
            order_id
        }
        Event::PaymentFailed { order_id, payment_id, .. } => {
            if let Some(Some(row)) = rows.orders.get_mut(&order_id.0)
                && row.status == "AWAITING_PAYMENT"
                && row.payment_id == Some(payment_id.0)
            {
                row.status = "CREATED".into();
            }
            order_id
        }
        Event::PaymentPending { order_id, .. }
        | Event::LatePaymentReceived { order_id, .. }
        | Event::PaymentRefunded { order_id, .. } => order_id,
        _ => return,
    };
    if let Some(Some(row)) = rows.orders.get_mut(&order_id.0) {
        row.version += 1;
        row.updated_at = at;
        row.position = applied.position;
        changes.orders.insert(*order_id);
    }
}

fn fold_payment(rows: &mut Rows, applied: &Applied<'_>, at: Timestamp, changes: &mut Changes) {
    let (payment_id, order_id, status, provider_ref) = match applied.event {
        Event::PaymentStarted { payment_id, order_id, ticket_id, amount_cents, currency, .. } => {
            let slot = rows.payments.entry(payment_id.0).or_insert(None);
            if slot.is_none() {
                *slot = Some(PaymentRow {
                    id: payment_id.0,
                    order_id: order_id.0,
                    ticket_id: ticket_id.0,
                    amount_cents: amount_cents.cents(),
                    currency: currency.code().to_owned(),
                    status: "PENDING".into(),
                    provider_ref: None,
                    created_at: at,
                    updated_at: at,
                    position: applied.position,
                });
            }
            changes.orders.insert(*order_id);
            return;
        }
        event => match super::payments::update(event) {
            Some(update) => update,
            None => return,
        },
    };
    if let Some(Some(row)) = rows.payments.get_mut(&payment_id.0) {
        if let Some(status) = status {
            row.status = status.into();
        }
        if let Some(provider_ref) = provider_ref {
            row.provider_ref = Some(provider_ref.clone());
        }
        row.updated_at = at;
        row.position = applied.position;
    }
    changes.orders.insert(*order_id);
}

/// Writes every touched row back: one statement per table.
async fn flush(conn: &mut PgConnection, rows: Rows) -> sqlx::Result<()> {
    if !rows.accounts.is_empty() {
        let (ids, emails, ats, positions) = unzip4(rows.accounts);
        sqlx::query(
            "INSERT INTO accounts (id, email, registered_at, position)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(ids)
        .bind(emails)
        .bind(ats)
        .bind(positions)
        .execute(&mut *conn)
        .await?;
    }
    if !rows.revoked.is_empty() {
        let (sessions, accounts, expires): (Vec<Uuid>, Vec<Uuid>, Vec<Timestamp>) =
            rows.revoked.into_iter().fold((Vec::new(), Vec::new(), Vec::new()), |mut acc, (s, a, e)| {
                acc.0.push(s);
                acc.1.push(a);
                acc.2.push(e);
                acc
            });
        sqlx::query(
            "INSERT INTO revoked_sessions (session_id, account_id, expires_at)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(sessions)
        .bind(accounts)
        .bind(expires)
        .execute(&mut *conn)
        .await?;
    }
    let tickets: Vec<(Uuid, TicketRow)> = rows.tickets.into_iter().filter_map(|(id, row)| Some((id, row?))).collect();
    if !tickets.is_empty() {
        let mut c = TicketColumns::default();
        for (id, row) in tickets {
            c.push(id, row);
        }
        sqlx::query(
            "INSERT INTO tickets (id, seller_id, title, price_cents, currency, status, holder_order_id, version,
                                  created_at, updated_at, created_position, position)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::uuid[],
                                  $8::int[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bigint[])
             ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, price_cents = EXCLUDED.price_cents,
                 status = EXCLUDED.status, holder_order_id = EXCLUDED.holder_order_id, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
        )
        .bind(c.id)
        .bind(c.seller_id)
        .bind(c.title)
        .bind(c.price_cents)
        .bind(c.currency)
        .bind(c.status)
        .bind(c.holder)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.created_position)
        .bind(c.position)
        .execute(&mut *conn)
        .await?;
    }
    if !rows.history.is_empty() {
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (ticket, position, kind, at, version) in rows.history {
            columns.0.push(ticket);
            columns.1.push(position);
            columns.2.push(kind);
            columns.3.push(at);
            columns.4.push(version);
        }
        sqlx::query(
            "INSERT INTO ticket_history (ticket_id, position, event_type, at, version)
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[])
             ON CONFLICT DO NOTHING",
        )
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .execute(&mut *conn)
        .await?;
    }
    let orders: Vec<(Uuid, OrderRow)> = rows.orders.into_iter().filter_map(|(id, row)| Some((id, row?))).collect();
    if !orders.is_empty() {
        let mut c = OrderColumns::default();
        for (id, row) in orders {
            c.push(id, row);
        }
        sqlx::query(
            "INSERT INTO orders (id, ticket_id, buyer_id, seller_id, amount_cents, currency, status, cancel_reason,
                                 expires_at, payment_id, version, created_at, updated_at, created_position, position)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::text[], $7::text[],
                                  $8::text[], $9::timestamptz[], $10::uuid[], $11::int[], $12::timestamptz[],
                                  $13::timestamptz[], $14::bigint[], $15::bigint[])
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason,
                 payment_id = EXCLUDED.payment_id, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                 position = EXCLUDED.position",
        )
        .bind(c.id)
        .bind(c.ticket_id)
        .bind(c.buyer_id)
        .bind(c.seller_id)
        .bind(c.amount_cents)
        .bind(c.currency)
        .bind(c.status)
        .bind(c.cancel_reason)
        .bind(c.expires_at)
        .bind(c.payment_id)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.created_position)
        .bind(c.position)
        .execute(&mut *conn)
        .await?;
    }
    let payments: Vec<(Uuid, PaymentRow)> =
        rows.payments.into_iter().filter_map(|(id, row)| Some((id, row?))).collect();
    if !payments.is_empty() {
        let mut c = PaymentColumns::default();
        for (id, row) in payments {
            c.push(id, row);
        }
        sqlx::query(
            "INSERT INTO payments (id, order_id, ticket_id, amount_cents, currency, status, provider_ref, created_at,
                                   updated_at, position)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                                  $8::timestamptz[], $9::timestamptz[], $10::bigint[])
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, provider_ref = EXCLUDED.provider_ref,
                 updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
        )
        .bind(c.id)
        .bind(c.order_id)
        .bind(c.ticket_id)
        .bind(c.amount_cents)
        .bind(c.currency)
        .bind(c.status)
        .bind(c.provider_ref)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn unzip4(rows: Vec<(Uuid, String, Timestamp, i64)>) -> (Vec<Uuid>, Vec<String>, Vec<Timestamp>, Vec<i64>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (a, b, c, d) in rows {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
        out.3.push(d);
    }
    out
}

#[derive(Default)]
struct TicketColumns {
    id: Vec<Uuid>,
    seller_id: Vec<Uuid>,
    title: Vec<String>,
    price_cents: Vec<i64>,
    currency: Vec<String>,
    status: Vec<String>,
    holder: Vec<Option<Uuid>>,
    version: Vec<i32>,
    created_at: Vec<Timestamp>,
    updated_at: Vec<Timestamp>,
    created_position: Vec<i64>,
    position: Vec<i64>,
}

impl TicketColumns {
    fn push(&mut self, id: Uuid, row: TicketRow) {
        self.id.push(id);
        self.seller_id.push(row.seller_id);
        self.title.push(row.title);
        self.price_cents.push(row.price_cents);
        self.currency.push(row.currency);
        self.status.push(row.status);
        self.holder.push(row.holder_order_id);
        self.version.push(row.version);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.created_position.push(row.created_position);
        self.position.push(row.position);
    }
}

#[derive(Default)]
struct OrderColumns {
    id: Vec<Uuid>,
    ticket_id: Vec<Uuid>,
    buyer_id: Vec<Uuid>,
    seller_id: Vec<Uuid>,
    amount_cents: Vec<i64>,
    currency: Vec<String>,
    status: Vec<String>,
    cancel_reason: Vec<Option<String>>,
    expires_at: Vec<Timestamp>,
    payment_id: Vec<Option<Uuid>>,
    version: Vec<i32>,
    created_at: Vec<Timestamp>,
    updated_at: Vec<Timestamp>,
    created_position: Vec<i64>,
    position: Vec<i64>,
}

impl OrderColumns {
    fn push(&mut self, id: Uuid, row: OrderRow) {
        self.id.push(id);
        self.ticket_id.push(row.ticket_id);
        self.buyer_id.push(row.buyer_id);
        self.seller_id.push(row.seller_id);
        self.amount_cents.push(row.amount_cents);
        self.currency.push(row.currency);
        self.status.push(row.status);
        self.cancel_reason.push(row.cancel_reason);
        self.expires_at.push(row.expires_at);
        self.payment_id.push(row.payment_id);
        self.version.push(row.version);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.created_position.push(row.created_position);
        self.position.push(row.position);
    }
}

#[derive(Default)]
struct PaymentColumns {
    id: Vec<Uuid>,
    order_id: Vec<Uuid>,
    ticket_id: Vec<Uuid>,
    amount_cents: Vec<i64>,
    currency: Vec<String>,
    status: Vec<String>,
    provider_ref: Vec<Option<String>>,
    created_at: Vec<Timestamp>,
    updated_at: Vec<Timestamp>,
    position: Vec<i64>,
}

impl PaymentColumns {
    fn push(&mut self, id: Uuid, row: PaymentRow) {
        self.id.push(id);
        self.order_id.push(row.order_id);
        self.ticket_id.push(row.ticket_id);
        self.amount_cents.push(row.amount_cents);
        self.currency.push(row.currency);
        self.status.push(row.status);
        self.provider_ref.push(row.provider_ref);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.position.push(row.position);
    }
}
