ALTER TABLE orders ADD COLUMN deadline_at BIGINT;
CREATE INDEX IF NOT EXISTS orders_deadline ON orders (deadline_at);
