CREATE TABLE IF NOT EXISTS cart_items (
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (customer_id, product_id)
);
