//! PostgreSQL specifics (skipped without `AGORA_TEST_DATABASE_URL`, never in
//! CI): what several instances of a service do at once when they start.

use agora_platform::db::{drop_postgres_database, Db};
use agora_platform::testing::fresh_database_url;

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
