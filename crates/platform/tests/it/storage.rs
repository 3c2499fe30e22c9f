//! The storage layer's batched writes, the same on both backends.

use agora_platform::db::Migration;
use agora_platform::params;
use agora_testing::backends;

const ITEMS: &[Migration] = &[Migration {
    name: "test_0001_items",
    sql: "CREATE TABLE items (id TEXT PRIMARY KEY, state TEXT NOT NULL, n BIGINT)",
}];

agora_testing::each_backend! {
    async fn a_batched_update_writes_only_the_rows_still_as_they_were_read() {
        for t in backends(&[ITEMS]).await {
            // Arrange: three rows; `b` changes after it was read.
            let mut tx = t.db.begin().await.unwrap();
            for id in ["a", "b", "c"] {
                tx.execute("INSERT INTO items VALUES ($1, 'NEW', 0)", params![id])
                    .await
                    .unwrap();
            }
            tx.execute("UPDATE items SET state = 'TAKEN' WHERE id = 'b'", &[])
                .await
                .unwrap();

            // Act: each row guarded by the state it was read with (NEW).
            let row = |id: &str, n: i64| params![id, "NEW", "DONE", n].to_vec();
            let written = tx
                .update_rows("items", "id", &["state"], &["state", "n"], &[row("a", 1), row("b", 2), row("c", 3)])
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // Assert: `b` was not overwritten; the others were.
            assert_eq!(written, [true, false, true], "{}", t.backend);
            let rows = t
                .db
                .query("SELECT id, state, n FROM items ORDER BY id", &[])
                .await
                .unwrap();
            let seen: Vec<(String, String, i64)> = rows
                .iter()
                .map(|r| (r.text(0).unwrap(), r.text(1).unwrap(), r.i64(2).unwrap()))
                .collect();
            assert_eq!(
                seen,
                [
                    ("a".into(), "DONE".into(), 1),
                    ("b".into(), "TAKEN".into(), 0),
                    ("c".into(), "DONE".into(), 3)
                ],
                "{}",
                t.backend
            );
            t.cleanup().await;
        }
    }
}
