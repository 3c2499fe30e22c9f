//! Payment storage: `payments`, at most one per order: a payment, or the
//! void of an order cancelled before it, whose amount and currency are NULL.

use agora_platform::db::{Conditions, Db, DbError, Migration, Row, Tx};
use agora_platform::events::Money;
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Payment, PaymentStatus, Record, Void};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "payment_0001_payments",
        sql: include_str!("../migrations/payment_0001_payments.sql"),
    },
    Migration {
        name: "payment_0002_voids_without_values",
        sql: include_str!("../migrations/payment_0002_voids_without_values.sql"),
    },
    Migration {
        name: "payment_0003_customer",
        sql: include_str!("../migrations/payment_0003_customer.sql"),
    },
];

const COLUMNS: &str =
    "id, order_id, customer_id, amount, currency, status, reason, created_at, updated_at";

/// The status that marks a void's row: a void shares the payments' table,
/// and with it the unique `order_id` that lets either a void or a charge
/// be recorded for an order, never both.
const VOIDED: &str = "VOIDED";

fn record(row: &Row) -> Result<Record, DbError> {
    if row.str("status")? == VOIDED {
        return Ok(Record::Voided(Void {
            order_id: row.uuid("order_id")?,
            reason: row.text("reason")?,
            at: row.text("created_at")?,
        }));
    }
    payment(row).map(Record::Payment)
}

fn payment(row: &Row) -> Result<Payment, DbError> {
    Ok(Payment {
        id: row.uuid("id")?,
        order_id: row.uuid("order_id")?,
        customer_id: row.opt_text("customer_id")?,
        amount: Money {
            amount: row.i64("amount")?,
            currency: row.text("currency")?,
        },
        status: PaymentStatus::parse(row.str("status")?).ok_or_else(|| {
            DbError::Decode(format!(
                "unknown payment status {}",
                row.str("status").unwrap_or("")
            ))
        })?,
        reason: row.opt_text("reason")?,
        created_at: row.text("created_at")?,
        updated_at: row.text("updated_at")?,
    })
}

pub async fn find_by_order(tx: &mut Tx, order_id: Uuid) -> Result<Option<Record>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"),
        params![order_id],
    )
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

/// Records the order's payment; false when the order has one (or a void)
/// already.
pub async fn insert(tx: &mut Tx, payment: &Payment) -> Result<bool, DbError> {
    let inserted = tx.execute(
        &format!("INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"),
        params![
            payment.id,
            payment.order_id,
            payment.customer_id.clone(),
            payment.amount.amount,
            &payment.amount.currency,
            payment.status.as_str(),
            payment.reason.clone(),
            &payment.created_at,
            &payment.updated_at,
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// Records the void of an order in its payment's place; false when the
/// order has a payment (or a void) already.
pub async fn insert_void(tx: &mut Tx, void: &Void) -> Result<bool, DbError> {
    let inserted = tx
        .execute(
            "INSERT INTO payments (id, order_id, status, reason, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            params![
                Uuid::now_v7(),
                void.order_id,
                VOIDED,
                &void.reason,
                &void.at
            ],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn set_status(tx: &mut Tx, id: Uuid, status: PaymentStatus) -> Result<(), DbError> {
    tx.execute(
        "UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3",
        params![status.as_str(), agora_platform::clock::now_rfc3339(), id],
    )
    .await?;
    Ok(())
}

/// A page of payments (of `customer`'s orders only, if given); voids are no
/// payments, and are not listed.
pub async fn list(
    db: &Db,
    order_id: Option<Uuid>,
    customer: Option<&str>,
    page: &Page,
) -> Result<Vec<Payment>, DbError> {
    let [after, limit, offset] = page.params();
    let filters = Conditions::new()
        .always(&format!("status <> '{VOIDED}'"))
        .given("order_id = $?", order_id.map(|id| id.to_string()))
        .given("customer_id = $?", customer)
        .given("id < $?", after);
    let n = filters.next();
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM payments{} ORDER BY id DESC LIMIT ${n} OFFSET ${}",
            filters.clause(),
            n + 1
        ),
        &filters.params([limit, offset]),
    )
    .await?
    .iter()
    .map(payment)
    .collect()
}
