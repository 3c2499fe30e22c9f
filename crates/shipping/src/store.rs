//! Shipping storage: `shipments`, at most one per order: a shipment, or the
//! void of an order cancelled before it, whose carrier, tracking number and
//! items are NULL.

use agora_platform::db::{Conditions, Db, DbError, Migration, Row, Tx};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Record, Shipment, ShipmentStatus, Void};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "shipping_0001_shipments",
        sql: include_str!("../migrations/shipping_0001_shipments.sql"),
    },
    Migration {
        name: "shipping_0002_voids_without_values",
        sql: include_str!("../migrations/shipping_0002_voids_without_values.sql"),
    },
    Migration {
        name: "shipping_0003_customer",
        sql: include_str!("../migrations/shipping_0003_customer.sql"),
    },
];

const COLUMNS: &str =
    "id, order_id, customer_id, status, carrier, tracking_number, address, items, created_at";

/// The status that marks a void's row: a void shares the shipments' table,
/// and with it the unique `order_id` that lets either a void or a shipment
/// be recorded for an order, never both.
const VOIDED: &str = "VOIDED";

fn record(row: &Row) -> Result<Record, DbError> {
    if row.str("status")? == VOIDED {
        return Ok(Record::Voided(Void {
            order_id: row.uuid("order_id")?,
            at: row.text("created_at")?,
        }));
    }
    shipment(row).map(Record::Shipment)
}

fn shipment(row: &Row) -> Result<Shipment, DbError> {
    Ok(Shipment {
        id: row.uuid("id")?,
        order_id: row.uuid("order_id")?,
        customer_id: row.opt_text("customer_id")?,
        status: ShipmentStatus::parse(row.str("status")?).ok_or_else(|| {
            DbError::Decode(format!(
                "unknown shipment status {}",
                row.str("status").unwrap_or("")
            ))
        })?,
        carrier: row.text("carrier")?,
        tracking_number: row.text("tracking_number")?,
        address: row
            .opt_text("address")?
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| DbError::Decode(e.to_string()))?,
        items: row.json("items")?,
        created_at: row.text("created_at")?,
    })
}

pub async fn find_by_order(tx: &mut Tx, order_id: Uuid) -> Result<Option<Record>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM shipments WHERE order_id = $1"),
        params![order_id],
    )
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

/// Records the order's shipment; false when the order has one (or a void)
/// already.
pub async fn insert(tx: &mut Tx, shipment: &Shipment) -> Result<bool, DbError> {
    let address = shipment
        .address
        .as_ref()
        .map(|a| serde_json::to_string(a).expect("addresses serialise"));
    let items = serde_json::to_string(&shipment.items).expect("items serialise");
    let inserted = tx.execute(
        &format!("INSERT INTO shipments ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING"),
        params![
            shipment.id,
            shipment.order_id,
            shipment.customer_id.clone(),
            shipment.status.as_str(),
            &shipment.carrier,
            &shipment.tracking_number,
            address,
            items,
            &shipment.created_at,
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// Records the void of an order in its shipment's place; false when the
/// order has a shipment (or a void) already.
pub async fn insert_void(tx: &mut Tx, void: &Void) -> Result<bool, DbError> {
    let inserted = tx
        .execute(
            "INSERT INTO shipments (id, order_id, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
            params![Uuid::now_v7(), void.order_id, VOIDED, &void.at],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn set_status(tx: &mut Tx, id: Uuid, status: ShipmentStatus) -> Result<(), DbError> {
    tx.execute(
        "UPDATE shipments SET status = $1, updated_at = $2 WHERE id = $3",
        params![status.as_str(), agora_platform::clock::now_rfc3339(), id],
    )
    .await?;
    Ok(())
}

/// A page of shipments (of `customer`'s orders only, if given); voids are
/// no shipments, and are not listed.
pub async fn list(
    db: &Db,
    order_id: Option<Uuid>,
    customer: Option<&str>,
    page: &Page,
) -> Result<Vec<Shipment>, DbError> {
    let [after, limit, offset] = page.params();
    let filters = Conditions::new()
        .always(&format!("status <> '{VOIDED}'"))
        .given("order_id = $?", order_id.map(|id| id.to_string()))
        .given("customer_id = $?", customer)
        .given("id < $?", after);
    let n = filters.next();
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM shipments{} ORDER BY id DESC LIMIT ${n} OFFSET ${}",
            filters.clause(),
            n + 1
        ),
        &filters.params([limit, offset]),
    )
    .await?
    .iter()
    .map(shipment)
    .collect()
}
