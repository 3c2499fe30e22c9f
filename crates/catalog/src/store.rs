//! Catalog storage: the `products` table.

use agora_platform::db::{placeholders, Db, DbError, Migration, Row, Tx, Value};
use agora_platform::events::{Envelope, Money, ProductCreated};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{NewProduct, Product};

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "catalog_0001_products",
    sql: include_str!("../migrations/catalog_0001_products.sql"),
}];

const COLUMNS: &str = "id, sku, name, description, price_amount, currency, created_at";

fn product(row: &Row) -> Result<Product, DbError> {
    Ok(Product {
        id: row.uuid("id")?,
        sku: row.text("sku")?,
        name: row.text("name")?,
        description: row.text("description")?,
        price: Money {
            amount: row.i64("price_amount")?,
            currency: row.text("currency")?,
        },
        created_at: row.text("created_at")?,
    })
}

/// Inserts a product and announces it, in one transaction. `None` when the
/// SKU is taken.
pub async fn insert(tx: &mut Tx, id: Uuid, new: &NewProduct) -> Result<Option<Product>, DbError> {
    let created_at = agora_platform::clock::now_rfc3339();
    let inserted = tx
        .execute(
            &format!("INSERT INTO products ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"),
            params![id, &new.sku, &new.name, &new.description, new.price.amount, &new.price.currency, &created_at],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    tx.publish(&Envelope::root(&ProductCreated {
        product_id: id,
        sku: new.sku.clone(),
        initial_stock: new.initial_stock,
    }))
    .await?;
    Ok(Some(Product {
        id,
        sku: new.sku.clone(),
        name: new.name.clone(),
        description: new.description.clone(),
        price: new.price.clone(),
        created_at,
    }))
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Product>, DbError> {
    db.query_opt(
        &format!("SELECT {COLUMNS} FROM products WHERE id = $1"),
        params![id],
    )
    .await?
    .as_ref()
    .map(product)
    .transpose()
}

/// The products among `ids` that exist, in one statement.
pub async fn find_many(db: &Db, ids: &[Uuid]) -> Result<Vec<Product>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = ids.iter().map(Value::from).collect();
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM products WHERE id IN ({})",
            placeholders(1, ids.len())
        ),
        &values,
    )
    .await?
    .iter()
    .map(product)
    .collect()
}

/// A page of products, in the order they were created.
/// A page of products, in creation order; with `search`, only those whose
/// name or SKU holds it (any case).
pub async fn list(db: &Db, search: Option<&str>, page: &Page) -> Result<Vec<Product>, DbError> {
    let [after, limit, offset] = page.params();
    let pattern = search.map(|s| {
        let escaped = s
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM products WHERE ($1 IS NULL OR id > $1)
             AND ($4 IS NULL OR LOWER(name) LIKE $4 ESCAPE '\\' OR LOWER(sku) LIKE $4 ESCAPE '\\')
             ORDER BY id LIMIT $2 OFFSET $3"
        ),
        &[after, limit, offset, pattern.into()],
    )
    .await?
    .iter()
    .map(product)
    .collect()
}

pub async fn count(db: &Db) -> Result<i64, DbError> {
    db.query_opt("SELECT COUNT(*) AS n FROM products", &[])
        .await?
        .map_or(Ok(0), |r| r.i64("n"))
}
