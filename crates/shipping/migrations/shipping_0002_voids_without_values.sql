-- A void (an order cancelled before it was shipped) holds no carrier,
-- tracking number or items: NULL, where it held empty ones; any other
-- shipment must hold all three. The row itself stays, so the unique
-- order_id still lets a void or a shipment win, never both.
-- backend: postgres
ALTER TABLE shipments ALTER COLUMN carrier DROP NOT NULL,
    ALTER COLUMN tracking_number DROP NOT NULL, ALTER COLUMN items DROP NOT NULL;
UPDATE shipments SET carrier = NULL, tracking_number = NULL, items = NULL WHERE status = 'VOIDED';
ALTER TABLE shipments ADD CONSTRAINT shipments_values_unless_voided CHECK (
    CASE WHEN status = 'VOIDED' THEN carrier IS NULL AND tracking_number IS NULL AND items IS NULL
         ELSE carrier IS NOT NULL AND tracking_number IS NOT NULL AND items IS NOT NULL END
);
-- backend: sqlite
-- SQLite cannot drop a NOT NULL or add a CHECK in place: the table is
-- rebuilt (its only indexes are those of its PRIMARY KEY and UNIQUE).
CREATE TABLE shipments_rebuilt (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    carrier TEXT,
    tracking_number TEXT,
    address TEXT,
    items TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT shipments_values_unless_voided CHECK (
        CASE WHEN status = 'VOIDED' THEN carrier IS NULL AND tracking_number IS NULL AND items IS NULL
             ELSE carrier IS NOT NULL AND tracking_number IS NOT NULL AND items IS NOT NULL END
    )
);
INSERT INTO shipments_rebuilt (id, order_id, status, carrier, tracking_number, address, items, created_at, updated_at)
SELECT id, order_id, status,
       CASE WHEN status = 'VOIDED' THEN NULL ELSE carrier END,
       CASE WHEN status = 'VOIDED' THEN NULL ELSE tracking_number END,
       address,
       CASE WHEN status = 'VOIDED' THEN NULL ELSE items END,
       created_at, updated_at
FROM shipments;
DROP TABLE shipments;
ALTER TABLE shipments_rebuilt RENAME TO shipments;
