//! Test support for Agora's crates, so that a test arranges what it needs
//! in one line and leaves nothing behind:
//!
//! - [`backends`] and [`each_backend!`]: a fresh, migrated database per test
//!   on every backend. SQLite always; PostgreSQL when
//!   `AGORA_TEST_DATABASE_URL` names a server. `each_backend!` makes one
//!   test per backend, and the PostgreSQL one is reported as ignored where
//!   no server is named (see `servers.rs`, the build script of the crates
//!   whose tests need the servers), never as passed.
//! - [`DataDir`]: a data directory removed when the last handle to it is
//!   dropped, whether the test passed or panicked.
//! - [`servers`]: the servers' URLs for the tests that start processes.
//!
//! Each PostgreSQL test database is dropped afterwards, also when the test
//! panics before its `cleanup`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use agora_platform::db::{drop_postgres_database, Db, Migration};

/// A data directory under the system's temporary directory, removed when
/// the last of its clones is dropped (a restarted app keeps it alive).
#[derive(Clone, Debug)]
pub struct DataDir(Arc<tempfile::TempDir>);

/// A fresh, empty data directory named `agora-test-…`.
pub fn data_dir() -> DataDir {
    DataDir(Arc::new(
        tempfile::Builder::new()
            .prefix("agora-test-")
            .tempdir()
            .expect("a temporary directory"),
    ))
}

impl std::ops::Deref for DataDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for DataDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

impl AsRef<Path> for DataDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// The test servers: `AGORA_TEST_DATABASE_URL` and `AGORA_TEST_AMQP_URL`.
/// A test that needs them is compiled as ignored where they are not named
/// (`#[cfg_attr(not(agora_servers), ignore = "…")]`), so here they are.
pub fn servers() -> (String, String) {
    let var = |name| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run with the servers (see README, Testing)")
        })
    };
    (var("AGORA_TEST_DATABASE_URL"), var("AGORA_TEST_AMQP_URL"))
}

/// Which backend [`backends`] gives, inside [`only`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static ONLY: Backend;
}

/// Runs `test` with [`backends`] giving only `backend` (how
/// [`each_backend!`] makes one test per backend).
pub async fn only<F: Future>(backend: Backend, test: F) -> F::Output {
    ONLY.scope(backend, test).await
}

/// One test per backend: `each_backend! { async fn name() { … } }` makes
/// `name::on_sqlite` and `name::on_postgres`, in which [`backends`] gives
/// that backend alone; the PostgreSQL one is ignored where no server is
/// named.
#[macro_export]
macro_rules! each_backend {
    ($($(#[doc = $doc:literal])* async fn $name:ident() { $($body:tt)* })*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn on_sqlite() {
                $crate::only($crate::Backend::Sqlite, async { $($body)* }).await
            }

            #[tokio::test]
            #[cfg_attr(
                not(agora_servers),
                ignore = "needs PostgreSQL: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
            )]
            async fn on_postgres() {
                $crate::only($crate::Backend::Postgres, async { $($body)* }).await
            }
        }
    )*};
}

pub struct TestDb {
    /// "sqlite" or "postgres", for assertion messages.
    pub backend: &'static str,
    pub db: Db,
    /// Taken by `cleanup`; still here in `drop` when the test panicked.
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Dir(DataDir),
    Postgres(String),
}

/// One fresh, migrated database per backend: inside [`each_backend!`],
/// that test's backend alone; elsewhere SQLite, and PostgreSQL too where
/// a server is named.
pub async fn backends(migrations: &[&[Migration]]) -> Vec<TestDb> {
    let only = ONLY.try_with(|b| *b).ok();
    let mut dbs = Vec::new();
    if only != Some(Backend::Postgres) {
        let dir = data_dir();
        let db = Db::open_sqlite(&dir.join("test.db"), false).expect("sqlite opens");
        db.migrate(migrations).await.expect("sqlite migrates");
        dbs.push(TestDb {
            backend: "sqlite",
            db,
            cleanup: Some(Cleanup::Dir(dir)),
        });
    }
    if only == Some(Backend::Sqlite) {
        return dbs;
    }
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
            // Removed as the last handle goes.
            Cleanup::Dir(dir) => drop(dir),
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
