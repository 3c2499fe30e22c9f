//! `agora users create` and `agora keys rotate`: what an operator does to
//! the identity storage directly, in either mode (the embedded app's
//! `identity.db` in its data directory, or the identity service's
//! PostgreSQL database), while Agora runs or not. And the guard that keeps
//! the demo accounts, whose passwords the README prints, off a listener
//! others can reach.

use std::io::BufRead;
use std::net::ToSocketAddrs;
use std::path::PathBuf;

use agora_identity::{domain, Identity, IdentityService, DEMO_ACCOUNTS};
use agora_platform::auth::Role;
use agora_platform::Db;

use crate::services;

/// Where the identity storage is.
#[derive(clap::Args, Debug, Clone)]
pub struct IdentityStorage {
    /// The embedded mode's data directory (its `identity.db`).
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
    pub data_dir: PathBuf,
    /// The identity service's PostgreSQL database (distributed mode);
    /// when given, the data directory is not used.
    #[arg(long, env = "AGORA_IDENTITY_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl IdentityStorage {
    async fn open(&self) -> anyhow::Result<Db> {
        let db = match &self.database_url {
            Some(url) => Db::connect_postgres(url, 2).await?,
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                Db::open_sqlite(&self.data_dir.join("identity.db"), false)?
            }
        };
        db.migrate(&services::migrations(&IdentityService)).await?;
        Ok(db)
    }
}

#[derive(clap::Args, Debug)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Create an account (or give an existing one this role and password).
    /// The password is read from AGORA_PASSWORD, else from the first line of
    /// standard input: never from a flag, which `ps` would show.
    Create {
        #[arg(long)]
        email: String,
        /// customer, operator or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Defaults to the part of the email before the `@`.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        storage: IdentityStorage,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    domain::parse_role(raw)
}

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new signing key: it signs from now on, and the one it replaces
    /// keeps verifying until the tokens it signed have expired.
    Rotate {
        #[command(flatten)]
        storage: IdentityStorage,
    },
}

pub async fn users(args: UsersArgs) -> anyhow::Result<()> {
    match args.command {
        UsersCommand::Create {
            email,
            role,
            name,
            storage,
        } => {
            let password = match std::env::var("AGORA_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let new = domain::NewAccount {
                email: domain::Email::parse(&email).map_err(|e| anyhow::anyhow!("--email {e}"))?,
                password: domain::Password::parse(&password)
                    .map_err(|e| anyhow::anyhow!("the password {e}"))?,
                name: name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_owned()),
                role,
            };
            let db = storage.open().await?;
            // The token lifetime plays no part in making an account.
            let identity = Identity::new(db.clone(), std::time::Duration::ZERO);
            let account = identity.ensure_account(&new).await?;
            db.close().await;
            println!("{} {} {}", account.id, account.email, account.role.as_str());
            Ok(())
        }
    }
}

pub async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Rotate { storage } => {
            let db = storage.open().await?;
            let kid = agora_identity::rotate_key(&db).await?;
            db.close().await;
            println!("{kid}");
            Ok(())
        }
    }
}

/// Whether every address `listen` names is a loopback one.
pub fn is_loopback(listen: &str) -> bool {
    match listen.to_socket_addrs() {
        Ok(mut addrs) => addrs.all(|a| a.ip().is_loopback()),
        Err(_) => false,
    }
}

/// Refuses to serve demo accounts (made now, or left from an earlier start
/// and still enabled) on a listener that is not loopback, unless `allowed`.
pub async fn guard_demo_accounts(
    listen: &str,
    seed_demo: bool,
    identity: &Db,
    allowed: bool,
) -> anyhow::Result<()> {
    if allowed || is_loopback(listen) {
        return Ok(());
    }
    let mut present = Vec::new();
    for (email, ..) in DEMO_ACCOUNTS {
        let email = domain::Email::parse(email).map_err(anyhow::Error::msg)?;
        if let Some((account, _)) = agora_identity::store::find_by_email(identity, &email).await? {
            if !account.disabled {
                present.push(account.email);
            }
        }
    }
    let empty = agora_identity::store::count(identity).await? == 0;
    if present.is_empty() && !(seed_demo && empty) {
        return Ok(());
    }
    anyhow::bail!(
        "{listen} is not a loopback address, and the demo accounts (whose passwords are public) {}: \
         start with --no-seed on a new data directory, disable them (PATCH /api/v1/admin/users/ID), \
         or pass --allow-demo-accounts",
        if present.is_empty() { "would be made".to_owned() } else { format!("exist ({})", present.join(", ")) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listeners_count_as_private() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("[::1]:0"));
        assert!(!is_loopback("0.0.0.0:8080"));
        assert!(!is_loopback("[::]:8080"));
        assert!(!is_loopback("not an address"));
    }
}
