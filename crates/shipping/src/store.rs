//! Shipping storage: `shipments`, at most one per order.

use agora_platform::db::{Db, DbError, Migration, Row, Tx};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Shipment, ShipmentStatus};

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "shipping_0001_shipments",
    sql: include_str!("../migrations/shipping_0001_shipments.sql"),
}];

const COLUMNS: &str = "id, order_id, status, carrier, tracking_number, address, items, created_at";

fn shipment(row: &Row) -> Result<Shipment, DbError> {
    Ok(Shipment {
        id: row.uuid("id")?,
        order_id: row.uuid("order_id")?,
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

pub async fn find_by_order(tx: &mut Tx, order_id: Uuid) -> Result<Option<Shipment>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM shipments WHERE order_id = $1"),
        params![order_id],
    )
    .await?
    .as_ref()
    .map(shipment)
    .transpose()
}

/// Records the order's shipment; false when the order has one already.
pub async fn insert(tx: &mut Tx, shipment: &Shipment) -> Result<bool, DbError> {
    let address = shipment
        .address
        .as_ref()
        .map(|a| serde_json::to_string(a).expect("addresses serialise"));
    let items = serde_json::to_string(&shipment.items).expect("items serialise");
    let inserted = tx.execute(
        &format!("INSERT INTO shipments ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING"),
        params![
            shipment.id,
            shipment.order_id,
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

pub async fn set_status(tx: &mut Tx, id: Uuid, status: ShipmentStatus) -> Result<(), DbError> {
    tx.execute(
        "UPDATE shipments SET status = $1, updated_at = $2 WHERE id = $3",
        params![status.as_str(), agora_platform::clock::now_rfc3339(), id],
    )
    .await?;
    Ok(())
}

pub async fn list(db: &Db, order_id: Option<Uuid>, page: &Page) -> Result<Vec<Shipment>, DbError> {
    let [after, limit, offset] = page.params();
    db.query(
        &format!("SELECT {COLUMNS} FROM shipments WHERE ($1 IS NULL OR order_id = $1) AND status <> 'VOIDED'
                  AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3 OFFSET $4"),
        &[order_id.map(|id| id.to_string()).into(), after, limit, offset],
    )
    .await?
    .iter()
    .map(shipment)
    .collect()
}
