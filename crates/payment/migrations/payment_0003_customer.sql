-- Whose payment it is (from PaymentRequested), so that a customer sees its
-- own payments only. NULL on voids and on payments recorded before.
ALTER TABLE payments ADD COLUMN customer_id TEXT;
CREATE INDEX IF NOT EXISTS payments_customer ON payments (customer_id);
