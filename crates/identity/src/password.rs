//! Password hashes: Argon2id (RFC 9106) with the parameters OWASP
//! recommends as a baseline, 19 MiB of memory, 2 passes, 1 lane, a random
//! 16-byte salt per hash, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). The parameters travel
//! with each hash, so raising them later leaves existing hashes verifiable.
//!
//! A hash costs tens of milliseconds of CPU on purpose: it runs on two
//! threads of its own ([`Hashers`]), never on the threads that serve
//! requests.

use std::sync::{mpsc, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;

/// Threads that compute hashes: at most this many at once.
const HASHERS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The threads hashes run on. Each hash takes 19 MiB; on the blocking pool
/// every thread that ever ran one kept its own allocator arena holding that
/// much (a debug app peaked at 188 MB after 16 registrations, against 66
/// MB without accounts). On two threads of their own, at most two arenas
/// hold it, and a burst of sign-ins queues instead of taking every core.
struct Hashers(mpsc::Sender<Job>);

impl Hashers {
    fn get() -> &'static Hashers {
        static HASHERS_: OnceLock<Hashers> = OnceLock::new();
        HASHERS_.get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>();
            let queue = std::sync::Arc::new(Mutex::new(queue));
            for i in 0..HASHERS {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("password-hasher-{i}"))
                    .spawn(move || loop {
                        let job = queue.lock().expect("hasher queue").recv();
                        match job {
                            Ok(job) => {
                                job();
                                give_back_freed_memory();
                            }
                            Err(_) => return,
                        }
                    })
                    .expect("a hasher thread starts");
            }
            Hashers(jobs)
        })
    }

    /// Runs `work` on a hasher thread and waits for its result.
    async fn run<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        Hashers::get()
            .0
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashers are gone"))?;
        Ok(result.await?)
    }
}

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
    let password = password.expose().to_owned();
    Hashers::run(move || {
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
    let password = password.to_owned();
    let checked = Hashers::run(move || {
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

/// Hands the 19 MiB a hash just freed back to the system: glibc's allocator
/// otherwise keeps it (its threshold for returning large blocks rises with
/// each one freed), and a process that made a few accounts kept hundreds
/// of megabytes it no longer used.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // heaps; it touches nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
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
