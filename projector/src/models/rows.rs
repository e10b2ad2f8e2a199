//! Read-model rows in and out of the database: read into the domain's states, written back with
//! one `unnest` statement per table. Statuses, reasons and currencies are stored in the domain's
//! serde form ([`domain::stored`]).

use domain::stored::{self, StoredError};
use domain::{AccountId, OrderId, PaymentId, Ticket, TicketId, Timestamp};
use domain::{Order, Payment};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Applied, Rows, Tracked};

/// A stored value the domain cannot read, as the database error the batch fails with.
fn unreadable(error: StoredError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

#[derive(sqlx::FromRow)]
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

impl TryFrom<TicketRow> for Tracked<Ticket> {
    type Error = StoredError;

    fn try_from(row: TicketRow) -> Result<Self, StoredError> {
        Ok(Self {
            state: Ticket {
                id: TicketId(row.id),
                seller: AccountId(row.seller_id),
                title: stored::read(row.title, "title")?,
                price: stored::read(row.price_cents, "price")?,
                currency: stored::read(row.currency, "currency")?,
                status: stored::read(row.status, "ticket status")?,
                holder: row.holder_order_id.map(OrderId),
                listed_at: row.created_at,
                updated_at: row.updated_at,
            },
            version: row.version,
            created_position: row.created_position,
            position: row.position,
        })
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    ticket_id: Option<Uuid>,
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

impl TryFrom<OrderRow> for Tracked<Order> {
    type Error = StoredError;

    fn try_from(row: OrderRow) -> Result<Self, StoredError> {
        Ok(Self {
            state: Order {
                id: OrderId(row.id),
                // An order on an event has no ticket: it is never folded as a ticket's order.
                ticket_id: TicketId(
                    row.ticket_id.ok_or(StoredError { what: "ticket of an order", value: "null".into() })?,
                ),
                buyer: AccountId(row.buyer_id),
                seller: AccountId(row.seller_id),
                amount: stored::read(row.amount_cents, "amount")?,
                currency: stored::read(row.currency, "currency")?,
                status: stored::read(row.status, "order status")?,
                cancel_reason: row.cancel_reason.map(|reason| stored::read(reason, "cancel reason")).transpose()?,
                expires_at: row.expires_at,
                payment: row.payment_id.map(PaymentId),
                placed_at: row.created_at,
                updated_at: row.updated_at,
            },
            version: row.version,
            created_position: row.created_position / super::ORDER_SLOTS,
            position: row.position,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    ticket_id: Option<Uuid>,
    amount_cents: i64,
    currency: String,
    status: String,
    provider_ref: Option<String>,
    failure_reason: Option<String>,
    refund_due: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    position: i64,
}

impl TryFrom<PaymentRow> for Tracked<Payment> {
    type Error = StoredError;

    fn try_from(row: PaymentRow) -> Result<Self, StoredError> {
        Ok(Self {
            state: Payment {
                id: PaymentId(row.id),
                order_id: OrderId(row.order_id),
                ticket_id: row.ticket_id.map(TicketId),
                amount_cents: row.amount_cents,
                currency: stored::read(row.currency, "currency")?,
                status: stored::read(row.status, "payment status")?,
                provider_ref: row.provider_ref,
                failure_reason: row.failure_reason,
                refund_due: row.refund_due,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            version: 0,
            created_position: row.position,
            position: row.position,
        })
    }
}

/// Reads every ticket, order and payment row the events name.
pub(super) async fn load(conn: &mut PgConnection, events: &[Applied<'_>]) -> sqlx::Result<Rows> {
    let mut rows = Rows::default();
    for applied in events {
        if let Some(ticket) = applied.ticket() {
            rows.tickets.insert(ticket, None);
        }
        // A show's orders are not folded here (see `shows`).
        if let Some(order) = applied.event.order_id().filter(|_| !applied.is_show()) {
            rows.orders.insert(order, None);
        }
        if let Some(payment) = applied.event.payment_id() {
            rows.payments.insert(payment, None);
        }
    }
    if !rows.tickets.is_empty() {
        let ids: Vec<Uuid> = rows.tickets.keys().map(|id| id.0).collect();
        let found: Vec<TicketRow> = sqlx::query_as(
            // The columns by name: the generated `search` is not the projector's to read, and a
            // column added by a later migration does not change what this statement returns.
            "SELECT id, seller_id, title, price_cents, currency, status, holder_order_id, version, created_at,
                    updated_at, created_position, position FROM tickets WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in found {
            rows.tickets.insert(TicketId(row.id), Some(row.try_into().map_err(unreadable)?));
        }
    }
    if !rows.orders.is_empty() {
        let ids: Vec<Uuid> = rows.orders.keys().map(|id| id.0).collect();
        let found: Vec<OrderRow> =
            sqlx::query_as("SELECT * FROM orders WHERE id = ANY($1)").bind(&ids).fetch_all(&mut *conn).await?;
        for row in found {
            rows.orders.insert(OrderId(row.id), Some(row.try_into().map_err(unreadable)?));
        }
    }
    if !rows.payments.is_empty() {
        let ids: Vec<Uuid> = rows.payments.keys().map(|id| id.0).collect();
        let found: Vec<PaymentRow> =
            sqlx::query_as("SELECT * FROM payments WHERE id = ANY($1)").bind(&ids).fetch_all(&mut *conn).await?;
        for row in found {
            rows.payments.insert(PaymentId(row.id), Some(row.try_into().map_err(unreadable)?));
        }
    }
    Ok(rows)
}

/// Writes every touched row back: one statement per table.
pub(super) async fn flush(conn: &mut PgConnection, rows: Rows) -> sqlx::Result<()> {
    if !rows.accounts.is_empty() {
        let mut c = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, email, at, position) in rows.accounts {
            c.0.push(id.0);
            c.1.push(email);
            c.2.push(at);
            c.3.push(position);
        }
        sqlx::query(
            "INSERT INTO accounts (id, email, registered_at, position)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.0)
        .bind(c.1)
        .bind(c.2)
        .bind(c.3)
        .execute(&mut *conn)
        .await?;
    }
    if !rows.revoked.is_empty() {
        let mut c = (Vec::new(), Vec::new(), Vec::new());
        for (session, account, expires_at) in rows.revoked {
            c.0.push(session.0);
            c.1.push(account.0);
            c.2.push(expires_at);
        }
        sqlx::query(
            "INSERT INTO revoked_sessions (session_id, account_id, expires_at)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(c.0)
        .bind(c.1)
        .bind(c.2)
        .execute(&mut *conn)
        .await?;
    }
    let mut tickets = TicketColumns::default();
    for row in rows.tickets.into_values().flatten() {
        tickets.push(row).map_err(unreadable)?;
    }
    if !tickets.id.is_empty() {
        sqlx::query(
            "INSERT INTO tickets (id, seller_id, title, price_cents, currency, status, holder_order_id, version,
                                  created_at, updated_at, created_position, position)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::uuid[],
                                  $8::int[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bigint[])
             ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, price_cents = EXCLUDED.price_cents,
                 status = EXCLUDED.status, holder_order_id = EXCLUDED.holder_order_id, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
        )
        .bind(tickets.id)
        .bind(tickets.seller_id)
        .bind(tickets.title)
        .bind(tickets.price_cents)
        .bind(tickets.currency)
        .bind(tickets.status)
        .bind(tickets.holder)
        .bind(tickets.version)
        .bind(tickets.created_at)
        .bind(tickets.updated_at)
        .bind(tickets.created_position)
        .bind(tickets.position)
        .execute(&mut *conn)
        .await?;
    }
    if !rows.history.is_empty() {
        let mut c = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (ticket, position, kind, at, version) in rows.history {
            c.0.push(ticket.0);
            c.1.push(position);
            c.2.push(kind);
            c.3.push(at);
            c.4.push(version);
        }
        sqlx::query(
            "INSERT INTO ticket_history (ticket_id, position, event_type, at, version)
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[])
             ON CONFLICT DO NOTHING",
        )
        .bind(c.0)
        .bind(c.1)
        .bind(c.2)
        .bind(c.3)
        .bind(c.4)
        .execute(&mut *conn)
        .await?;
    }
    let mut orders = OrderColumns::default();
    for row in rows.orders.into_values().flatten() {
        orders.push(row).map_err(unreadable)?;
    }
    if !orders.id.is_empty() {
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
        .bind(orders.id)
        .bind(orders.ticket_id)
        .bind(orders.buyer_id)
        .bind(orders.seller_id)
        .bind(orders.amount_cents)
        .bind(orders.currency)
        .bind(orders.status)
        .bind(orders.cancel_reason)
        .bind(orders.expires_at)
        .bind(orders.payment_id)
        .bind(orders.version)
        .bind(orders.created_at)
        .bind(orders.updated_at)
        .bind(orders.created_position)
        .bind(orders.position)
        .execute(&mut *conn)
        .await?;
    }
    let mut payments = PaymentColumns::default();
    for row in rows.payments.into_values().flatten() {
        payments.push(row).map_err(unreadable)?;
    }
    if !payments.id.is_empty() {
        sqlx::query(
            "INSERT INTO payments (id, order_id, ticket_id, amount_cents, currency, status, provider_ref,
                                   failure_reason, refund_due, created_at, updated_at, position)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::boolean[], $10::timestamptz[], $11::timestamptz[], $12::bigint[])
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, provider_ref = EXCLUDED.provider_ref,
                 failure_reason = EXCLUDED.failure_reason, refund_due = EXCLUDED.refund_due,
                 updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
        )
        .bind(payments.id)
        .bind(payments.order_id)
        .bind(payments.ticket_id)
        .bind(payments.amount_cents)
        .bind(payments.currency)
        .bind(payments.status)
        .bind(payments.provider_ref)
        .bind(payments.failure_reason)
        .bind(payments.refund_due)
        .bind(payments.created_at)
        .bind(payments.updated_at)
        .bind(payments.position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The `tickets` columns of a batch, one array per column.
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
    fn push(&mut self, row: Tracked<Ticket>) -> Result<(), StoredError> {
        let ticket = row.state;
        self.currency.push(stored::text(&ticket.currency, "currency")?);
        self.status.push(stored::text(&ticket.status, "ticket status")?);
        self.id.push(ticket.id.0);
        self.seller_id.push(ticket.seller.0);
        self.title.push(ticket.title.as_str().to_owned());
        self.price_cents.push(ticket.price.cents());
        self.holder.push(ticket.holder.map(|order| order.0));
        self.version.push(row.version);
        self.created_at.push(ticket.listed_at);
        self.updated_at.push(ticket.updated_at);
        self.created_position.push(row.created_position);
        self.position.push(row.position);
        Ok(())
    }
}

/// The `orders` columns of a batch, one array per column.
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
    fn push(&mut self, row: Tracked<Order>) -> Result<(), StoredError> {
        let order = row.state;
        self.currency.push(stored::text(&order.currency, "currency")?);
        self.status.push(stored::text(&order.status, "order status")?);
        self.cancel_reason.push(order.cancel_reason.map(|reason| stored::text(&reason, "cancel reason")).transpose()?);
        self.id.push(order.id.0);
        self.ticket_id.push(order.ticket_id.0);
        self.buyer_id.push(order.buyer.0);
        self.seller_id.push(order.seller.0);
        self.amount_cents.push(order.amount.cents());
        self.expires_at.push(order.expires_at);
        self.payment_id.push(order.payment.map(|payment| payment.0));
        self.version.push(row.version);
        self.created_at.push(order.placed_at);
        self.updated_at.push(order.updated_at);
        self.created_position.push(row.created_position * super::ORDER_SLOTS);
        self.position.push(row.position);
        Ok(())
    }
}

/// The `payments` columns of a batch, one array per column.
#[derive(Default)]
struct PaymentColumns {
    id: Vec<Uuid>,
    order_id: Vec<Uuid>,
    ticket_id: Vec<Option<Uuid>>,
    amount_cents: Vec<i64>,
    currency: Vec<String>,
    status: Vec<String>,
    provider_ref: Vec<Option<String>>,
    failure_reason: Vec<Option<String>>,
    refund_due: Vec<bool>,
    created_at: Vec<Timestamp>,
    updated_at: Vec<Timestamp>,
    position: Vec<i64>,
}

impl PaymentColumns {
    fn push(&mut self, row: Tracked<Payment>) -> Result<(), StoredError> {
        let payment = row.state;
        self.currency.push(stored::text(&payment.currency, "currency")?);
        self.status.push(stored::text(&payment.status, "payment status")?);
        self.id.push(payment.id.0);
        self.order_id.push(payment.order_id.0);
        self.ticket_id.push(payment.ticket_id.map(|t| t.0));
        self.amount_cents.push(payment.amount_cents);
        self.provider_ref.push(payment.provider_ref);
        self.failure_reason.push(payment.failure_reason);
        self.refund_due.push(payment.refund_due);
        self.created_at.push(payment.created_at);
        self.updated_at.push(payment.updated_at);
        self.position.push(row.position);
        Ok(())
    }
}
