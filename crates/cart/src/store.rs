//! Cart storage: `cart_items`.

use agora_platform::db::{Db, DbError, Migration, Tx};
use agora_platform::events::LineItem;
use agora_platform::params;
use uuid::Uuid;

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "cart_0001_cart_items",
    sql: include_str!("../migrations/cart_0001_cart_items.sql"),
}];

/// Adds `quantity` of a product, on top of what the cart holds. Returns the
/// new quantity.
pub async fn add(
    tx: &mut Tx,
    customer_id: &str,
    product_id: Uuid,
    quantity: u32,
) -> Result<i64, DbError> {
    tx.execute(
        "INSERT INTO cart_items (customer_id, product_id, quantity, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity",
        params![customer_id, product_id, quantity, agora_platform::clock::now_rfc3339()],
    )
    .await?;
    tx.query_opt(
        "SELECT quantity FROM cart_items WHERE customer_id = $1 AND product_id = $2",
        params![customer_id, product_id],
    )
    .await?
    .map_or(Ok(0), |r| r.i64("quantity"))
}

/// Adds `quantity` of a product like [`add`], holding at most `max`.
pub async fn add_at_most(
    tx: &mut Tx,
    customer_id: &str,
    product_id: Uuid,
    quantity: u32,
    max: i64,
) -> Result<(), DbError> {
    if add(tx, customer_id, product_id, quantity).await? > max {
        tx.execute(
            "UPDATE cart_items SET quantity = $3 WHERE customer_id = $1 AND product_id = $2",
            params![customer_id, product_id, max],
        )
        .await?;
    }
    Ok(())
}

/// Sets the quantity of a line the cart holds; false if it holds none.
pub async fn set(
    tx: &mut Tx,
    customer_id: &str,
    product_id: Uuid,
    quantity: u32,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE cart_items SET quantity = $3 WHERE customer_id = $1 AND product_id = $2",
            params![customer_id, product_id, quantity],
        )
        .await?
        > 0)
}

pub async fn remove(tx: &mut Tx, customer_id: &str, product_id: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM cart_items WHERE customer_id = $1 AND product_id = $2",
            params![customer_id, product_id],
        )
        .await?
        == 1)
}

pub async fn items(db: &Db, customer_id: &str) -> Result<Vec<LineItem>, DbError> {
    db.query(
        "SELECT product_id, quantity FROM cart_items WHERE customer_id = $1 ORDER BY added_at, product_id",
        params![customer_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(LineItem {
            product_id: r.uuid("product_id")?,
            quantity: r.i64("quantity")? as u32,
        })
    })
    .collect()
}

/// Empties the cart, returning what it held.
pub async fn take_all(tx: &mut Tx, customer_id: &str) -> Result<Vec<LineItem>, DbError> {
    let items = tx
        .query(
            "SELECT product_id, quantity FROM cart_items WHERE customer_id = $1 ORDER BY added_at, product_id",
            params![customer_id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(LineItem {
                product_id: r.uuid("product_id")?,
                quantity: r.i64("quantity")? as u32,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    tx.execute(
        "DELETE FROM cart_items WHERE customer_id = $1",
        params![customer_id],
    )
    .await?;
    Ok(items)
}
