//! The read models of events (the domain's shows): the event, its ticket types and sections with
//! their available counts, each seat's status, the orders on it with their items, and its history.
//!
//! A show can have 200,000 seats, so its state is not read into memory per batch the way a
//! ticket's is: each show event becomes a few set-based statements (`unnest`, `generate_series`)
//! applied in stream order inside the batch's transaction. The arithmetic is the domain's
//! ([`domain::Show::evolve`]): a placement takes what its orders hold, a cancellation of an open
//! order gives back everything that order held, at once. The tests compare these tables with the
//! domain's own fold of the same stream.

use domain::stored;
use domain::{Event, PlacedOrder, ShowId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Applied, Changes, ORDER_SLOTS};

fn unreadable(error: stored::StoredError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// Applies one event stored on a show's subjects (its payments' rows are folded with the rest).
///
/// # Errors
/// A database error.
pub(super) async fn apply(conn: &mut PgConnection, applied: &Applied<'_>, changes: &mut Changes) -> sqlx::Result<()> {
    let Some(show) = domain::subjects::show_of(applied.subject) else { return Ok(()) };
    let position = applied.position;
    let at = applied.event.at();
    match applied.event {
        Event::ShowCreated { organizer, title, venue, starts_at, ticket_types, sections, .. } => {
            sqlx::query(
                "INSERT INTO events (id, organizer_id, title, venue, starts_at, version, created_at, updated_at,
                                     created_position, position)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(show.0)
            .bind(organizer.0)
            .bind(title.as_str())
            .bind(venue.as_str())
            .bind(starts_at)
            .bind(at)
            .bind(position)
            .execute(&mut *conn)
            .await?;
            let idx: Vec<i32> = (0..ticket_types.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
            sqlx::query(
                "INSERT INTO ticket_types (id, event_id, idx, name, price_cents, capacity)
                 SELECT id, $1, idx, name, price, capacity
                 FROM unnest($2::uuid[], $3::int[], $4::text[], $5::bigint[], $6::int[]) AS t(id, idx, name, price, capacity)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(show.0)
            .bind(ticket_types.iter().map(|t| t.id.0).collect::<Vec<Uuid>>())
            .bind(&idx)
            .bind(ticket_types.iter().map(|t| t.name.clone()).collect::<Vec<String>>())
            .bind(ticket_types.iter().map(|t| t.price_cents.cents()).collect::<Vec<i64>>())
            .bind(ticket_types.iter().map(|t| i32::try_from(t.capacity).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
            .execute(&mut *conn)
            .await?;
            let idx: Vec<i32> = (0..sections.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
            let rows: Vec<i32> = sections.iter().map(|s| i32::from(s.rows)).collect();
            let per_row: Vec<i32> = sections.iter().map(|s| i32::from(s.seats_per_row)).collect();
            sqlx::query(
                "INSERT INTO sections (event_id, idx, name, price_cents, rows, seats_per_row, available)
                 SELECT $1, idx, name, price, rows, per_row, rows * per_row
                 FROM unnest($2::int[], $3::text[], $4::bigint[], $5::int[], $6::int[]) AS s(idx, name, price, rows, per_row)
                 ON CONFLICT DO NOTHING",
            )
            .bind(show.0)
            .bind(&idx)
            .bind(sections.iter().map(|s| s.name.clone()).collect::<Vec<String>>())
            .bind(sections.iter().map(|s| s.price_cents.cents()).collect::<Vec<i64>>())
            .bind(&rows)
            .bind(&per_row)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO seats (event_id, section_idx, row, number, status)
                 SELECT $1, s.idx, r, n, 'AVAILABLE'
                 FROM unnest($2::int[], $3::int[], $4::int[]) AS s(idx, rows, per_row),
                      generate_series(1, s.rows) AS r, generate_series(1, s.per_row) AS n
                 ON CONFLICT DO NOTHING",
            )
            .bind(show.0)
            .bind(&idx)
            .bind(&rows)
            .bind(&per_row)
            .execute(&mut *conn)
            .await?;
        }
        Event::ShowUpdated { title, venue, starts_at, .. } => {
            sqlx::query(
                "UPDATE events SET title = coalesce($2, title), venue = coalesce($3, venue),
                                   starts_at = coalesce($4, starts_at)
                 WHERE id = $1",
            )
            .bind(show.0)
            .bind(title.as_ref().map(|t| t.as_str().to_owned()))
            .bind(venue.as_ref().map(|v| v.as_str().to_owned()))
            .bind(starts_at)
            .execute(&mut *conn)
            .await?;
        }
        Event::ShowOrdersPlaced { orders, .. } => place(conn, show, orders, applied, changes).await?,
        Event::ShowOrderCancelled { order_id, reason, .. } => {
            let reason = stored::text(reason, "cancel reason").map_err(unreadable)?;
            // Only an open order gives anything back (a cancellation is written for open orders only;
            // the check keeps a replayed one harmless).
            let closed: Option<Uuid> = sqlx::query_scalar(
                "UPDATE orders SET status = 'CANCELLED', cancel_reason = $2, version = version + 1,
                                   updated_at = $3, position = $4
                 WHERE id = $1 AND status IN ('CREATED', 'AWAITING_PAYMENT') RETURNING id",
            )
            .bind(order_id.0)
            .bind(reason)
            .bind(at)
            .bind(position)
            .fetch_optional(&mut *conn)
            .await?;
            if closed.is_some() {
                free(conn, show, order_id.0).await?;
            }
            changes.orders.insert(*order_id);
        }
        Event::ShowPaymentStarted { order_id, payment_id, .. } => {
            sqlx::query(
                "UPDATE orders SET status = 'AWAITING_PAYMENT', payment_id = $2, version = version + 1,
                                   updated_at = $3, position = $4 WHERE id = $1",
            )
            .bind(order_id.0)
            .bind(payment_id.0)
            .bind(at)
            .bind(position)
            .execute(&mut *conn)
            .await?;
            changes.orders.insert(*order_id);
        }
        Event::ShowPaymentSucceeded { order_id, .. } => {
            let sold: Option<Uuid> = sqlx::query_scalar(
                "UPDATE orders SET status = 'COMPLETE', version = version + 1, updated_at = $2, position = $3
                 WHERE id = $1 AND status IN ('CREATED', 'AWAITING_PAYMENT') RETURNING id",
            )
            .bind(order_id.0)
            .bind(at)
            .bind(position)
            .fetch_optional(&mut *conn)
            .await?;
            if sold.is_some() {
                sell(conn, show, order_id.0).await?;
            }
            changes.orders.insert(*order_id);
        }
        Event::PaymentFailed { order_id, payment_id, .. } => {
            // Only the failure of the attempt under way reopens the order.
            sqlx::query(
                "UPDATE orders SET status = CASE WHEN status = 'AWAITING_PAYMENT' AND payment_id = $2
                                                 THEN 'CREATED' ELSE status END,
                                   version = version + 1, updated_at = $3, position = $4 WHERE id = $1",
            )
            .bind(order_id.0)
            .bind(payment_id.0)
            .bind(at)
            .bind(position)
            .execute(&mut *conn)
            .await?;
            changes.orders.insert(*order_id);
        }
        Event::PaymentPending { order_id, .. }
        | Event::LatePaymentReceived { order_id, .. }
        | Event::PaymentRefunded { order_id, .. } => {
            sqlx::query("UPDATE orders SET version = version + 1, updated_at = $2, position = $3 WHERE id = $1")
                .bind(order_id.0)
                .bind(at)
                .bind(position)
                .execute(&mut *conn)
                .await?;
            changes.orders.insert(*order_id);
        }
        _ => {}
    }
    // Every event of a show is a new version of it and a line of its history.
    let version: Option<i32> = sqlx::query_scalar(
        "UPDATE events SET version = version + 1, updated_at = $2, position = $3 WHERE id = $1 RETURNING version",
    )
    .bind(show.0)
    .bind(at)
    .bind(position)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(version) = version {
        sqlx::query(
            "INSERT INTO event_history (event_id, position, event_type, at, version) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(show.0)
        .bind(position)
        .bind(applied.event.type_name())
        .bind(at)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    changes.events.insert(show);
    Ok(())
}

/// Sells everything a paid order held: its tickets from held to sold, its seats sold.
async fn sell(conn: &mut PgConnection, show: ShowId, order: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ticket_types t SET held = t.held - c.n, sold = t.sold + c.n
         FROM (SELECT ticket_type_id, count(*)::int AS n FROM order_items
               WHERE order_id = $1 AND ticket_type_id IS NOT NULL GROUP BY ticket_type_id) c
         WHERE t.id = c.ticket_type_id",
    )
    .bind(order)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE seats SET status = 'SOLD' WHERE event_id = $1 AND order_id = $2")
        .bind(show.0)
        .bind(order)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Gives back everything an order held: its tickets to their types, its seats to their sections.
async fn free(conn: &mut PgConnection, show: ShowId, order: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ticket_types t SET held = t.held - c.n
         FROM (SELECT ticket_type_id, count(*)::int AS n FROM order_items
               WHERE order_id = $1 AND ticket_type_id IS NOT NULL GROUP BY ticket_type_id) c
         WHERE t.id = c.ticket_type_id",
    )
    .bind(order)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "WITH freed AS (
             UPDATE seats SET status = 'AVAILABLE', order_id = NULL
             WHERE event_id = $1 AND order_id = $2 RETURNING section_idx)
         UPDATE sections s SET available = s.available + f.n
         FROM (SELECT section_idx, count(*)::int AS n FROM freed GROUP BY section_idx) f
         WHERE s.event_id = $1 AND s.idx = f.section_idx",
    )
    .bind(show.0)
    .bind(order)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A group of placements: the orders, one item per ticket, and what they take.
async fn place(
    conn: &mut PgConnection,
    show: ShowId,
    orders: &[PlacedOrder],
    applied: &Applied<'_>,
    changes: &mut Changes,
) -> sqlx::Result<()> {
    let at = applied.event.at();
    let organizer: Option<Uuid> = sqlx::query_scalar("SELECT organizer_id FROM events WHERE id = $1")
        .bind(show.0)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(organizer) = organizer else { return Ok(()) };
    let mut o = OrderColumns::default();
    let mut items = ItemColumns::default();
    for (index, placed) in orders.iter().enumerate() {
        o.id.push(placed.order_id.0);
        o.buyer.push(placed.buyer.0);
        o.amount.push(placed.amount_cents);
        o.currency.push(stored::text(&placed.currency, "currency").map_err(unreadable)?);
        o.key.push(i64::try_from(index).unwrap_or(i64::MAX));
        o.expires_at.push(placed.expires_at);
        let mut idx = 0;
        for line in &placed.tickets {
            for _ in 0..line.quantity {
                items.push(placed.order_id.0, &mut idx, Some(line.ticket_type_id.0), None, line.price_cents.cents());
            }
        }
        for line in &placed.seats {
            items.push(placed.order_id.0, &mut idx, None, Some(&line.seat), line.price_cents.cents());
        }
        changes.orders.insert(placed.order_id);
    }
    let placed_ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO orders (id, ticket_id, event_id, buyer_id, seller_id, amount_cents, currency, status,
                             expires_at, version, created_at, updated_at, created_position, position)
         SELECT id, NULL, $1, buyer, $2, amount, currency, 'CREATED', expires_at, 1, $3, $3, $4 * $5 + key, $4
         FROM unnest($6::uuid[], $7::uuid[], $8::bigint[], $9::text[], $10::bigint[], $11::timestamptz[])
              AS o(id, buyer, amount, currency, key, expires_at)
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(show.0)
    .bind(organizer)
    .bind(at)
    .bind(applied.position)
    .bind(ORDER_SLOTS)
    .bind(&o.id)
    .bind(&o.buyer)
    .bind(&o.amount)
    .bind(&o.currency)
    .bind(&o.key)
    .bind(&o.expires_at)
    .fetch_all(&mut *conn)
    .await?;
    if placed_ids.len() != o.id.len() {
        // An order placed twice (which the domain never writes) takes its items once.
        items.keep(&placed_ids);
    }
    sqlx::query(
        "INSERT INTO order_items (order_id, idx, ticket_type_id, section_idx, row, number, price_cents)
         SELECT i.order_id, i.idx, i.ticket_type_id, s.idx, i.row, i.number, i.price
         FROM unnest($2::uuid[], $3::int[], $4::uuid[], $5::text[], $6::int[], $7::int[], $8::bigint[])
              AS i(order_id, idx, ticket_type_id, section, row, number, price)
         LEFT JOIN sections s ON s.event_id = $1 AND s.name = i.section",
    )
    .bind(show.0)
    .bind(&items.order)
    .bind(&items.idx)
    .bind(&items.ticket_type)
    .bind(&items.section)
    .bind(&items.row)
    .bind(&items.number)
    .bind(&items.price)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ticket_types t SET held = t.held + c.n
         FROM (SELECT ticket_type_id, count(*)::int AS n FROM unnest($1::uuid[]) AS u(ticket_type_id)
               WHERE ticket_type_id IS NOT NULL GROUP BY ticket_type_id) c
         WHERE t.id = c.ticket_type_id",
    )
    .bind(&items.ticket_type)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "WITH taken AS (
             UPDATE seats st SET status = 'RESERVED', order_id = u.order_id
             FROM unnest($2::uuid[], $3::text[], $4::int[], $5::int[]) AS u(order_id, section, row, number)
             JOIN sections s ON s.event_id = $1 AND s.name = u.section
             WHERE u.section IS NOT NULL AND st.event_id = $1 AND st.section_idx = s.idx
               AND st.row = u.row AND st.number = u.number AND st.status = 'AVAILABLE'
             RETURNING st.section_idx)
         UPDATE sections s SET available = s.available - f.n
         FROM (SELECT section_idx, count(*)::int AS n FROM taken GROUP BY section_idx) f
         WHERE s.event_id = $1 AND s.idx = f.section_idx",
    )
    .bind(show.0)
    .bind(&items.order)
    .bind(&items.section)
    .bind(&items.row)
    .bind(&items.number)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Default)]
struct OrderColumns {
    id: Vec<Uuid>,
    buyer: Vec<Uuid>,
    amount: Vec<i64>,
    currency: Vec<String>,
    key: Vec<i64>,
    expires_at: Vec<domain::Timestamp>,
}

#[derive(Default)]
struct ItemColumns {
    order: Vec<Uuid>,
    idx: Vec<i32>,
    ticket_type: Vec<Option<Uuid>>,
    section: Vec<Option<String>>,
    row: Vec<Option<i32>>,
    number: Vec<Option<i32>>,
    price: Vec<i64>,
}

impl ItemColumns {
    fn push(
        &mut self,
        order: Uuid,
        idx: &mut i32,
        ticket_type: Option<Uuid>,
        seat: Option<&domain::SeatId>,
        price: i64,
    ) {
        self.order.push(order);
        self.idx.push(*idx);
        *idx += 1;
        self.ticket_type.push(ticket_type);
        self.section.push(seat.map(|s| s.section.clone()));
        self.row.push(seat.map(|s| i32::from(s.row)));
        self.number.push(seat.map(|s| i32::from(s.number)));
        self.price.push(price);
    }

    /// Keeps only the items of these orders.
    fn keep(&mut self, orders: &[Uuid]) {
        let keep: Vec<bool> = self.order.iter().map(|o| orders.contains(o)).collect();
        let mut i = 0;
        self.order.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        macro_rules! retain {
            ($($column:ident),*) => {$({
                let mut i = 0;
                self.$column.retain(|_| {
                    i += 1;
                    keep[i - 1]
                });
            })*};
        }
        retain!(idx, ticket_type, section, row, number, price);
    }
}
