-- A void (an order cancelled before its payment was asked for) holds no
-- amount or currency: NULL, where it held 0 XXX; any other payment must
-- hold both. The row itself stays, so the unique order_id still lets a void
-- or a charge win, never both.
-- backend: postgres
ALTER TABLE payments ALTER COLUMN amount DROP NOT NULL, ALTER COLUMN currency DROP NOT NULL;
UPDATE payments SET amount = NULL, currency = NULL WHERE status = 'VOIDED';
ALTER TABLE payments ADD CONSTRAINT payments_values_unless_voided CHECK (
    CASE WHEN status = 'VOIDED' THEN amount IS NULL AND currency IS NULL
         ELSE amount IS NOT NULL AND currency IS NOT NULL END
);
-- backend: sqlite
-- SQLite cannot drop a NOT NULL or add a CHECK in place: the table is
-- rebuilt (its only indexes are those of its PRIMARY KEY and UNIQUE).
CREATE TABLE payments_rebuilt (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    amount BIGINT,
    currency TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT payments_values_unless_voided CHECK (
        CASE WHEN status = 'VOIDED' THEN amount IS NULL AND currency IS NULL
             ELSE amount IS NOT NULL AND currency IS NOT NULL END
    )
);
INSERT INTO payments_rebuilt (id, order_id, amount, currency, status, reason, created_at, updated_at)
SELECT id, order_id,
       CASE WHEN status = 'VOIDED' THEN NULL ELSE amount END,
       CASE WHEN status = 'VOIDED' THEN NULL ELSE currency END,
       status, reason, created_at, updated_at
FROM payments;
DROP TABLE payments;
ALTER TABLE payments_rebuilt RENAME TO payments;
