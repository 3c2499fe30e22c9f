-- Deliveries held back from a subscriber (a test makes a service look slow):
-- those of `routing_key` whose envelope contains `needle` are parked in its
-- queue as never due. `state` is 'asked' until the subscriber honours the
-- hold ('holding'), and 'released' until it has let go of it (the row goes).
CREATE TABLE IF NOT EXISTS holds (
    name TEXT PRIMARY KEY,
    subscriber TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    needle TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'asked'
);
