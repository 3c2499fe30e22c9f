CREATE TABLE IF NOT EXISTS contacts (
    order_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    phone TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (event_id, channel)
);
CREATE INDEX IF NOT EXISTS notifications_order ON notifications (order_id);
