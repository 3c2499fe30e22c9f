//! Test support: a fresh database per test on every backend. SQLite always;
//! PostgreSQL too when `AGORA_TEST_DATABASE_URL` names a server (CI sets it,
//! and sets `AGORA_REQUIRE_SERVERS=1` so that a missing server fails the run
//! instead of skipping). Each PostgreSQL test database is dropped afterwards,
//! also when the test panics before its `cleanup`.

use std::future::Future;
use std::path::PathBuf;

use crate::db::{drop_postgres_database, Db, Migration};

pub struct TestDb {
    /// "sqlite" or "postgres", for assertion messages.
    pub backend: &'static str,
    pub db: Db,
    /// Taken by `cleanup`; still here in `drop` when the test panicked.
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres(String),
}

/// One fresh, migrated database per available backend.
pub async fn backends(migrations: &[&[Migration]]) -> Vec<TestDb> {
    let mut dbs = Vec::new();
    let dir = std::env::temp_dir().join(format!("agora-db-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = Db::open_sqlite(&dir.join("test.db"), false).expect("sqlite opens");
    db.migrate(migrations).await.expect("sqlite migrates");
    dbs.push(TestDb {
        backend: "sqlite",
        db,
        cleanup: Some(Cleanup::Dir(dir)),
    });

    match std::env::var("AGORA_TEST_DATABASE_URL") {
        Ok(base) => {
            let url = fresh_database_url(&base);
            let db = Db::connect_postgres(&url, 8)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable: {e}"));
            db.migrate(migrations).await.expect("postgres migrates");
            dbs.push(TestDb {
                backend: "postgres",
                db,
                cleanup: Some(Cleanup::Postgres(url)),
            });
        }
        Err(_) if std::env::var("AGORA_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!("AGORA_REQUIRE_SERVERS=1 but AGORA_TEST_DATABASE_URL is not set")
        }
        Err(_) => eprintln!("AGORA_TEST_DATABASE_URL is not set: PostgreSQL variant skipped"),
    }
    dbs
}

/// The same server as `base`, with a new database name.
pub fn fresh_database_url(base: &str) -> String {
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    format!("{server}/agora_test_{}", uuid::Uuid::now_v7().simple())
}

impl TestDb {
    /// Removes the database (call at the end of the test).
    pub async fn cleanup(mut self) {
        self.db.close().await;
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.run().await;
        }
    }
}

impl Drop for TestDb {
    /// A test that panics never reaches `cleanup`: remove its database here.
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            block_on_aside(cleanup.run());
        }
    }
}

impl Cleanup {
    async fn run(self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres(url) => {
                if let Err(e) = drop_postgres_database(&url).await {
                    eprintln!("could not drop {url}: {e}");
                }
            }
        }
    }
}

/// Runs `future` to completion on a runtime of its own, on a thread of its
/// own: for cleanup in `Drop`, which may run inside a runtime (a panicking
/// `#[tokio::test]`) where blocking on that runtime is not allowed.
pub fn block_on_aside<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a cleanup runtime")
                    .block_on(future)
            })
            .join()
            .expect("cleanup does not panic")
    })
}
