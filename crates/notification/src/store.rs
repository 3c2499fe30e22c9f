//! Notification storage: `contacts` and `notifications`.

use agora_platform::db::{Conditions, Db, DbError, Migration, Row, Tx};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Channel, Notification};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "notification_0001_notifications",
        sql: include_str!("../migrations/notification_0001_notifications.sql"),
    },
    Migration {
        name: "notification_0002_customer",
        sql: include_str!("../migrations/notification_0002_customer.sql"),
    },
];

pub async fn save_contact(
    tx: &mut Tx,
    order_id: Uuid,
    customer_id: &str,
    email: &str,
    phone: Option<&str>,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO contacts (order_id, customer_id, email, phone) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        params![order_id, customer_id, email, phone],
    )
    .await?;
    Ok(())
}

pub async fn contact(
    tx: &mut Tx,
    order_id: Uuid,
) -> Result<Option<(String, Option<String>)>, DbError> {
    tx.query_opt(
        "SELECT email, phone FROM contacts WHERE order_id = $1",
        params![order_id],
    )
    .await?
    .map(|r| Ok((r.text("email")?, r.opt_text("phone")?)))
    .transpose()
}

/// Records a notification, written when `tx` commits; a second one for the
/// same event and channel is ignored.
pub fn insert(tx: &mut Tx, n: &Notification, event_id: Uuid) {
    tx.insert_at_commit(
        "notifications",
        "id, order_id, channel, recipient, kind, message, event_id, created_at",
        params![
            n.id,
            n.order_id,
            n.channel.as_str(),
            &n.recipient,
            &n.kind,
            &n.message,
            event_id,
            &n.created_at
        ]
        .to_vec(),
    );
}

fn notification(row: &Row) -> Result<Notification, DbError> {
    Ok(Notification {
        id: row.uuid("id")?,
        order_id: row.uuid("order_id")?,
        channel: Channel::parse(row.str("channel")?).ok_or_else(|| {
            DbError::Decode(format!(
                "unknown channel {}",
                row.str("channel").unwrap_or("")
            ))
        })?,
        recipient: row.text("recipient")?,
        kind: row.text("kind")?,
        message: row.text("message")?,
        created_at: row.text("created_at")?,
    })
}

/// A page of notifications (of `customer`'s orders only, if given).
pub async fn list(
    db: &Db,
    order_id: Option<Uuid>,
    customer: Option<&str>,
    page: &Page,
) -> Result<Vec<Notification>, DbError> {
    let [after, limit, offset] = page.params();
    let filters = Conditions::new()
        .given("order_id = $?", order_id.map(|id| id.to_string()))
        .given(
            "order_id IN (SELECT order_id FROM contacts WHERE customer_id = $?)",
            customer,
        )
        .given("id > $?", after);
    let n = filters.next();
    db.query(
        &format!(
            "SELECT id, order_id, channel, recipient, kind, message, created_at FROM notifications{}
             ORDER BY id LIMIT ${n} OFFSET ${}",
            filters.clause(),
            n + 1
        ),
        &filters.params([limit, offset]),
    )
    .await?
    .iter()
    .map(notification)
    .collect()
}
