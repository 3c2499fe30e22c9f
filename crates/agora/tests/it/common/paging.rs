//! Every list is paged, whichever mode serves it: at most 500 items a
//! page, a bounded `offset`, and a cursor (`after`) that reads any depth
//! without skipping or repeating.

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use super::{order_body, Api};

/// Reads `path` page by page (`limit` items, `after` = `key` of the last
/// item) and returns every key, checking that no page is larger.
async fn keys_by_cursor(api: &Api, path: &str, key: &str, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut after = String::new();
    loop {
        let page = api.get_json(&format!("{path}limit={limit}{after}")).await;
        let items = page
            .get("items")
            .unwrap_or(&page)
            .as_array()
            .unwrap()
            .clone();
        assert!(items.len() <= limit, "{path}: {} items", items.len());
        keys.extend(items.iter().map(|i| i[key].as_str().unwrap().to_owned()));
        match items.last() {
            Some(last) if items.len() == limit => {
                after = format!("&after={}", last[key].as_str().unwrap())
            }
            _ => return keys,
        }
    }
}

#[track_caller]
fn assert_distinct(keys: &[String]) {
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "a cursor repeated an item: {keys:?}"
    );
}

pub async fn every_list_is_paged(api: &Api) {
    let mut products = Vec::new();
    for _ in 0..5 {
        products.push(api.create_product(100, 10).await);
    }
    let name = format!("pages-{}", Uuid::now_v7().simple());
    let shopper = api.customer(&name).await;
    let customer = api.customer_id(&name).await;
    let mut orders = Vec::new();
    for product in &products {
        let body = order_body(*product, 1, "tok_visa");
        orders.push(shopper.place_order(&body).await);
    }
    for id in &orders {
        api.terminal(*id).await;
    }

    // Stock, by product id, two at a time: every product once.
    let stock = keys_by_cursor(api, "/api/v1/inventory?", "product_id", 2).await;
    assert_distinct(&stock);
    for p in &products {
        assert!(
            stock.contains(&p.to_string()),
            "{p} missing from the stock pages"
        );
    }
    // A page holds at most 500, however many are asked for.
    let all: Value = api.get_json("/api/v1/inventory?limit=100000").await;
    assert!(all.as_array().unwrap().len() <= 500);
    // The products of one order as one list (the stock check's question).
    let ids: Vec<String> = products.iter().map(Uuid::to_string).collect();
    let named = api
        .get_json(&format!("/api/v1/inventory?ids={}", ids.join(",")))
        .await;
    assert_eq!(named.as_array().unwrap().len(), products.len());
    let too_many = vec![Uuid::now_v7().to_string(); 501].join(",");
    assert_eq!(
        api.get(&format!("/api/v1/inventory?ids={too_many}"))
            .await
            .status(),
        400
    );

    // Orders, newest first, by cursor: the customer's five, once each.
    let path = format!("/api/v1/orders?customer_id={customer}&");
    let listed = keys_by_cursor(api, &path, "id", 2).await;
    assert_distinct(&listed);
    let mut newest_first: Vec<String> = orders.iter().map(Uuid::to_string).collect();
    newest_first.reverse();
    assert_eq!(listed, newest_first);

    // Products, payments, shipments, notifications, reservations.
    for (path, key) in [
        ("/api/v1/products?", "id"),
        ("/api/v1/payments?", "id"),
        ("/api/v1/shipments?", "id"),
        ("/api/v1/notifications?", "id"),
        ("/api/v1/inventory/reservations?", "order_id"),
    ] {
        let keys = keys_by_cursor(api, path, key, 3).await;
        assert_distinct(&keys);
        assert!(keys.len() >= 5, "{path}: {}", keys.len());
    }

    // A deep offset is refused (read deeper pages with the cursor), and so
    // is a cursor that is not a key.
    for path in [
        "/api/v1/orders?offset=10001",
        "/api/v1/products?offset=10001",
        "/api/v1/payments?offset=10001",
        "/api/v1/orders?after=nope",
        "/api/v1/inventory?after=nope",
    ] {
        assert_eq!(api.get(path).await.status(), 400, "{path}");
    }
    assert_eq!(api.get("/api/v1/orders?offset=10000").await.status(), 200);
}
