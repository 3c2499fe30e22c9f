//! PostgreSQL specifics (skipped without `AGORA_TEST_DATABASE_URL`, never in
//! CI): what several instances of a service do at once when they start, and
//! the vacuum a service runs when the server does not.

use agora_platform::db::{drop_postgres_database, Db};
use agora_platform::periodic::Periodic;
use agora_platform::testing::{backends, fresh_database_url};
use agora_platform::vacuum::Vacuum;
use agora_platform::{outbox, params};

#[tokio::test]
async fn instances_starting_together_all_create_or_find_their_database() {
    let Ok(base) = std::env::var("AGORA_TEST_DATABASE_URL") else {
        assert!(
            !std::env::var("AGORA_REQUIRE_SERVERS").is_ok_and(|v| v == "1"),
            "AGORA_REQUIRE_SERVERS=1 but AGORA_TEST_DATABASE_URL is not set"
        );
        return;
    };
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
