//! Order storage: `orders`, `order_items`, `order_timeline`.

use std::collections::HashMap;

use agora_platform::db::{placeholders, Db, DbError, Migration, Row, Tx, Value};
use agora_platform::events::{Money, PricedItem};
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Awaiting, Order, OrderStatus, OrderSummary, TimelineEntry};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "order_0001_orders",
        sql: "
        CREATE TABLE IF NOT EXISTS orders (
            id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            email TEXT NOT NULL,
            phone TEXT,
            status TEXT NOT NULL,
            reason TEXT,
            total_amount BIGINT NOT NULL,
            currency TEXT NOT NULL,
            shipping_address TEXT NOT NULL,
            payment_token TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, id);
        CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
        CREATE TABLE IF NOT EXISTS order_items (
            order_id TEXT NOT NULL,
            line BIGINT NOT NULL,
            product_id TEXT NOT NULL,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            quantity BIGINT NOT NULL,
            unit_price BIGINT NOT NULL,
            PRIMARY KEY (order_id, line)
        );
        CREATE TABLE IF NOT EXISTS order_timeline (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            at TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT NOT NULL,
            cause TEXT NOT NULL,
            event_id TEXT,
            note TEXT
        );
        CREATE INDEX IF NOT EXISTS order_timeline_order ON order_timeline (order_id, id);
    ",
    },
    Migration {
        name: "order_0002_deadlines",
        sql: "
            ALTER TABLE orders ADD COLUMN deadline_at BIGINT;
            CREATE INDEX IF NOT EXISTS orders_deadline ON orders (deadline_at);
        ",
    },
    Migration {
        name: "order_0003_awaiting",
        sql: "ALTER TABLE orders ADD COLUMN awaiting TEXT NOT NULL DEFAULT '';",
    },
];

/// The columns `order()` reads, from `orders`.
macro_rules! select_orders {
    () => {
        "SELECT id, customer_id, email, phone, status, reason, total_amount, currency,
        shipping_address, payment_token, created_at, updated_at, correlation_id, awaiting FROM orders"
    };
}

const ORDER: &str = concat!(select_orders!(), " WHERE id = $1");

fn status(row: &Row, index: usize) -> Result<OrderStatus, DbError> {
    OrderStatus::parse(row.str(index)?).ok_or_else(|| {
        DbError::Decode(format!(
            "unknown order status {}",
            row.str(index).unwrap_or("")
        ))
    })
}

fn order(row: &Row, items: Vec<PricedItem>) -> Result<(Order, String), DbError> {
    Ok((
        Order {
            id: row.uuid(0)?,
            customer_id: row.text(1)?,
            email: row.text(2)?,
            phone: row.opt_text(3)?,
            status: status(row, 4)?,
            reason: row.opt_text(5)?,
            total: Money {
                amount: row.i64(6)?,
                currency: row.text(7)?,
            },
            awaiting: Awaiting::parse(row.str(13)?),
            shipping_address: row.json(8)?,
            payment_token: row.text(9)?,
            created_at: row.text(10)?,
            updated_at: row.text(11)?,
            items,
        },
        row.text(12)?,
    ))
}

const ITEMS: &str =
    "SELECT product_id, sku, name, quantity, unit_price FROM order_items WHERE order_id = $1 ORDER BY line";

fn item(row: &Row) -> Result<PricedItem, DbError> {
    Ok(PricedItem {
        product_id: row.uuid(0)?,
        sku: row.text(1)?,
        name: row.text(2)?,
        quantity: row.i64(3)? as u32,
        unit_price: row.i64(4)?,
    })
}

/// Inserts an order with its items and its first timeline entry, which it
/// returns; `None` when an order with this id exists already.
pub async fn insert(
    tx: &mut Tx,
    order: &Order,
    correlation_id: &str,
    cause: &str,
    event_id: Option<Uuid>,
    deadline_at: i64,
) -> Result<Option<TimelineEntry>, DbError> {
    let address = serde_json::to_string(&order.shipping_address).expect("addresses serialise");
    let inserted = tx
        .execute(
            "INSERT INTO orders (id, customer_id, email, phone, status, reason, total_amount, currency,
                shipping_address, payment_token, correlation_id, created_at, updated_at, deadline_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) ON CONFLICT DO NOTHING",
            params![
                order.id,
                &order.customer_id,
                &order.email,
                order.phone.clone(),
                order.status.as_str(),
                order.reason.clone(),
                order.total.amount,
                &order.total.currency,
                address,
                &order.payment_token,
                correlation_id,
                &order.created_at,
                deadline_at,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    for (line, item) in order.items.iter().enumerate() {
        tx.execute(
            "INSERT INTO order_items (order_id, line, product_id, sku, name, quantity, unit_price)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            params![
                order.id,
                line as i64,
                item.product_id,
                &item.sku,
                &item.name,
                item.quantity,
                item.unit_price
            ],
        )
        .await?;
    }
    let entry = TimelineEntry {
        at: order.created_at.clone(),
        from: None,
        to: order.status,
        cause: cause.into(),
        event_id,
        note: None,
    };
    add_timeline(tx, order.id, &entry);
    Ok(Some(entry))
}

/// The order (without its items) and its correlation id, read inside a
/// transaction: a saga step needs the items only to ask for shipping.
pub async fn find_in(tx: &mut Tx, id: Uuid) -> Result<Option<(Order, String)>, DbError> {
    let Some(row) = tx.query_opt(ORDER, params![id]).await? else {
        return Ok(None);
    };
    order(&row, Vec::new()).map(Some)
}

/// The orders among `ids` (without their items), with their correlation
/// ids, read inside a transaction in one statement.
pub async fn find_many_in(
    tx: &mut Tx,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (Order, String)>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        concat!(select_orders!(), " WHERE id IN ({})"),
        placeholders(1, ids.len())
    );
    let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    tx.query(&sql, &values)
        .await?
        .iter()
        .map(|row| order(row, Vec::new()).map(|found| (found.0.id, found)))
        .collect()
}

pub async fn items_in(tx: &mut Tx, id: Uuid) -> Result<Vec<PricedItem>, DbError> {
    tx.query(ITEMS, params![id])
        .await?
        .iter()
        .map(item)
        .collect()
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Order>, DbError> {
    let Some(row) = db.query_opt(ORDER, params![id]).await? else {
        return Ok(None);
    };
    let items = db
        .query(ITEMS, params![id])
        .await?
        .iter()
        .map(item)
        .collect::<Result<_, _>>()?;
    order(&row, items).map(|(o, _)| Some(o))
}

/// Moves the order from `from` to `to`, with what it now awaits and the
/// deadline of the next step (none once terminal or waiting for an
/// operator). Returns false if its status was no longer `from` (another
/// instance moved it first).
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    (from, to): (OrderStatus, OrderStatus),
    reason: Option<&str>,
    at: &str,
    (awaiting, deadline_at): (Awaiting, Option<i64>),
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE orders SET status = $1, reason = COALESCE($2, reason), updated_at = $3, deadline_at = $6, awaiting = $7
             WHERE id = $4 AND status = $5",
            params![to.as_str(), reason, at, id, from.as_str(), deadline_at, awaiting.as_text()],
        )
        .await?
        == 1)
}

pub async fn set_awaiting(tx: &mut Tx, id: Uuid, awaiting: Awaiting) -> Result<(), DbError> {
    tx.execute(
        "UPDATE orders SET awaiting = $1 WHERE id = $2",
        params![awaiting.as_text(), id],
    )
    .await?;
    Ok(())
}

/// Orders still in the saga whose current step is past its deadline.
pub async fn overdue(db: &Db, now_millis: i64, limit: i64) -> Result<Vec<Uuid>, DbError> {
    db.query(
        "SELECT id FROM orders WHERE deadline_at < $1 AND status IN ('PENDING', 'RESERVED', 'PAID', 'COMPENSATING') LIMIT $2",
        params![now_millis, limit],
    )
    .await?
    .iter()
    .map(|r| r.uuid(0))
    .collect()
}

/// Adds a timeline entry, written when `tx` commits or `timeline_in` reads.
pub fn add_timeline(tx: &mut Tx, order_id: Uuid, entry: &TimelineEntry) {
    tx.insert_at_commit(
        "order_timeline",
        "id, order_id, at, from_status, to_status, cause, event_id, note",
        params![
            Uuid::now_v7(),
            order_id,
            &entry.at,
            entry.from.map(|s| s.as_str()),
            entry.to.as_str(),
            &entry.cause,
            entry.event_id.map(|id| id.to_string()),
            entry.note.clone(),
        ]
        .to_vec(),
    );
}

const TIMELINE: &str =
    "SELECT at, from_status, to_status, cause, event_id, note FROM order_timeline WHERE order_id = $1 ORDER BY id";

pub async fn timeline(db: &Db, order_id: Uuid) -> Result<Vec<TimelineEntry>, DbError> {
    db.query(TIMELINE, params![order_id])
        .await?
        .iter()
        .map(timeline_entry)
        .collect()
}

/// The timeline as `tx` sees it, with the entries it added.
pub async fn timeline_in(tx: &mut Tx, order_id: Uuid) -> Result<Vec<TimelineEntry>, DbError> {
    tx.write_queued_rows().await?;
    tx.query(TIMELINE, params![order_id])
        .await?
        .iter()
        .map(timeline_entry)
        .collect()
}

fn timeline_entry(r: &Row) -> Result<TimelineEntry, DbError> {
    {
        Ok(TimelineEntry {
            at: r.text(0)?,
            from: r.opt_text(1)?.and_then(|s| OrderStatus::parse(&s)),
            to: status(r, 2)?,
            cause: r.text(3)?,
            event_id: r.opt_text(4)?.and_then(|s| Uuid::parse_str(&s).ok()),
            note: r.opt_text(5)?,
        })
    }
}

pub async fn status_of(db: &Db, id: Uuid) -> Result<Option<OrderStatus>, DbError> {
    db.query_opt("SELECT status FROM orders WHERE id = $1", params![id])
        .await?
        .map(|r| status(&r, 0))
        .transpose()
}

pub async fn list(
    db: &Db,
    customer_id: Option<&str>,
    status_filter: Option<OrderStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<OrderSummary>, DbError> {
    db.query(
        "SELECT id, customer_id, status, reason, total_amount, currency, created_at, updated_at FROM orders
         WHERE ($1 IS NULL OR customer_id = $1) AND ($2 IS NULL OR status = $2)
         ORDER BY id DESC LIMIT $3 OFFSET $4",
        params![customer_id, status_filter.map(|s| s.as_str()), limit, offset],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(OrderSummary {
            id: r.uuid(0)?,
            customer_id: r.text(1)?,
            status: status(r, 2)?,
            reason: r.opt_text(3)?,
            total: Money {
                amount: r.i64(4)?,
                currency: r.text(5)?,
            },
            created_at: r.text(6)?,
            updated_at: r.text(7)?,
        })
    })
    .collect()
}

/// Orders per status.
pub async fn status_counts(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    db.query(
        "SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text(0)?, r.i64(1)?)))
    .collect()
}
