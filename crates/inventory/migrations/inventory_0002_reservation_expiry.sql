ALTER TABLE reservations ADD COLUMN expires_at BIGINT;
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at);
