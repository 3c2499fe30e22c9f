//! `agora loadgen` against a running instance: every order it places ends,
//! spread over the products it was told to use.

use crate::common::{assert_conserved, spawn_app};
use agora::loadgen::{generate, Args};

#[tokio::test]
async fn orders_spread_round_robin_over_the_products_and_all_complete() {
    let app = spawn_app().await;
    let args = Args {
        url: app.base.clone(),
        orders: 40,
        concurrency: 8,
        quantity: 2,
        products: 4,
        rate: None,
        timeout_secs: 60,
        server_pid: None,
        quiet: true,
        customers: 3,
        credentials: Default::default(),
    };

    let report = generate(&args).await.expect("the run finishes");
    app.settled().await;

    assert_eq!(report.completed, 40, "{report:?}");
    assert_eq!((report.errors, report.not_terminal), (0, 0));
    assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
    assert_eq!(report.products.len(), 4);
    // Its own customers placed the orders, each its share.
    let orders = app.get_json("/api/v1/orders?limit=500").await;
    let mut customers: Vec<&str> = orders["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["customer_id"].as_str().unwrap())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    assert_eq!(customers.len(), 3, "{customers:?}");
    for product in &report.products {
        let stock = app.stock(*product).await;
        // 10 orders of 2 units each, and exactly the stock they needed.
        assert_eq!(stock["sold"], 20, "{stock}");
        assert_eq!(stock["available"], 0, "{stock}");
        assert_conserved(&stock);
    }
}
