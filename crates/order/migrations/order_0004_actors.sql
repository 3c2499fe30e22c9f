-- Who asked for an API call's step (the audit trail of operators' actions),
-- and the index the dashboard's recent-orders figures read by.
ALTER TABLE order_timeline ADD COLUMN actor TEXT;
CREATE INDEX IF NOT EXISTS orders_updated ON orders (updated_at);
