//! Order storage: `orders`, `order_items`, `order_timeline`.

use std::collections::HashMap;

use agora_platform::db::{placeholders, Conditions, Db, DbError, Exec, Migration, Row, Tx, Value};
use agora_platform::events::{Money, PricedItem};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Awaiting, Order, OrderStatus, OrderSummary, TimelineEntry};
use crate::metrics::Transition;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "order_0001_orders",
        sql: include_str!("../migrations/order_0001_orders.sql"),
    },
    Migration {
        name: "order_0002_deadlines",
        sql: include_str!("../migrations/order_0002_deadlines.sql"),
    },
    Migration {
        name: "order_0003_awaiting",
        sql: include_str!("../migrations/order_0003_awaiting.sql"),
    },
    Migration {
        name: "order_0004_actors",
        sql: include_str!("../migrations/order_0004_actors.sql"),
    },
];

/// An order's columns, then one of its items' (`LEFT JOIN`, so an order
/// comes as one row per item): an order and its items in one statement.
macro_rules! select_orders {
    () => {
        "SELECT o.id, o.customer_id, o.email, o.phone, o.status, o.reason, o.total_amount,
        o.currency, o.shipping_address, o.payment_token, o.created_at, o.updated_at,
        o.correlation_id, o.awaiting, o.deadline_at,
        i.product_id, i.sku, i.name, i.quantity, i.unit_price
        FROM orders o LEFT JOIN order_items i ON i.order_id = o.id"
    };
}

const ORDER: &str = concat!(select_orders!(), " WHERE o.id = $1 ORDER BY i.line");

/// An order as read inside a transaction, changed in memory by the saga
/// steps that follow and written by [`save`]: one write for all the steps
/// of a batch.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub order: Order,
    pub correlation_id: String,
    /// When the current step is overdue (none once terminal or waiting
    /// for an operator).
    pub deadline_at: Option<i64>,
    /// Changed since it was read or last saved.
    pub changed: bool,
    /// What the row holds of what the saga decides on (status, awaited
    /// compensations): [`save`] writes only if it still does.
    stored: (OrderStatus, Awaiting),
    /// When the row was last written: the current step's start.
    stored_at: String,
}

fn status(row: &Row, column: &str) -> Result<OrderStatus, DbError> {
    OrderStatus::parse(row.str(column)?).ok_or_else(|| {
        DbError::Decode(format!(
            "unknown order status {}",
            row.str(column).unwrap_or("")
        ))
    })
}

/// The orders in `rows` of `select_orders!`, which come grouped by order
/// with their items in line order.
fn loaded_orders(rows: &[Row]) -> Result<Vec<Loaded>, DbError> {
    let mut orders: Vec<Loaded> = Vec::new();
    for row in rows {
        let id = row.uuid("id")?;
        if orders.last().is_none_or(|last| last.order.id != id) {
            orders.push(loaded(row)?);
        }
        if row.opt_text("product_id")?.is_some() {
            let order = &mut orders.last_mut().expect("pushed above").order;
            order.items.push(item(row)?);
        }
    }
    Ok(orders)
}

fn loaded(row: &Row) -> Result<Loaded, DbError> {
    let status = status(row, "status")?;
    Ok(Loaded {
        order: Order {
            id: row.uuid("id")?,
            customer_id: row.text("customer_id")?,
            email: row.text("email")?,
            phone: row.opt_text("phone")?,
            status,
            reason: row.opt_text("reason")?,
            total: Money {
                amount: row.i64("total_amount")?,
                currency: row.text("currency")?,
            },
            awaiting: Awaiting::parse(row.str("awaiting")?),
            shipping_address: row.json("shipping_address")?,
            payment_token: row.text("payment_token")?,
            created_at: row.text("created_at")?,
            updated_at: row.text("updated_at")?,
            items: Vec::new(),
        },
        correlation_id: row.text("correlation_id")?,
        deadline_at: row.opt_i64("deadline_at")?,
        changed: false,
        stored: (status, Awaiting::parse(row.str("awaiting")?)),
        stored_at: row.text("updated_at")?,
    })
}

/// The item in the `order_items` columns of `row`.
fn item(row: &Row) -> Result<PricedItem, DbError> {
    Ok(PricedItem {
        product_id: row.uuid("product_id")?,
        sku: row.text("sku")?,
        name: row.text("name")?,
        quantity: row.i64("quantity")? as u32,
        unit_price: row.i64("unit_price")?,
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
    deadline_at: Option<i64>,
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
    let items: Vec<Vec<Value>> = order
        .items
        .iter()
        .enumerate()
        .map(|(line, item)| {
            params![
                order.id,
                line as i64,
                item.product_id,
                &item.sku,
                &item.name,
                item.quantity,
                item.unit_price
            ]
            .to_vec()
        })
        .collect();
    tx.insert_rows(
        "order_items",
        "order_id, line, product_id, sku, name, quantity, unit_price",
        &items,
        None,
    )
    .await?;
    let entry = TimelineEntry {
        at: order.created_at.clone(),
        from: None,
        to: order.status,
        cause: cause.into(),
        event_id,
        actor: None,
        note: None,
    };
    add_timeline(tx, order.id, &entry);
    let created = Transition {
        from: None,
        to: order.status,
        in_state_secs: None,
        age_secs: Some(0.0),
        awaiting: order.awaiting,
    };
    tx.after_commit(move || crate::metrics::record(&created));
    Ok(Some(entry))
}

/// The order with its items, read inside a transaction.
pub async fn find_loaded(on: impl Into<Exec<'_>>, id: Uuid) -> Result<Option<Loaded>, DbError> {
    let rows = on.into().query(ORDER, params![id]).await?;
    Ok(loaded_orders(&rows)?.pop())
}

/// The orders among `ids` with their items, read inside a transaction in
/// one statement.
pub async fn find_many_in(tx: &mut Tx, ids: &[Uuid]) -> Result<HashMap<Uuid, Loaded>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        concat!(
            select_orders!(),
            " WHERE o.id IN ({}) ORDER BY o.id, i.line"
        ),
        placeholders(1, ids.len())
    );
    let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    let rows = tx.query(&sql, &values).await?;
    Ok(loaded_orders(&rows)?
        .into_iter()
        .map(|loaded| (loaded.order.id, loaded))
        .collect())
}

pub async fn find(on: impl Into<Exec<'_>>, id: Uuid) -> Result<Option<Order>, DbError> {
    Ok(find_loaded(on, id).await?.map(|loaded| loaded.order))
}

/// Writes the changed orders among `orders` (status, reason, awaited
/// compensations, deadline, the payment token once masked), each only if its row still holds the status
/// and awaited compensations it was read with (two instances confirming
/// two compensations of one order at once would otherwise each write what
/// the other no longer awaits): one statement for all on PostgreSQL, in
/// id order (two instances' batches lock shared orders in the same order).
/// Returns the ids of the orders another transaction changed first, which
/// it did not write.
pub async fn save<'a>(
    tx: &mut Tx,
    orders: impl IntoIterator<Item = &'a mut Loaded>,
) -> Result<Vec<Uuid>, DbError> {
    let mut changed: Vec<&mut Loaded> = orders.into_iter().filter(|l| l.changed).collect();
    changed.sort_by_key(|l| l.order.id);
    let rows: Vec<Vec<Value>> = changed
        .iter()
        .map(|l| {
            params![
                l.order.id,
                // Written only if still as read:
                l.stored.0.as_str(),
                l.stored.1.as_text(),
                // The new values:
                l.order.status.as_str(),
                l.order.reason.clone(),
                &l.order.updated_at,
                l.deadline_at,
                l.order.awaiting.as_text(),
                &l.order.payment_token,
            ]
            .to_vec()
        })
        .collect();
    let written = tx
        .update_rows(
            "orders",
            "id",
            &["status", "awaiting"],
            &[
                "status",
                "reason",
                "updated_at",
                "deadline_at",
                "awaiting",
                "payment_token",
            ],
            &rows,
        )
        .await?;
    let mut conflicts = Vec::new();
    let mut transitions = Vec::new();
    for (loaded, written) in changed.iter_mut().zip(written) {
        if written {
            if loaded.stored.0 != loaded.order.status {
                transitions.push(Transition {
                    from: Some(loaded.stored.0),
                    to: loaded.order.status,
                    in_state_secs: agora_platform::clock::seconds_since(&loaded.stored_at),
                    age_secs: agora_platform::clock::seconds_since(&loaded.order.created_at),
                    awaiting: loaded.order.awaiting,
                });
            }
            loaded.stored = (loaded.order.status, loaded.order.awaiting);
            loaded.stored_at = loaded.order.updated_at.clone();
            loaded.changed = false;
        } else {
            conflicts.push(loaded.order.id);
        }
    }
    tx.after_commit(move || transitions.iter().for_each(crate::metrics::record));
    Ok(conflicts)
}

/// Masks the payment tokens that orders past PENDING still hold in clear
/// (kept by an earlier release); run at start, returns how many.
pub async fn mask_spent_tokens(db: &Db) -> Result<usize, DbError> {
    let rows = db
        .query(
            "SELECT id, payment_token FROM orders WHERE status <> 'PENDING' AND payment_token NOT LIKE $1",
            params!["****%"],
        )
        .await?;
    for chunk in rows.chunks(500) {
        let mut tx = db.begin().await?;
        for row in chunk {
            let masked = agora_platform::secrets::mask(row.str("payment_token")?);
            tx.execute(
                "UPDATE orders SET payment_token = $1 WHERE id = $2",
                params![masked, row.text("id")?],
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(rows.len())
}

/// Orders still in the saga whose current step is past its deadline.
pub async fn overdue(db: &Db, now_millis: i64, limit: i64) -> Result<Vec<Uuid>, DbError> {
    db.query(
        "SELECT id FROM orders WHERE deadline_at < $1 AND status IN ('PENDING', 'RESERVED', 'PAID', 'COMPENSATING') LIMIT $2",
        params![now_millis, limit],
    )
    .await?
    .iter()
    .map(|r| r.uuid("id"))
    .collect()
}

/// Adds a timeline entry, written when `tx` commits or `timeline_in` reads.
pub fn add_timeline(tx: &mut Tx, order_id: Uuid, entry: &TimelineEntry) {
    tx.insert_at_commit(
        "order_timeline",
        "id, order_id, at, from_status, to_status, cause, event_id, actor, note",
        params![
            Uuid::now_v7(),
            order_id,
            &entry.at,
            entry.from.map(|s| s.as_str()),
            entry.to.as_str(),
            &entry.cause,
            entry.event_id.map(|id| id.to_string()),
            entry.actor.clone(),
            entry.note.clone(),
        ]
        .to_vec(),
    );
}

const TIMELINE: &str =
    "SELECT at, from_status, to_status, cause, event_id, actor, note FROM order_timeline WHERE order_id = $1 ORDER BY id";

/// Inside a transaction, with the entries it added.
pub async fn timeline(
    on: impl Into<Exec<'_>>,
    order_id: Uuid,
) -> Result<Vec<TimelineEntry>, DbError> {
    on.into()
        .query_written(TIMELINE, params![order_id])
        .await?
        .iter()
        .map(timeline_entry)
        .collect()
}

fn timeline_entry(r: &Row) -> Result<TimelineEntry, DbError> {
    {
        Ok(TimelineEntry {
            at: r.text("at")?,
            from: r
                .opt_text("from_status")?
                .and_then(|s| OrderStatus::parse(&s)),
            to: status(r, "to_status")?,
            cause: r.text("cause")?,
            event_id: r
                .opt_text("event_id")?
                .and_then(|s| Uuid::parse_str(&s).ok()),
            actor: r.opt_text("actor")?,
            note: r.opt_text("note")?,
        })
    }
}

pub async fn status_of(db: &Db, id: Uuid) -> Result<Option<OrderStatus>, DbError> {
    db.query_opt("SELECT status FROM orders WHERE id = $1", params![id])
        .await?
        .map(|r| status(&r, "status"))
        .transpose()
}

/// What a listing of orders is narrowed to.
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    pub customer_id: Option<&'a str>,
    pub status: Option<OrderStatus>,
    /// Created at or after (RFC 3339, as stored).
    pub since: Option<String>,
    /// Created before.
    pub until: Option<String>,
}

pub async fn list(
    db: &Db,
    filter: &ListFilter<'_>,
    page: &Page,
) -> Result<Vec<OrderSummary>, DbError> {
    let [after, limit, offset] = page.params();
    let filters = Conditions::new()
        .given("customer_id = $?", filter.customer_id)
        .given("status = $?", filter.status.map(|s| s.as_str()))
        .given("id < $?", after)
        .given("created_at >= $?", filter.since.clone())
        .given("created_at < $?", filter.until.clone());
    let n = filters.next();
    db.query(
        &format!(
            "SELECT id, customer_id, status, reason, total_amount, currency, created_at, updated_at
             FROM orders{} ORDER BY id DESC LIMIT ${n} OFFSET ${}",
            filters.clause(),
            n + 1
        ),
        &filters.params([limit, offset]),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(OrderSummary {
            id: r.uuid("id")?,
            customer_id: r.text("customer_id")?,
            status: status(r, "status")?,
            reason: r.opt_text("reason")?,
            total: Money {
                amount: r.i64("total_amount")?,
                currency: r.text("currency")?,
            },
            created_at: r.text("created_at")?,
            updated_at: r.text("updated_at")?,
        })
    })
    .collect()
}

/// Orders per status.
pub async fn status_counts(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    db.query(
        "SELECT status, COUNT(*) AS n FROM orders GROUP BY status ORDER BY status",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text("status")?, r.i64("n")?)))
    .collect()
}

/// Orders by state now, and those that ended since `since` (RFC 3339): how
/// many of each terminal state, and how long the latest `sample` of them
/// took from creation to their end.
pub async fn stats(db: &Db, since: &str, sample: i64) -> Result<Stats, DbError> {
    let in_flight = db
        .query(
            "SELECT status, COUNT(*) AS n FROM orders
             WHERE status IN ('PENDING', 'RESERVED', 'PAID', 'COMPENSATING', 'REQUIRES_ATTENTION')
             GROUP BY status",
            &[],
        )
        .await?;
    let ended = db
        .query(
            "SELECT status, COUNT(*) AS n FROM orders
             WHERE updated_at >= $1 AND status IN ('COMPLETED', 'CANCELLED', 'REJECTED')
             GROUP BY status",
            params![since],
        )
        .await?;
    let durations = db
        .query(
            "SELECT created_at, updated_at FROM orders
             WHERE updated_at >= $1 AND status IN ('COMPLETED', 'CANCELLED', 'REJECTED')
             ORDER BY updated_at DESC LIMIT $2",
            params![since, sample],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text("created_at")?, r.text("updated_at")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Stats {
        in_flight: counts(&in_flight)?,
        ended: counts(&ended)?,
        durations,
    })
}

/// `(status, n)` rows of a `GROUP BY status`.
fn counts(rows: &[Row]) -> Result<Vec<(OrderStatus, i64)>, DbError> {
    rows.iter()
        .map(|r| Ok((status(r, "status")?, r.i64("n")?)))
        .collect()
}

/// What [`stats`] read.
#[derive(Debug, Default)]
pub struct Stats {
    pub in_flight: Vec<(OrderStatus, i64)>,
    pub ended: Vec<(OrderStatus, i64)>,
    /// (created_at, updated_at) of recently ended orders.
    pub durations: Vec<(String, String)>,
}
