//! Inventory storage: `stock`, `reservations`, `adjustments`.

use std::collections::BTreeSet;

use agora_platform::db::{placeholders, Conditions, Db, DbError, Exec, Migration, Row, Tx, Value};
use agora_platform::events::{LineItem, Shortage};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Adjustment, Bucket, Level, Levels, Reservation, ReservationStatus, Stock};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "inventory_0001_stock",
        sql: include_str!("../migrations/inventory_0001_stock.sql"),
    },
    Migration {
        name: "inventory_0002_reservation_expiry",
        sql: include_str!("../migrations/inventory_0002_reservation_expiry.sql"),
    },
];

/// What happened to a reservation request.
#[derive(Debug, PartialEq)]
pub enum ReserveOutcome {
    Reserved(Vec<LineItem>),
    Rejected(Vec<Shortage>),
    /// The order has a reservation record already (a redelivery, or a
    /// cancellation that came first): nothing to do.
    AlreadyDecided,
}

fn now() -> String {
    agora_platform::clock::now_rfc3339()
}

/// Opens a product's stock; false if it has stock already.
pub async fn create_stock(
    tx: &mut Tx,
    product_id: Uuid,
    sku: &str,
    initial: u32,
) -> Result<bool, DbError> {
    let created = tx
        .execute(
            "INSERT INTO stock (product_id, sku, initial, available, reserved, sold, updated_at)
             VALUES ($1, $2, $3, $3, 0, 0, $4) ON CONFLICT DO NOTHING",
            params![product_id, sku, initial, now()],
        )
        .await?;
    Ok(created == 1)
}

/// Reads the stock levels of `products` for a transaction that will move
/// units between their buckets, locking the rows on PostgreSQL (SQLite has
/// one writer) in product order: every transaction, one event's or a
/// batch's, locks in that order, so two inventory instances never wait on
/// each other in a cycle. Unknown products are absent.
pub async fn lock_levels(tx: &mut Tx, products: &BTreeSet<Uuid>) -> Result<Levels, DbError> {
    let mut levels = Levels::default();
    if products.is_empty() {
        return Ok(levels);
    }
    // COLLATE "C": byte order of the text, which is the order of the ids.
    let lock = tx.locking_in_order_of("product_id");
    let sql = format!(
        "SELECT product_id, available, reserved, sold FROM stock WHERE product_id IN ({}){lock}",
        placeholders(1, products.len())
    );
    let ids: Vec<Value> = products.iter().map(|id| Value::from(*id)).collect();
    for row in tx.query(&sql, &ids).await? {
        let level = Level {
            available: row.i64("available")?,
            reserved: row.i64("reserved")?,
            sold: row.i64("sold")?,
        };
        levels.insert(row.uuid("product_id")?, level);
    }
    Ok(levels)
}

/// Writes the levels `levels` changed: one statement on PostgreSQL. The
/// rows are locked since [`lock_levels`], so the values are still ours to
/// write.
pub async fn write_levels(tx: &mut Tx, levels: &mut Levels) -> Result<(), DbError> {
    let at = now();
    let rows: Vec<Vec<Value>> = levels
        .take_changed()
        .into_iter()
        .map(|(id, l)| params![id, l.available, l.reserved, l.sold, &at].to_vec())
        .collect();
    tx.update_rows(
        "stock",
        "product_id",
        &[],
        &["available", "reserved", "sold", "updated_at"],
        &rows,
    )
    .await?;
    Ok(())
}

/// The products held by the reservations of `orders`, whatever their status.
pub async fn reserved_products(tx: &mut Tx, orders: &[Uuid]) -> Result<BTreeSet<Uuid>, DbError> {
    if orders.is_empty() {
        return Ok(BTreeSet::new());
    }
    let sql = format!(
        "SELECT items FROM reservations WHERE order_id IN ({})",
        placeholders(1, orders.len())
    );
    let ids: Vec<Value> = orders.iter().map(|id| Value::from(*id)).collect();
    let mut products = BTreeSet::new();
    for row in tx.query(&sql, &ids).await? {
        let items: Vec<LineItem> = row.json("items")?;
        products.extend(items.iter().map(|item| item.product_id));
    }
    Ok(products)
}

/// Reserves every item or none, until `expires_at` (epoch ms) at the
/// latest, in `levels` (locked by [`lock_levels`], written by
/// [`write_levels`]). `items` must be normalized.
pub async fn reserve_locked(
    tx: &mut Tx,
    levels: &mut Levels,
    order_id: Uuid,
    items: &[LineItem],
    expires_at: i64,
) -> Result<ReserveOutcome, DbError> {
    // Claiming the order's reservation row first makes the decision once:
    // a redelivery, or a cancellation that came first, finds it taken.
    if !insert_reservation(
        tx,
        order_id,
        ReservationStatus::Reserved,
        items,
        Some(expires_at),
    )
    .await?
    {
        return Ok(ReserveOutcome::AlreadyDecided);
    }
    match levels.reserve(items) {
        Ok(()) => Ok(ReserveOutcome::Reserved(items.to_vec())),
        Err(shortages) => {
            set_status(tx, order_id, ReservationStatus::Rejected).await?;
            Ok(ReserveOutcome::Rejected(shortages))
        }
    }
}

/// Returns a held reservation to available stock in `levels`. When the
/// order has no reservation yet, leaves a tombstone so a late
/// `OrderCreated` reserves nothing. Returns the released items, if any.
pub async fn release_locked(
    tx: &mut Tx,
    levels: &mut Levels,
    order_id: Uuid,
) -> Result<Option<Vec<LineItem>>, DbError> {
    let released = settle_held(
        tx,
        levels,
        order_id,
        (ReservationStatus::Released, Bucket::Available),
    )
    .await?;
    if released.is_none() {
        // A no-op when the order has a reservation record already.
        insert_reservation(tx, order_id, ReservationStatus::Cancelled, &[], None).await?;
    }
    Ok(released)
}

/// Turns a held reservation into sold stock in `levels`.
pub async fn sell_locked(
    tx: &mut Tx,
    levels: &mut Levels,
    order_id: Uuid,
) -> Result<bool, DbError> {
    Ok(settle_held(
        tx,
        levels,
        order_id,
        (ReservationStatus::Sold, Bucket::Sold),
    )
    .await?
    .is_some())
}

/// Moves the order's reservation from held to `to` (sold or released),
/// and its units from reserved to `bucket` of `levels`; returns
/// its items, `None` when it is not held (none yet, or decided already).
/// One conditional statement takes the reservation: of a sale, a release
/// and an expiry racing on other instances, exactly one gets the items.
async fn settle_held(
    tx: &mut Tx,
    levels: &mut Levels,
    order_id: Uuid,
    (to, bucket): (ReservationStatus, Bucket),
) -> Result<Option<Vec<LineItem>>, DbError> {
    let Some(row) = tx
        .query_opt(
            "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4 RETURNING items",
            params![to.as_str(), now(), order_id, ReservationStatus::Reserved.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let items: Vec<LineItem> = row.json("items")?;
    // A batch locks the products of the reservations it saw before it
    // began; one that another instance committed since may name others.
    // Those are locked now, out of product order: in that rare case two
    // transactions can deadlock, and PostgreSQL aborts one, which is tried
    // again.
    let missing = levels.missing(&items);
    if !missing.is_empty() {
        levels.add(lock_levels(tx, &missing).await?);
    }
    levels.shift(&items, Bucket::Reserved, bucket);
    Ok(Some(items))
}

#[derive(Debug, PartialEq)]
pub enum AdjustError {
    UnknownProduct,
    /// The adjustment would take available stock below zero.
    BelowZero {
        available: i64,
    },
}

pub async fn adjust(
    tx: &mut Tx,
    product_id: Uuid,
    adjustment: &Adjustment,
) -> Result<Result<(), AdjustError>, DbError> {
    let changed = tx
        .execute(
            "UPDATE stock SET available = available + $1, updated_at = $3
             WHERE product_id = $2 AND available + $1 >= 0",
            params![adjustment.delta, product_id, now()],
        )
        .await?;
    if changed == 0 {
        let available = tx
            .query_opt(
                "SELECT available FROM stock WHERE product_id = $1",
                params![product_id],
            )
            .await?;
        return Ok(Err(match available {
            None => AdjustError::UnknownProduct,
            Some(row) => AdjustError::BelowZero {
                available: row.i64("available")?,
            },
        }));
    }
    tx.execute(
        "INSERT INTO adjustments (id, product_id, delta, reason, created_at) VALUES ($1, $2, $3, $4, $5)",
        params![Uuid::now_v7(), product_id, adjustment.delta, &adjustment.reason, now()],
    )
    .await?;
    Ok(Ok(()))
}

const STOCK: &str = "SELECT s.product_id, s.sku, s.available, s.reserved, s.sold, s.initial,
        CAST(COALESCE((SELECT SUM(a.delta) FROM adjustments a WHERE a.product_id = s.product_id), 0) AS BIGINT) AS adjusted
     FROM stock s";

fn stock(row: &Row) -> Result<Stock, DbError> {
    Ok(Stock {
        product_id: row.uuid("product_id")?,
        sku: row.text("sku")?,
        available: row.i64("available")?,
        reserved: row.i64("reserved")?,
        sold: row.i64("sold")?,
        initial: row.i64("initial")?,
        adjusted: row.i64("adjusted")?,
    })
}

pub async fn find(on: impl Into<Exec<'_>>, product_id: Uuid) -> Result<Option<Stock>, DbError> {
    on.into()
        .query_opt(
            &format!("{STOCK} WHERE s.product_id = $1"),
            params![product_id],
        )
        .await?
        .as_ref()
        .map(stock)
        .transpose()
}

/// A page of every product's stock, by product id.
pub async fn list(db: &Db, page: &Page) -> Result<Vec<Stock>, DbError> {
    db.query(
        &format!("{STOCK} WHERE ($1 IS NULL OR s.product_id > $1) ORDER BY s.product_id LIMIT $2 OFFSET $3"),
        &page.params(),
    )
    .await?
    .iter()
    .map(stock)
    .collect()
}

/// The stock of the products among `ids` that have some, in one statement.
pub async fn find_many(db: &Db, ids: &[Uuid]) -> Result<Vec<Stock>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = ids.iter().map(Value::from).collect();
    db.query(
        &format!(
            "{STOCK} WHERE s.product_id IN ({}) ORDER BY s.product_id",
            placeholders(1, ids.len())
        ),
        &values,
    )
    .await?
    .iter()
    .map(stock)
    .collect()
}

/// Returns false when the order has a reservation record already.
async fn insert_reservation(
    tx: &mut Tx,
    order_id: Uuid,
    status: ReservationStatus,
    items: &[LineItem],
    expires_at: Option<i64>,
) -> Result<bool, DbError> {
    let items = serde_json::to_string(items).expect("line items serialise");
    let inserted = tx
        .execute(
            "INSERT INTO reservations (order_id, status, items, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT DO NOTHING",
            params![order_id, status.as_str(), items, now(), expires_at],
        )
        .await?;
    Ok(inserted == 1)
}

async fn set_status(tx: &mut Tx, order_id: Uuid, status: ReservationStatus) -> Result<(), DbError> {
    tx.execute(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3",
        params![status.as_str(), now(), order_id],
    )
    .await?;
    Ok(())
}

/// Reservations per status: for the audit and operators.
pub async fn reservation_counts(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    db.query(
        "SELECT status, COUNT(*) AS n FROM reservations GROUP BY status ORDER BY status",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text("status")?, r.i64("n")?)))
    .collect()
}

pub async fn reservations(
    db: &Db,
    status: Option<ReservationStatus>,
    order_id: Option<Uuid>,
    page: &Page,
) -> Result<Vec<Reservation>, DbError> {
    let [after, limit, offset] = page.params();
    let filters = Conditions::new()
        .given("status = $?", status.map(|s| s.as_str()))
        .given("order_id = $?", order_id.map(|id| id.to_string()))
        .given("order_id > $?", after);
    let n = filters.next();
    db.query(
        &format!(
            "SELECT order_id, status, items, created_at, updated_at FROM reservations{}
             ORDER BY order_id LIMIT ${n} OFFSET ${}",
            filters.clause(),
            n + 1
        ),
        &filters.params([limit, offset]),
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Reservation {
            order_id: r.uuid("order_id")?,
            status: r.text("status")?,
            items: r.json("items")?,
            created_at: r.text("created_at")?,
            updated_at: r.text("updated_at")?,
        })
    })
    .collect()
}

/// Held reservations past their time to live.
pub async fn expired(db: &Db, now_millis: i64, limit: i64) -> Result<Vec<Uuid>, DbError> {
    db.query(
        "SELECT order_id FROM reservations WHERE status = 'RESERVED' AND expires_at < $1 LIMIT $2",
        params![now_millis, limit],
    )
    .await?
    .iter()
    .map(|r| r.uuid("order_id"))
    .collect()
}
