-- An order's journey (every event about it, from every service) is read by
-- subject.
CREATE INDEX IF NOT EXISTS outbox_subject ON outbox (subject, id);
