//! The limits every listener has (embedded here; the service and gateway
//! listeners are the same code): a header-read timeout, a request
//! timeout, a cap on requests in flight that sheds load with 503, a
//! per-client rate limit, and a cap on clients waiting for orders.

use std::time::{Duration, Instant};

use crate::common::{order_body, spawn_app_with};
use agora_platform::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(tweak: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    tweak(&mut limits);
    limits
}

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_that_sends_its_request_head_too_slowly_is_dropped() {
    let app =
        spawn_app_with(|c| c.limits = limits(|l| l.header_read_timeout = Duration::from_secs(1)))
            .await;
    let mut slow = TcpStream::connect(address(&app.base)).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    // The head never ends: the server closes the connection after the
    // timeout (a 408, or at once), instead of holding it forever.
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection is still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A well-behaved client is served meanwhile.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_a_503_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.paused_consumers = vec!["inventory".into()];
        c.settings.stock_check = false;
        c.limits = limits(|l| l.request_timeout = Duration::from_secs(1));
    })
    .await;
    let product = app.new_product(1_000, "EUR", 5).await;
    // Inventory never hears of the product: the order stays PENDING.
    let body = order_body(product, 1, "tok_visa");
    let r = app.post_json("/api/v1/orders", &body).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let started = Instant::now();
    let r = app.get(&format!("/api/v1/orders/{id}?wait_ms=5000")).await;

    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn past_the_cap_on_requests_in_flight_a_request_is_shed_at_once() {
    let app = spawn_app_with(|c| {
        c.paused_consumers = vec!["inventory".into()];
        c.settings.stock_check = false;
        c.limits = limits(|l| l.max_concurrent_requests = 2);
    })
    .await;
    let product = app.new_product(1_000, "EUR", 5).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    let wait = format!(
        "GET /api/v1/orders/{id}?wait_ms=20000 HTTP/1.1\r\nHost: x\r\n{}\r\n",
        app.authorization_line()
    );

    // Two clients hold both slots, waiting on an order that stays PENDING.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(address(&app.base)).await.unwrap();
        c.write_all(wait.as_bytes()).await.unwrap();
        holders.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = app.get("/health").await;
    assert_eq!(r.status(), 503, "shed, not queued");
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(1));

    // The holders go away: their requests end with their connections, and
    // the slots are free again at once (not after their 20 s wait).
    drop(holders);
    let freed = Instant::now();
    app.eventually(|| async { app.get("/health").await.status() == 200 })
        .await;
    assert!(freed.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_to_slow_down() {
    let app = spawn_app_with(|c| c.limits = limits(|l| l.requests_per_second_per_client = 5)).await;
    let mut refused = None;
    for _ in 0..20 {
        let r = app.get("/health").await;
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let r = refused.expect("20 requests at once exceed 5 per second");
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.get("/health").await.status(), 200, "the rate refills");
}

/// Many more clients wait than the cap allows: those past it are answered
/// at once, and the saga goes on at its pace meanwhile (waiters hold no
/// storage connection).
#[tokio::test]
async fn more_waiters_than_the_cap_leave_the_saga_its_pace() {
    // Shipping is paused: every order stops at PAID, so waiters would wait.
    let app = std::sync::Arc::new(
        spawn_app_with(|c| {
            c.settings.max_waiters = 10;
            c.paused_consumers = vec!["shipping".into()];
        })
        .await,
    );
    let product = app.create_product(100, 1_000).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(app.place_order(&order_body(product, 1, "tok_visa")).await);
    }
    let started = Instant::now();
    let waiters: Vec<_> = (0..200)
        .map(|i| {
            let (app, id) = (app.clone(), ids[i % ids.len()]);
            tokio::spawn(async move {
                let asked = Instant::now();
                app.get_json(&format!("/api/v1/orders/{id}?wait_ms=3000"))
                    .await;
                asked.elapsed()
            })
        })
        .collect();
    // Meanwhile every order is reserved and paid, as fast as without them.
    for id in &ids {
        app.reaches(*id, "PAID").await;
    }
    let paid_after = started.elapsed();
    let mut quick = 0;
    for waiter in waiters {
        quick += usize::from(waiter.await.unwrap() < Duration::from_millis(1_000));
    }
    assert_eq!(quick, 190, "all but the 10 admitted are answered at once");
    assert!(
        paid_after < Duration::from_secs(10),
        "40 orders paid after {paid_after:?}"
    );
}

#[tokio::test]
async fn one_client_cannot_hold_every_slot() {
    let app = spawn_app_with(|c| {
        c.paused_consumers = vec!["inventory".into()];
        c.settings.stock_check = false;
        c.limits = limits(|l| l.max_concurrent_per_client = 2);
    })
    .await;
    let product = app.new_product(1_000, "EUR", 5).await;
    let id = app.place_order(&order_body(product, 1, "tok_visa")).await;
    let wait = format!(
        "GET /api/v1/orders/{id}?wait_ms=20000 HTTP/1.1\r\nHost: x\r\n{}\r\n",
        app.authorization_line()
    );
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(address(&app.base)).await.unwrap();
        c.write_all(wait.as_bytes()).await.unwrap();
        holders.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let r = app.get("/health").await;

    assert_eq!(r.status(), 429, "a third request from the same client");
    assert_eq!(r.headers()["retry-after"], "1");
    drop(holders);
    app.eventually(|| async { app.get("/health").await.status() == 200 })
        .await;
}
