-- How far each subscriber has read each service's outbox (its rowid).
CREATE TABLE IF NOT EXISTS cursors (
    subscriber TEXT NOT NULL,
    producer TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (subscriber, producer)
);
