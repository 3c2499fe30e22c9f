//! PostgreSQL specifics (ignored without `AGORA_TEST_DATABASE_URL`, never in
//! CI): what several instances of a service do at once when they start, and
//! the vacuum a service runs when the server does not.

use agora_platform::db::{drop_postgres_database, Db};
use agora_platform::periodic::Periodic;
use agora_platform::vacuum::Vacuum;
use agora_platform::{outbox, params};
use agora_testing::{backends, fresh_database_url};

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn instances_starting_together_all_create_or_find_their_database() {
    let (base, _) = agora_testing::servers();
    let url = fresh_database_url(&base);

    // Six instances of one service, started at the same moment, all see the
    // database missing; one creates it and the others must carry on.
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Db::connect_postgres(&url, 1).await })
        })
        .collect();
    let mut results = Vec::new();
    for start in starts {
        results.push(start.await.expect("the start does not panic"));
    }

    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(db) => {
                if let Err(e) = db.ping().await {
                    failures.push(e.to_string());
                }
                db.close().await;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    drop_postgres_database(&url).await.unwrap();

    assert!(
        failures.is_empty(),
        "instances failed to start: {failures:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_service_vacuums_its_database_when_the_server_does_not() {
    for t in backends(&[outbox::MIGRATIONS]).await {
        if t.backend != "postgres" {
            t.cleanup().await;
            continue;
        }
        // Arrange: outbox rows published (updated), which leaves dead row
        // versions behind.
        let mut tx = t.db.begin().await.unwrap();
        for i in 0..50 {
            tx.execute(
                "INSERT INTO outbox (id, routing_key, subject, envelope, created_at) VALUES ($1, 'k', 's', '{}', 't')",
                params![format!("{i:04}")],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let mut tx = t.db.begin().await.unwrap();
        tx.execute("UPDATE outbox SET published_at = 'now'", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Act
        Vacuum::new(t.db.clone()).run_once().await.unwrap();

        // Assert: vacuumed by the service exactly when the server would not.
        let server_vacuums = t.db.vacuums_itself().await.unwrap();
        let vacuumed_by_us = !t
            .db
            .query(
                "SELECT 1 FROM pg_stat_user_tables WHERE relname = 'outbox' AND last_vacuum IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .is_empty();
        assert_eq!(vacuumed_by_us, !server_vacuums);
        t.cleanup().await;
    }
}

/// What a refused write means is decided by the storage layer: a value the
/// database cannot store is the client's fault (422), a constraint a
/// conflict (409), and neither is ever "storage is unavailable" (503).
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_write_the_data_makes_impossible_is_never_an_outage() {
    use agora_platform::db::{Fault, Migration};
    use agora_platform::http::ApiError;
    const TABLE: &[Migration] = &[Migration {
        name: "t_0001",
        sql: "CREATE TABLE IF NOT EXISTS t (v TEXT PRIMARY KEY, n BIGINT NOT NULL CHECK (n >= 0));",
    }];
    for t in backends(&[TABLE]).await {
        let insert = |v: &'static str, n: i64| {
            let db = t.db.clone();
            async move {
                let mut tx = db.begin().await?;
                tx.execute("INSERT INTO t (v, n) VALUES ($1, $2)", params![v, n])
                    .await?;
                tx.commit().await
            }
        };
        insert("taken", 1).await.unwrap();
        let twice = insert("taken", 1).await.unwrap_err();
        assert_eq!(twice.fault(), Fault::Conflict, "{}: {twice}", t.backend);
        let negative = insert("n", -1).await.unwrap_err();
        assert_eq!(
            negative.fault(),
            Fault::Conflict,
            "{}: {negative}",
            t.backend
        );
        assert_eq!(ApiError::from(negative).status, 409);
        if t.backend == "postgres" {
            // SQLite keeps a NUL in text; PostgreSQL refuses it (22021).
            let nul = insert("a\u{0}b", 1).await.unwrap_err();
            assert_eq!(nul.fault(), Fault::Data, "{nul}");
            let answer = ApiError::from(nul);
            assert_eq!(answer.status, 422);
            assert_eq!(answer.retry_after, None);
        }
        t.cleanup().await;
    }
}
