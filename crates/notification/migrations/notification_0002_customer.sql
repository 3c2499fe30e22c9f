-- Whose order a contact is for (from OrderCreated), so that a customer sees
-- the notifications of its own orders only.
ALTER TABLE contacts ADD COLUMN customer_id TEXT;
CREATE INDEX IF NOT EXISTS contacts_customer ON contacts (customer_id);
