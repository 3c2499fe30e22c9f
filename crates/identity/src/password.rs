//! Password hashes: Argon2id (RFC 9106) with the parameters OWASP
//! recommends as a baseline, 19 MiB of memory, 2 passes, 1 lane, a random
//! 16-byte salt per hash, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). The parameters travel
//! with each hash, so raising them later leaves existing hashes verifiable.
//!
//! A hash costs tens of milliseconds of CPU on purpose: it runs on the
//! blocking pool, never on the threads that serve requests.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;

/// Hashes computed at once, at most. Each holds 19 MiB for tens of
/// milliseconds; unbounded, a burst of sign-ins would take as many times
/// that memory (which the allocator then keeps) and every core.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Memory in KiB, passes, lanes.
pub const MEMORY_KIB: u32 = 19_456;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` under a fresh salt.
pub async fn hash(password: &Password) -> anyhow::Result<String> {
    let _turn = HASHING.acquire().await?;
    let password = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash a password: {e}"))
    })
    .await?
}

/// Whether `password` matches the PHC string `stored`. With no account to
/// check against (`None`), a hash made for the purpose is checked instead,
/// so that an unknown email costs the same time as a wrong password.
pub async fn verify(password: &str, stored: Option<String>) -> bool {
    let Ok(_turn) = HASHING.acquire().await else {
        return false;
    };
    let password = password.to_owned();
    let checked = tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| decoy().to_owned());
        PasswordHash::new(&stored)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await;
    checked.unwrap_or(false)
}

/// A hash of nothing anyone knows, made once.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .expect("randomness for a decoy");
        argon2()
            .hash_password(&secret, &salt)
            .expect("a decoy hashes")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery").unwrap();
        let stored = hash(&password).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", Some(stored.clone())).await);
        assert!(!verify("correct horse battery!", Some(stored)).await);
        assert!(!verify("correct horse battery", None).await);
        assert!(!verify("anything", Some("not a PHC string".into())).await);
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_their_salt() {
        let password = Password::parse("correct horse battery").unwrap();
        assert_ne!(
            hash(&password).await.unwrap(),
            hash(&password).await.unwrap()
        );
    }
}
