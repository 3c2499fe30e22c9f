//! `agora loadgen` against a running instance: every order it places ends,
//! spread over the products it was told to use; its report is a page that
//! stands alone; it rides through a `kill -9` and restart of the server
//! without losing or doubling an order, and through tokens that expire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    assert_conserved, fresh_dir, root_api, spawn_app, spawn_app_with, start_binary_on,
};
use agora::credentials::Credentials;
use agora::loadgen::{generate, Args};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A run of `orders` against `url`, quiet, with no report.
fn args(url: &str, orders: u64, concurrency: u64) -> Args {
    Args {
        url: url.to_owned(),
        orders,
        concurrency,
        quantity: 1,
        products: 1,
        rate: None,
        timeout_secs: 120,
        server_pid: None,
        quiet: true,
        customers: 4,
        report: None,
        credentials: Credentials::default(),
    }
}

#[tokio::test]
async fn orders_spread_round_robin_over_the_products_and_all_complete() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("run.html");
    let args = Args {
        quantity: 2,
        products: 4,
        timeout_secs: 60,
        customers: 3,
        report: Some(page.clone()),
        ..args(&app.base, 40, 8)
    };

    let report = generate(&args).await.expect("the run finishes");
    app.settled().await;

    assert_eq!(report.completed, 40, "{report:?}");
    assert_eq!((report.errors, report.not_terminal), (0, 0));
    assert_eq!((report.accepted, report.retries), (40, 0));
    assert!(report.p50_ms <= report.p90_ms && report.p90_ms <= report.p99_ms);
    assert!(report.p99_ms <= report.max_ms);
    assert_eq!(report.products.len(), 4);
    // The seconds add up to the run.
    let completed: u64 = report.seconds.iter().map(|s| s.completed).sum();
    let accepted: u64 = report.seconds.iter().map(|s| s.accepted).sum();
    assert_eq!((completed, accepted), (40, 40), "{:?}", report.seconds);
    let length: f64 = report.seconds.iter().map(|s| s.secs).sum();
    assert!((length - report.elapsed_secs).abs() < 1e-6, "{report:?}");
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
    // The report: a page with the figures and its charts inline, and
    // nothing it would fetch or run.
    let html = std::fs::read_to_string(&page).expect("the report is written");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.200}");
    assert!(html.matches("<svg").count() >= 2, "{html}");
    assert!(
        html.contains("<polyline") || html.contains("<path"),
        "a chart draws lines"
    );
    assert!(html.contains("completed</dt><dd>40</dd>"), "{html}");
    assert!(html.contains(&report.products[0].to_string()));
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    for attribute in ["src=", "href=", "@import", "url("] {
        assert!(!lower.contains(attribute), "{attribute} in {html}");
    }
    let elsewhere = lower.replace(&app.base, "");
    assert!(
        !elsewhere.contains("http://") && !elsewhere.contains("https://"),
        "no address but the server's URL, as text: {html}"
    );
}

#[tokio::test]
async fn an_svg_report_is_one_image_of_every_chart() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("run.svg");
    let args = Args {
        report: Some(image.clone()),
        ..args(&app.base, 10, 4)
    };

    let report = generate(&args).await.expect("the run finishes");

    assert_eq!(report.completed, 10, "{report:?}");
    let svg = std::fs::read_to_string(&image).expect("the report is written");
    assert!(svg.starts_with("<svg"), "{svg:.200}");
    assert_eq!(svg.matches("<svg").count(), 1);
    for title in [
        "Completed orders",
        "p50, p90, p99",
        "Retries and failed orders",
    ] {
        assert!(svg.contains(title), "{title} missing: {svg}");
    }
    assert!(svg.contains("10 orders: 10 completed"), "{svg}");
    assert!(!svg.to_lowercase().contains("<script"));
}

#[tokio::test]
async fn a_report_of_unknown_kind_is_refused_before_the_run() {
    // Nothing listens there: the refusal must come before any request.
    let args = Args {
        report: Some("run.pdf".into()),
        ..args(&format!("http://127.0.0.1:{}", free_port()), 10, 4)
    };

    let refused = generate(&args).await.expect_err("refused");

    assert!(refused.to_string().contains(".html"), "{refused}");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_kill_dash_nine_mid_run_is_ridden_through_and_no_order_is_lost_or_doubled() {
    // The real binary on a fixed port, so that after a restart it is at the
    // same URL; a fresh data directory without demo data: every order on it
    // is the run's.
    let dir = fresh_dir();
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut server, base) = start_binary_on(&dir, &listen, &[]).await;
    let admin = root_api(&base).await;
    let reports = tempfile::tempdir().unwrap();
    let page = reports.path().join("outage.html");
    let args = Args {
        report: Some(page.clone()),
        credentials: Credentials {
            token: admin.token.clone(),
            email: None,
        },
        ..args(&base, 400, 16)
    };
    let run = tokio::spawn(async move { generate(&args).await });

    // kill -9 once orders are completing, and restart on the same data a
    // second later.
    admin
        .eventually(|| async {
            admin
                .get_json("/api/v1/orders?status=COMPLETED&limit=500")
                .await["items"]
                .as_array()
                .unwrap()
                .len()
                >= 40
        })
        .await;
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_server, restarted) = start_binary_on(&dir, &listen, &[]).await;
    assert_eq!(restarted, base);
    let report = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the run ends by its deadline")
        .unwrap()
        .expect("the run finishes");

    // Every order counted, as completed; the outage cost retries only.
    assert_eq!(
        (report.completed, report.errors, report.not_terminal),
        (400, 0, 0),
        "{report:?}"
    );
    assert_eq!((report.accepted, report.cancelled_or_rejected), (400, 0));
    assert!(report.retries > 0, "{report:?}");
    // The tokens signed before the crash still verify after it.
    assert_eq!(report.signed_in_again, 0, "{report:?}");
    let per_second: u64 = report.seconds.iter().map(|s| s.retries).sum();
    assert_eq!(per_second, report.retries, "{:?}", report.seconds);
    // Exactly the run's 400 orders exist: no retried POST made another.
    let page_of_orders = admin.get_json("/api/v1/orders?limit=500").await;
    let mut ids: Vec<&str> = page_of_orders["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 400, "{page_of_orders}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 400);
    let product = report.products[0];
    admin
        .eventually(|| async {
            let stock = admin.stock(product).await;
            stock["reserved"] == 0 && stock["sold"] == 400
        })
        .await;
    let stock: Value = admin.stock(product).await;
    assert_eq!(stock["available"], 0, "{stock}");
    assert_conserved(&stock);
    admin.assert_audit_clean().await;
    let html = std::fs::read_to_string(&page).expect("the report is written");
    assert!(html.contains(&format!("retries</dt><dd>{}</dd>", report.retries)));
}

/// A TCP proxy to `upstream` that loses the answer to every `nth`
/// `POST /api/v1/orders`: the server carried the request out, the client
/// sees its connection close before any answer. Its URL, and how many
/// answers it lost so far.
async fn losing_every_nth_order_answer(
    upstream: std::net::SocketAddr,
    nth: usize,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (posts, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (posts.clone(), lost.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (posts, lost) = counters.clone();
            tokio::spawn(async move {
                let _ = relay(client, upstream, nth, &posts, &lost).await;
            });
        }
    });
    (url, lost)
}

/// One connection through the proxy: requests go up as they come (one at
/// a time, as HTTP/1.1 clients send them), answers come back but the ones
/// to lose, which close the connection instead.
async fn relay(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    nth: usize,
    posts: &AtomicUsize,
    lost: &AtomicUsize,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut lose_the_answer = false;
    loop {
        tokio::select! {
            read = from_client.read(&mut up) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                if up[..n].starts_with(b"POST /api/v1/orders ") {
                    lose_the_answer = (posts.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(nth);
                }
                to_server.write_all(&up[..n]).await?;
            }
            read = from_server.read(&mut down) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                if lose_the_answer {
                    lost.fetch_add(1, Ordering::SeqCst);
                    return Ok(()); // both connections close
                }
                to_client.write_all(&down[..n]).await?;
            }
        }
    }
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_retried_with_its_key_and_makes_one_order() {
    let app = spawn_app().await;
    let upstream = app.base.trim_start_matches("http://").parse().unwrap();
    let (url, lost) = losing_every_nth_order_answer(upstream, 5).await;
    let args = Args {
        // The products are made, and the customers registered, through the
        // proxy too: only the orders' answers are lost.
        ..args(&url, 60, 4)
    };

    let report = generate(&args).await.expect("the run finishes");
    app.settled().await;

    let lost = lost.load(Ordering::SeqCst) as u64;
    assert!(lost >= 10, "{lost} answers lost");
    assert_eq!(
        (report.completed, report.errors, report.not_terminal),
        (60, 0, 0),
        "{report:?}"
    );
    assert!(report.retries >= lost, "{report:?}");
    // The server made each order once (a fresh app has no orders of its
    // own), and sold exactly the stock made for them.
    let orders = app.get_json("/api/v1/orders?limit=500").await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 60, "{orders}");
    let stock = app.stock(report.products[0]).await;
    assert_eq!(
        (stock["sold"].as_i64(), stock["available"].as_i64()),
        (Some(60), Some(0)),
        "{stock}"
    );
}

#[tokio::test]
async fn a_customer_whose_token_expired_signs_in_again_and_its_orders_go_on() {
    // Tokens valid for a second (and the verifier's few seconds of
    // leeway); the run lasts longer, paced.
    let app =
        spawn_app_with(|config| config.settings.access_token_ttl = Duration::from_secs(1)).await;
    let args = Args {
        rate: Some(4.0),
        customers: 2,
        ..args(&app.base, 40, 4)
    };

    let report = generate(&args).await.expect("the run finishes");

    assert_eq!(
        (report.completed, report.errors, report.not_terminal),
        (40, 0, 0),
        "{report:?}"
    );
    assert!(report.signed_in_again >= 1, "{report:?}");
    assert!(report.retries >= report.signed_in_again, "{report:?}");
}
