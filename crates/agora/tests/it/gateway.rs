//! The gateway's public answers when what is behind it fails: words, not
//! internal addresses or driver messages (those go to its log). Needs no
//! server: the upstreams are ports nothing listens on.

use crate::common::Api;
use agora::gateway::{GatewayApp, GatewayArgs};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// A port that was free a moment ago: connections to it are refused.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[track_caller]
fn assert_no_internals(body: &str) {
    for leak in [
        "127.0.0.1",
        "http://",
        "tcp",
        "os error",
        "Connection refused",
    ] {
        assert!(!body.contains(leak), "`{leak}` in {body}");
    }
}

#[tokio::test]
async fn an_unreachable_service_is_a_503_in_words_and_ready_names_no_address() {
    let dead = dead_url();
    let mut argv = vec![
        "gateway".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    for service in agora::services::names() {
        argv.push("--url".into());
        argv.push(format!("{service}={dead}"));
    }
    let args = Cli::parse_from(argv).gateway;
    let app = GatewayApp::build(args).await.unwrap();
    let api = Api::at(&format!("http://{}", app.local_addr()));
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let r = api.get("/api/v1/products").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("the catalog service is unavailable"),
        "{body}"
    );
    assert_no_internals(&body);

    // Without an operator's token (identity is down too: no token can be
    // had), it says only that it is not ready.
    let r = api.get("/ready").await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert_eq!(body, r#"{"status":"not ready"}"#);
}
