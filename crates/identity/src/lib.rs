//! Identity service: accounts, password hashes, refresh tokens, and the keys
//! that sign access tokens.
//!
//! Owns `accounts`, `refresh_tokens` and `signing_keys`. Customers register
//! themselves; operators and admins are made by an admin (or `agora users
//! create`). Signing in gives a short-lived access token (a JWT every
//! process verifies itself, against the public keys this service publishes)
//! and a refresh token that is good for one use: each refresh hands out the
//! next one of its family, and a token used twice revokes the family (one of
//! the two users was a thief).

pub mod api;
pub mod domain;
pub mod handlers;
pub mod keys;
pub mod password;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_platform::auth::{HttpKeys, JwkSet, KeySource, Role, Verifier, LEEWAY_SECS};
use agora_platform::clock::now_secs;
use agora_platform::db::Migration;
use agora_platform::http::Page;
use agora_platform::service::{Context, Parts, Peer, Service, Settings};
use agora_platform::validate::Invalid;
use agora_platform::{Db, DbError};
use async_trait::async_trait;
use axum::http::Extensions;
use serde::Serialize;
use uuid::Uuid;

pub use domain::{Account, Email, NewAccount, Password};
pub use keys::SigningKey;
pub use store::MIGRATIONS;

pub const NAME: &str = "identity";

/// How long a refresh token (and so a session) lasts without use.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Failed sign-ins one account may have within [`LOGIN_WINDOW`], and one
/// client (address, or IPv6 /64) across every account it tries.
pub const LOGIN_FAILURES_PER_ACCOUNT: u32 = 5;
pub const LOGIN_FAILURES_PER_CLIENT: u32 = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The demo accounts made with the demo catalog, on an empty identity
/// storage: email, password, name, role.
pub const DEMO_ACCOUNTS: [(&str, &str, &str, Role); 3] = [
    (
        "shopper@example.com",
        "demo-shopper-password",
        "Demo Shopper",
        Role::Customer,
    ),
    (
        "operator@example.com",
        "demo-operator-password",
        "Demo Operator",
        Role::Operator,
    ),
    (
        "admin@example.com",
        "demo-admin-password",
        "Demo Admin",
        Role::Admin,
    ),
];

/// Why an identity use case refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("an account with this email exists already")]
    EmailTaken,
    /// Unknown email, wrong password or disabled account: one answer for
    /// all three, so that it tells nobody which emails have accounts.
    #[error("wrong email or password")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs().max(1))]
    TooManyAttempts(Duration),
    /// Unknown, used, revoked or expired: the client signs in again.
    #[error("the refresh token is not valid")]
    BadRefreshToken,
    #[error("no account {0}")]
    NoAccount(Uuid),
    #[error(transparent)]
    Storage(#[from] DbError),
    /// Hashing or signing failed: a fault of this process, not the input.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// What signing in (or refreshing) gives.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// A JWT (EdDSA), sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the access token is valid for.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Good for one `POST /api/v1/auth/refresh` (or a logout).
    pub refresh_token: String,
}

/// The identity service: its storage, the lifetime of its tokens, and the
/// failed sign-ins it has seen.
#[derive(Clone)]
pub struct Identity {
    pub db: Db,
    access_ttl: Duration,
    accounts_failing: Arc<Mutex<domain::FailureWindow>>,
    clients_failing: Arc<Mutex<domain::FailureWindow>>,
}

impl Identity {
    pub fn new(db: Db, access_ttl: Duration) -> Identity {
        Identity {
            db,
            access_ttl,
            accounts_failing: Arc::new(Mutex::new(domain::FailureWindow::new(
                LOGIN_FAILURES_PER_ACCOUNT,
                LOGIN_WINDOW,
            ))),
            clients_failing: Arc::new(Mutex::new(domain::FailureWindow::new(
                LOGIN_FAILURES_PER_CLIENT,
                LOGIN_WINDOW,
            ))),
        }
    }

    /// Creates an account (a customer's when it registers itself).
    pub async fn create_account(&self, new: &NewAccount) -> Result<Account, IdentityError> {
        let hash = password::hash(&new.password).await?;
        let account = Account {
            id: Uuid::now_v7(),
            email: new.email.as_str().to_owned(),
            name: new.name.clone(),
            role: new.role,
            disabled: false,
            created_at: agora_platform::clock::now_rfc3339(),
        };
        let mut tx = self.db.begin().await?;
        if !store::insert(&mut tx, &account, &hash).await? {
            return Err(IdentityError::EmailTaken);
        }
        tx.commit().await?;
        tracing::info!(account_id = %account.id, role = account.role.as_str(), "account created");
        Ok(account)
    }

    /// Signs in with an email and a password, from `client` (the key the
    /// client's failures are counted under).
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<Tokens, IdentityError> {
        // An email that does not parse has no account: the same answer.
        let email = Email::parse(email).ok();
        let account_key = email.as_ref().map(|e| e.as_str().to_owned());
        let now = Instant::now();
        let refused = {
            let accounts = self.accounts_failing.lock().expect("login window lock");
            let clients = self.clients_failing.lock().expect("login window lock");
            account_key
                .as_deref()
                .and_then(|k| accounts.refused(k, now))
                .max(clients.refused(client, now))
        };
        if let Some(wait) = refused {
            return Err(IdentityError::TooManyAttempts(wait));
        }
        let found = match &email {
            Some(email) => store::find_by_email(&self.db, email).await?,
            None => None,
        };
        let (account, stored) = match found {
            Some((account, hash)) => (Some(account), Some(hash)),
            None => (None, None),
        };
        let matches = password::verify(password, stored).await;
        let account = match account {
            Some(account) if matches && !account.disabled => account,
            _ => {
                let now = Instant::now();
                if let Some(key) = &account_key {
                    self.accounts_failing
                        .lock()
                        .expect("login window lock")
                        .failed(key, now);
                }
                self.clients_failing
                    .lock()
                    .expect("login window lock")
                    .failed(client, now);
                return Err(IdentityError::BadCredentials);
            }
        };
        if let Some(key) = &account_key {
            self.accounts_failing
                .lock()
                .expect("login window lock")
                .succeeded(key);
        }
        let mut tx = self.db.begin().await?;
        let tokens = self.issue(&mut tx, &account, Uuid::now_v7()).await?;
        tx.commit().await?;
        tracing::info!(account_id = %account.id, "signed in");
        Ok(tokens)
    }

    /// Trades a refresh token for new tokens. A token seen before revokes
    /// its whole family: whoever holds any of them signs in again.
    pub async fn refresh(&self, token: &str) -> Result<Tokens, IdentityError> {
        let hash = keys::token_hash(token);
        let now = now_secs();
        let mut tx = self.db.begin().await?;
        let Some(refresh) = store::find_refresh(&mut tx, &hash).await? else {
            return Err(IdentityError::BadRefreshToken);
        };
        if refresh.revoked || refresh.expires_at <= now {
            return Err(IdentityError::BadRefreshToken);
        }
        if refresh.used || !store::use_refresh(&mut tx, &hash, now).await? {
            store::revoke_family(&mut tx, refresh.family, now).await?;
            tx.commit().await?;
            tracing::warn!(account_id = %refresh.account_id, family = %refresh.family, "a refresh token was used twice: its family is revoked");
            return Err(IdentityError::BadRefreshToken);
        }
        let account = match store::find(&mut tx, refresh.account_id).await? {
            Some(account) if !account.disabled => account,
            _ => {
                store::revoke_family(&mut tx, refresh.family, now).await?;
                tx.commit().await?;
                return Err(IdentityError::BadRefreshToken);
            }
        };
        let tokens = self.issue(&mut tx, &account, refresh.family).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Ends the session a refresh token belongs to (its whole family). An
    /// unknown token ends nothing, and is no error: the client is signed
    /// out either way.
    pub async fn sign_out(&self, token: &str) -> Result<(), IdentityError> {
        let hash = keys::token_hash(token);
        let mut tx = self.db.begin().await?;
        if let Some(refresh) = store::find_refresh(&mut tx, &hash).await? {
            store::revoke_family(&mut tx, refresh.family, now_secs()).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn account(&self, id: Uuid) -> Result<Account, IdentityError> {
        store::find(&self.db, id)
            .await?
            .ok_or(IdentityError::NoAccount(id))
    }

    pub async fn accounts(&self, page: &Page) -> Result<Vec<Account>, IdentityError> {
        Ok(store::list(&self.db, page).await?)
    }

    /// An admin's change to an account. Disabling it (or changing its role)
    /// ends its sessions: the next refresh signs in again, and the access
    /// tokens it holds expire within their lifetime.
    pub async fn change(
        &self,
        id: Uuid,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<Account, IdentityError> {
        let mut tx = self.db.begin().await?;
        let before = store::find(&mut tx, id)
            .await?
            .ok_or(IdentityError::NoAccount(id))?;
        if let Some(role) = role.filter(|r| *r != before.role) {
            store::set_role(&mut tx, id, role).await?;
            store::revoke_account(&mut tx, id, now_secs()).await?;
        }
        if let Some(disabled) = disabled.filter(|d| *d != before.disabled) {
            store::set_disabled(&mut tx, id, disabled).await?;
            if disabled {
                store::revoke_account(&mut tx, id, now_secs()).await?;
            }
        }
        let after = store::find(&mut tx, id)
            .await?
            .ok_or(IdentityError::NoAccount(id))?;
        tx.commit().await?;
        tracing::info!(account_id = %id, role = after.role.as_str(), disabled = after.disabled, "account changed");
        Ok(after)
    }

    /// Creates an account with `role`, or when its email has one, gives it
    /// that role and password (how `agora users create` bootstraps an
    /// admin, and can be run again).
    pub async fn ensure_account(&self, new: &NewAccount) -> Result<Account, IdentityError> {
        match self.create_account(new).await {
            Err(IdentityError::EmailTaken) => {}
            created => return created,
        }
        let Some((existing, _)) = store::find_by_email(&self.db, &new.email).await? else {
            return Err(IdentityError::EmailTaken);
        };
        let hash = password::hash(&new.password).await?;
        let mut tx = self.db.begin().await?;
        store::set_password(&mut tx, existing.id, &hash).await?;
        tx.commit().await?;
        self.change(existing.id, Some(new.role), Some(false)).await
    }

    /// The demo accounts ([`DEMO_ACCOUNTS`]), on an identity storage that
    /// holds no account yet.
    pub async fn seed_demo(&self) -> Result<usize, IdentityError> {
        if store::count(&self.db).await? > 0 {
            return Ok(0);
        }
        for (email, password, name, role) in DEMO_ACCOUNTS {
            let new = NewAccount {
                email: Email::parse(email).map_err(anyhow::Error::msg)?,
                password: Password::parse(password).map_err(anyhow::Error::msg)?,
                name: name.into(),
                role,
            };
            self.create_account(&new).await?;
        }
        Ok(DEMO_ACCOUNTS.len())
    }

    /// The public keys that may have signed a token still valid.
    pub async fn jwks(&self) -> Result<JwkSet, IdentityError> {
        jwks(&self.db, self.access_ttl).await
    }

    /// An access token and the next refresh token of `family`.
    async fn issue(
        &self,
        tx: &mut agora_platform::Tx,
        account: &Account,
        family: Uuid,
    ) -> Result<Tokens, IdentityError> {
        let key = match store::current_key(&mut *tx).await? {
            Some(key) => key,
            None => return Err(anyhow::anyhow!("no signing key: the service did not start").into()),
        };
        let now = now_secs();
        let ttl = self.access_ttl.as_secs();
        let access_token = key.sign(account.id, account.role, now, ttl as i64)?;
        let (refresh_token, hash) = keys::refresh_token()?;
        store::insert_refresh(
            tx,
            &hash,
            account.id,
            family,
            now + REFRESH_TTL.as_secs() as i64,
        )
        .await?;
        Ok(Tokens {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
        })
    }
}

/// Makes a signing key when there is none (the first start).
pub async fn ensure_signing_key(db: &Db) -> Result<(), IdentityError> {
    if store::current_key(db).await?.is_none() {
        let key = rotate_key(db).await?;
        tracing::info!(kid = %key, "made the first signing key");
    }
    Ok(())
}

/// Adds a new signing key, which signs from now on; the one it replaces
/// keeps verifying until the tokens it signed have expired. Returns the new
/// key's id.
pub async fn rotate_key(db: &Db) -> Result<String, IdentityError> {
    let key = SigningKey::generate()?;
    let mut tx = db.begin().await?;
    store::add_key(&mut tx, &key, agora_platform::clock::now_millis()).await?;
    tx.commit().await?;
    Ok(key.kid)
}

/// What a process verifies tokens with: the identity storage's keys if it
/// holds it (`access_ttl` tells how long a superseded key still verifies),
/// else the published key set at the identity service's URL.
pub fn verifier(at: Peer<'_>, access_ttl: Duration) -> Arc<Verifier> {
    let source: Arc<dyn KeySource> = match at {
        Peer::Local(db) => Arc::new(LocalKeys {
            db: db.clone(),
            access_ttl,
        }),
        Peer::Remote(url) => Arc::new(HttpKeys::new(url)),
    };
    Arc::new(Verifier::new(source))
}

/// The public keys in `db` that may have signed a token still valid: the
/// current one, and those superseded less than a token's life (`access_ttl`,
/// plus the leeway) ago.
async fn jwks(db: &Db, access_ttl: Duration) -> Result<JwkSet, IdentityError> {
    let lives = access_ttl + Duration::from_secs(LEEWAY_SECS);
    let since = agora_platform::clock::now_millis() - lives.as_millis() as i64;
    let keys = store::live_keys(db, since).await?;
    Ok(JwkSet {
        keys: keys.iter().map(SigningKey::jwk).collect(),
    })
}

/// The key set read from the identity storage, for the process that holds
/// it (the embedded app, `agora service identity`).
pub struct LocalKeys {
    db: Db,
    access_ttl: Duration,
}

#[async_trait]
impl KeySource for LocalKeys {
    async fn keys(&self) -> Result<JwkSet, String> {
        jwks(&self.db, self.access_ttl)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The identity service: accounts and tokens, and the keys every process
/// verifies tokens with.
pub struct IdentityService;

#[async_trait]
impl Service for IdentityService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &[
            "/api/v1/auth",
            "/api/v1/me",
            "/api/v1/admin/users",
            "/.well-known",
        ]
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <api::ApiDoc as utoipa::OpenApi>::openapi()
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    /// What every process verifies tokens with: this service's keys, read
    /// from its storage in its own process, else over HTTP.
    fn offer(&self, at: Peer<'_>, settings: &Settings, offers: &mut Extensions) {
        offers.insert(verifier(at, settings.access_token_ttl));
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        ensure_signing_key(&context.db).await?;
        let identity = Identity::new(context.db.clone(), context.settings.access_token_ttl);
        if context.settings.seed_demo {
            let seeded = identity
                .seed_demo()
                .await
                .map_err(|e| anyhow::anyhow!("cannot make the demo accounts: {e}"))?;
            if seeded > 0 {
                tracing::info!(accounts = seeded, "made the demo accounts");
            }
        }
        Ok(Parts::new(api::router(identity.clone())).with_periodic(PruneRefreshTokens(identity)))
    }
}

/// Forgets refresh tokens a day after they expired.
struct PruneRefreshTokens(Identity);

#[async_trait]
impl agora_platform::periodic::Periodic for PruneRefreshTokens {
    fn name(&self) -> &'static str {
        "identity-refresh-tokens"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(3600)
    }

    async fn run_once(&self) -> anyhow::Result<usize> {
        let pruned = store::prune_refresh(&self.0.db, now_secs() - 24 * 3600).await?;
        Ok(pruned as usize)
    }
}
