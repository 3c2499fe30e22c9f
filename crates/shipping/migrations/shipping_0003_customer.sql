-- Whose shipment it is (from ShippingRequested), so that a customer sees
-- its own shipments only. NULL on voids and on shipments recorded before.
ALTER TABLE shipments ADD COLUMN customer_id TEXT;
CREATE INDEX IF NOT EXISTS shipments_customer ON shipments (customer_id);
