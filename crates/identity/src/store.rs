//! Identity storage: `accounts`, `refresh_tokens` (hashed, in families) and
//! `signing_keys`.

use agora_platform::auth::Role;
use agora_platform::db::{Db, DbError, Exec, Migration, Row, Tx};
use agora_platform::http::Page;
use agora_platform::params;
use uuid::Uuid;

use crate::domain::{Account, Email};
use crate::keys::SigningKey;

pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "identity_0001_accounts",
    sql: include_str!("../migrations/identity_0001_accounts.sql"),
}];

const COLUMNS: &str = "id, email, name, role, disabled, created_at";

fn account(row: &Row) -> Result<Account, DbError> {
    let role = row.str("role")?;
    Ok(Account {
        id: row.uuid("id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        role: Role::parse(role).ok_or_else(|| DbError::Decode(format!("unknown role {role}")))?,
        disabled: row.i64("disabled")? != 0,
        created_at: row.text("created_at")?,
    })
}

/// Creates an account; `false` when the email has one already.
pub async fn insert(tx: &mut Tx, account: &Account, password_hash: &str) -> Result<bool, DbError> {
    let inserted = tx
        .execute(
            "INSERT INTO accounts (id, email, name, role, password_hash, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT DO NOTHING",
            params![
                account.id,
                &account.email,
                &account.name,
                account.role.as_str(),
                password_hash,
                &account.created_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn find<'a>(exec: impl Into<Exec<'a>>, id: Uuid) -> Result<Option<Account>, DbError> {
    exec.into()
        .query_opt(
            &format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"),
            params![id],
        )
        .await?
        .as_ref()
        .map(account)
        .transpose()
}

/// The account of `email`, with its password hash.
pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<(Account, String)>, DbError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS}, password_hash FROM accounts WHERE email = $1"),
            params![email.as_str()],
        )
        .await?;
    row.map(|row| Ok((account(&row)?, row.text("password_hash")?)))
        .transpose()
}

pub async fn list(db: &Db, page: &Page) -> Result<Vec<Account>, DbError> {
    let [after, limit, offset] = page.params();
    db.query(
        &format!(
            "SELECT {COLUMNS} FROM accounts WHERE ($1 IS NULL OR id > $1)
             ORDER BY id LIMIT $2 OFFSET $3"
        ),
        &[after, limit, offset],
    )
    .await?
    .iter()
    .map(account)
    .collect()
}

pub async fn count(db: &Db) -> Result<i64, DbError> {
    let row = db
        .query_opt("SELECT COUNT(*) AS n FROM accounts", &[])
        .await?
        .ok_or_else(|| DbError::Decode("COUNT(*) returned no row".into()))?;
    row.i64("n")
}

pub async fn set_role(tx: &mut Tx, id: Uuid, role: Role) -> Result<(), DbError> {
    tx.execute(
        "UPDATE accounts SET role = $1, updated_at = $2 WHERE id = $3",
        params![role.as_str(), agora_platform::clock::now_rfc3339(), id],
    )
    .await?;
    Ok(())
}

pub async fn set_disabled(tx: &mut Tx, id: Uuid, disabled: bool) -> Result<(), DbError> {
    tx.execute(
        "UPDATE accounts SET disabled = $1, updated_at = $2 WHERE id = $3",
        params![
            i64::from(disabled),
            agora_platform::clock::now_rfc3339(),
            id
        ],
    )
    .await?;
    Ok(())
}

pub async fn set_password(tx: &mut Tx, id: Uuid, password_hash: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3",
        params![password_hash, agora_platform::clock::now_rfc3339(), id],
    )
    .await?;
    Ok(())
}

/// A refresh token as stored.
pub struct Refresh {
    pub account_id: Uuid,
    pub family: Uuid,
    pub expires_at: i64,
    pub used: bool,
    pub revoked: bool,
}

pub async fn insert_refresh(
    tx: &mut Tx,
    hash: &str,
    account_id: Uuid,
    family: Uuid,
    expires_at: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, account_id, family, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        params![
            hash,
            account_id,
            family,
            expires_at,
            agora_platform::clock::now_rfc3339()
        ],
    )
    .await?;
    Ok(())
}

/// The refresh token of `hash`, locked for the rotation that follows.
pub async fn find_refresh(tx: &mut Tx, hash: &str) -> Result<Option<Refresh>, DbError> {
    let sql = format!(
        "SELECT account_id, family, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1{}",
        tx.locking_in_order_of("token_hash")
    );
    let row = tx.query_opt(&sql, params![hash]).await?;
    row.map(|row| {
        Ok(Refresh {
            account_id: row.uuid("account_id")?,
            family: row.uuid("family")?,
            expires_at: row.i64("expires_at")?,
            used: row.opt_i64("used_at")?.is_some(),
            revoked: row.opt_i64("revoked_at")?.is_some(),
        })
    })
    .transpose()
}

/// Marks a refresh token used: `false` when another request used it first.
pub async fn use_refresh(tx: &mut Tx, hash: &str, now: i64) -> Result<bool, DbError> {
    let updated = tx
        .execute(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
            params![now, hash],
        )
        .await?;
    Ok(updated == 1)
}

pub async fn revoke_family(tx: &mut Tx, family: Uuid, now: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
        params![now, family],
    )
    .await?;
    Ok(())
}

pub async fn revoke_account(tx: &mut Tx, account_id: Uuid, now: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL",
        params![now, account_id],
    )
    .await?;
    Ok(())
}

/// Forgets refresh tokens expired before `before` (unix seconds).
pub async fn prune_refresh(db: &Db, before: i64) -> Result<u64, DbError> {
    let mut tx = db.begin().await?;
    let pruned = tx
        .execute(
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            params![before],
        )
        .await?;
    tx.commit().await?;
    Ok(pruned)
}

fn signing_key(row: &Row) -> Result<SigningKey, DbError> {
    Ok(SigningKey {
        kid: row.text("kid")?,
        private_key: row.text("private_key")?,
        public_key: row.text("public_key")?,
    })
}

/// The key that signs now: the newest.
pub async fn current_key<'a>(exec: impl Into<Exec<'a>>) -> Result<Option<SigningKey>, DbError> {
    exec.into()
        .query_opt(
            "SELECT kid, private_key, public_key FROM signing_keys
             WHERE superseded_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
            &[],
        )
        .await?
        .as_ref()
        .map(signing_key)
        .transpose()
}

/// The keys that may have signed a token still valid: the current one and
/// those superseded after `since` (unix milliseconds), newest first.
pub async fn live_keys(db: &Db, since: i64) -> Result<Vec<SigningKey>, DbError> {
    db.query(
        "SELECT kid, private_key, public_key FROM signing_keys
         WHERE superseded_at IS NULL OR superseded_at > $1 ORDER BY created_at DESC, kid",
        params![since],
    )
    .await?
    .iter()
    .map(signing_key)
    .collect()
}

/// Makes `key` the one that signs; the previous one is superseded `now`
/// (unix milliseconds).
pub async fn add_key(tx: &mut Tx, key: &SigningKey, now: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE signing_keys SET superseded_at = $1 WHERE superseded_at IS NULL",
        params![now],
    )
    .await?;
    tx.execute(
        "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)",
        params![&key.kid, &key.private_key, &key.public_key, now],
    )
    .await?;
    Ok(())
}
