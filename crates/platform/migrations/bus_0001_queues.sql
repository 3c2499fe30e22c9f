CREATE TABLE IF NOT EXISTS deliveries (
    subscriber TEXT NOT NULL,
    event_id TEXT NOT NULL,
    copy BIGINT NOT NULL,
    routing_key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (subscriber, event_id, copy)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    subscriber TEXT NOT NULL,
    event_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    error TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    PRIMARY KEY (subscriber, event_id)
);
