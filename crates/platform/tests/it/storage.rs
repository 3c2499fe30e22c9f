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

/// A SQLite database with [`ITEMS`] in a fresh directory.
async fn sqlite_items() -> (
    agora_testing::DataDir,
    std::path::PathBuf,
    agora_platform::Db,
) {
    let dir = agora_testing::data_dir();
    let path = dir.join("items.db");
    let db = agora_platform::Db::open_sqlite(&path, false).unwrap();
    db.migrate(&[ITEMS]).await.unwrap();
    (dir, path, db)
}

/// Commits `rows` rows of about a page (4 KiB) each, one a transaction.
async fn write_pages(db: &agora_platform::Db, from: usize, rows: usize) {
    let page = "x".repeat(4_000);
    for i in from..from + rows {
        let mut tx = db.begin().await.unwrap();
        tx.execute(
            "INSERT INTO items VALUES ($1, $2, 0)",
            params![format!("row-{i:06}"), page.as_str()],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_commits_are_checkpointed_into_the_database_file_soon_after_without_waiting_for_a_full_wal(
) {
    // Arrange: 200 pages committed, a fifth of what SQLite's own automatic
    // checkpoint waits for.
    let (_dir, path, db) = sqlite_items().await;
    let before = std::fs::metadata(&path).unwrap().len();

    // Act
    write_pages(&db, 0, 200).await;

    // Assert: the pages reach the database file itself within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut size = before;
    while size < before + 200 * 4_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        size = std::fs::metadata(&path).unwrap().len();
    }
    assert!(
        size >= before + 200 * 4_000,
        "the database file grew from {before} to {size} bytes"
    );
}

/// How many times the WAL has been started over: its header's checkpoint
/// sequence number (big-endian, bytes 12-15). The file itself keeps its
/// largest size.
fn wal_restarts(wal: &std::path::Path) -> u32 {
    use std::io::Read;
    let mut header = [0; 16];
    std::fs::File::open(wal)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    u32::from_be_bytes(header[12..16].try_into().unwrap())
}

#[tokio::test]
async fn sqlite_wal_is_kept_short_under_steady_writes() {
    // Arrange
    let (_dir, path, db) = sqlite_items().await;
    let wal = path.with_extension("db-wal");
    let first = wal_restarts(&wal);

    // Act: pages committed in bursts, as a service's commits come, until
    // the WAL has been started over three times (or 20 s have passed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut written = 0;
    while wal_restarts(&wal) < first + 3 && std::time::Instant::now() < deadline {
        write_pages(&db, written, 50).await;
        written += 50;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }

    // Assert: the checkpoint thread kept the WAL short: started over three
    // times, and never as long as the writer's own fallback checkpoint
    // lets it grow (10,000 pages of 4 KiB).
    let restarts = wal_restarts(&wal) - first;
    let largest = std::fs::metadata(&wal).unwrap().len();
    assert!(
        restarts >= 3 && largest < 36 * 1024 * 1024,
        "{restarts} restarts of the WAL over {written} rows; it reached {largest} bytes"
    );
    let rows = db
        .query("SELECT COUNT(*) AS n FROM items", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].i64("n").unwrap(), written as i64);
}
