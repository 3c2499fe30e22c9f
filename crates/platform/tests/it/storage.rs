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
                .map(|r| {
                    (
                        r.text("id").unwrap(),
                        r.text("state").unwrap(),
                        r.i64("n").unwrap(),
                    )
                })
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

agora_testing::each_backend! {
    async fn rows_are_read_by_the_names_their_select_gives_the_columns() {
        for t in backends(&[ITEMS]).await {
            // Arrange: two rows, one with a NULL.
            let mut tx = t.db.begin().await.unwrap();
            tx.execute("INSERT INTO items VALUES ('a', 'NEW', 7), ('b', 'DONE', NULL)", &[])
                .await
                .unwrap();

            // Act: a qualified column, an alias and a computed column, read
            // inside the transaction and outside it.
            let sql = "SELECT i.id, i.state AS status, i.n, COUNT(*) OVER () AS total
                       FROM items i ORDER BY i.id";
            let inside = tx.query(sql, &[]).await.unwrap();
            tx.commit().await.unwrap();
            let outside = t.db.query(sql, &[]).await.unwrap();

            // Assert: the same names on both backends; an unknown name is a
            // decode error that names it.
            for rows in [&inside, &outside] {
                let read: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.text("id").unwrap(),
                            r.text("status").unwrap(),
                            r.opt_i64("n").unwrap(),
                            r.i64("total").unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(
                    read,
                    [
                        ("a".into(), "NEW".into(), Some(7), 2),
                        ("b".into(), "DONE".into(), None, 2)
                    ],
                    "{}",
                    t.backend
                );
                let unknown = rows[0].text("state").unwrap_err();
                assert!(
                    matches!(&unknown, agora_platform::db::DbError::Decode(m) if m.contains("state")),
                    "{}: {unknown}",
                    t.backend
                );
                let mistyped = rows[0].i64("status").unwrap_err().to_string();
                assert!(mistyped.contains("status"), "{}: {mistyped}", t.backend);
            }
            t.cleanup().await;
        }
    }
}
