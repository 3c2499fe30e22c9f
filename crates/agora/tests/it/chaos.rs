//! The chaos switches at work on the real binary: the process dies at random
//! between committing events and acknowledging them, events are delivered
//! twice at random, payments are declined at random. It is restarted each
//! time it dies; at the end every order is terminal and the audit is clean.

use std::time::Duration;

use crate::common::{fresh_dir, order_body, root_api, start_binary, try_start_binary};

const CHAOS: [(&str, &str); 3] = [
    ("AGORA_CHAOS_CRASH_BEFORE_ACK_RATE", "0.02"),
    ("AGORA_CHAOS_DUPLICATE_RATE", "0.3"),
    ("AGORA_CHAOS_PAYMENT_DECLINE_RATE", "0.2"),
];

/// Starts the binary with chaos again, counting the starts that crash
/// before they listen (events left from before are handled at once).
async fn restart(dir: &std::path::Path, crashes: &mut u32) -> (tokio::process::Child, String) {
    loop {
        match try_start_binary(dir, &CHAOS).await {
            Some(started) => return started,
            None => *crashes += 1,
        }
        assert!(*crashes < 100, "{crashes} crashes: the binary cannot start");
    }
}

#[tokio::test]
async fn random_crashes_duplicates_and_declines_leave_no_order_behind() {
    let dir = fresh_dir();
    let mut crashes = 0;
    let (mut server, base) = restart(&dir, &mut crashes).await;
    let admin = root_api(&base).await;
    let product_id = admin.create_product(900, 10_000).await;
    // The customer's token outlives the crashes: the signing key is kept.
    let client = admin.customer("chaos").await.client;

    let (mut accepted, mut base) = (0, base);
    while accepted < 150 && crashes < 30 {
        let body = order_body(product_id, 1, "tok_visa");
        let answer = client
            .post(format!("{base}/api/v1/orders"))
            .json(&body)
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 201 => accepted += 1,
            _ => {
                // Refused or unreachable: has the process died?
                if let Ok(Some(_)) = server.try_wait() {
                    crashes += 1;
                    (server, base) = restart(&dir, &mut crashes).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if let Ok(Some(_)) = server.try_wait() {
            crashes += 1;
            (server, base) = restart(&dir, &mut crashes).await;
        }
    }
    server.start_kill().unwrap();
    server.wait().await.unwrap();

    // Without chaos, everything settles.
    let (_server, base) = start_binary(&dir, &[]).await;
    let api = admin.moved_to(&base);
    let ids = api.orders_of("chaos").await;
    assert!(
        ids.len() >= accepted,
        "{} orders listed, {accepted} accepted",
        ids.len()
    );
    for id in &ids {
        api.terminal(*id).await;
    }
    api.eventually(|| async {
        let stock = api.stock(product_id).await;
        stock["reserved"] == 0
    })
    .await;
    api.assert_audit_clean().await;
    eprintln!("{} orders, {crashes} crashes, audit clean", ids.len());
}

/// Consumer tasks that panic at random while holding a batch are started
/// again: every order still finishes, `/ready` counts the restarts, and
/// nothing is lost or applied twice.
#[tokio::test]
async fn consumers_that_panic_are_restarted_counted_and_lose_nothing() {
    let dir = fresh_dir();
    let (mut server, base) =
        start_binary(&dir, &[("AGORA_CHAOS_CONSUMER_PANIC_RATE", "0.2")]).await;
    let api = root_api(&base).await;
    let product = api.create_product(900, 100).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(api.place_order(&order_body(product, 1, "tok_visa")).await);
    }
    for id in &ids {
        assert_eq!(api.terminal(*id).await["status"], "COMPLETED");
    }
    // Between a panic and its restart a consumer is down and `/ready` says
    // so; once the queues are worked off, every consumer runs again.
    api.eventually(|| async {
        let queues = api.get_json("/api/v1/admin/queues").await;
        queues.as_array().unwrap().iter().all(|q| q["depth"] == 0)
    })
    .await;
    api.eventually(|| async { api.get("/ready").await.status() == 200 })
        .await;
    let ready = api.get_json("/ready").await;
    let restarts: u64 = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["component"].as_str().unwrap().starts_with("consumer "))
        .map(|c| c["restarts"].as_u64().unwrap())
        .sum();
    assert!(restarts > 0, "no consumer panicked: {ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(api.stock(product).await["sold"], 20);
    api.assert_audit_clean().await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}
