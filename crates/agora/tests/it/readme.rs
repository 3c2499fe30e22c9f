//! The README's walkthrough ("A full order with curl"), run as written
//! with bash, curl and sed against both modes: the embedded app, and a
//! fresh distributed deployment started by `deploy/run-local.sh` on empty
//! queues and databases. Only the address changes (a free port instead of
//! 8080). So the README cannot drift from what Agora does.

use std::path::PathBuf;
use std::process::Stdio;

use crate::common::{spawn_app_with, Api, ADMIN};
use agora_platform::amqp::{AmqpConfig, Broker};
use serde_json::Value;
use uuid::Uuid;

const KEYBOARD: &str = "00000000-0000-7000-8000-000000000001";
const MOUSE: &str = "00000000-0000-7000-8000-000000000002";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell blocks of the README's walkthrough, in order, as one script.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("## A full order with curl")
        .expect("the walkthrough section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut script = String::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("a closed block");
        script.push_str(&body[..close]);
        script.push('\n');
        rest = &body[close + 3..];
    }
    assert!(script.contains("ORDER="), "the walkthrough names its order");
    script
}

/// Runs the walkthrough against `base` and returns what it printed.
async fn run_walkthrough(base: &str) -> String {
    let script = walkthrough().replace("http://127.0.0.1:8080", base);
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the walkthrough failed: {}\n{printed}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
}

/// The demo shopper's orders, newest first.
async fn shoppers_orders(api: &Api) -> Vec<Uuid> {
    api.signed_in(("shopper@example.com", "demo-shopper-password"))
        .await
        .own_orders()
        .await
}

/// What the walkthrough says happens, checked through the API (`api` is an
/// admin's).
async fn assert_it_happened(api: &Api, printed: &str) {
    assert!(printed.contains("HTTP/1.1 201 Created"), "{printed}");
    assert!(printed.contains("\"status\":\"COMPLETED\""), "{printed}");
    // GraphQL: the page's stock, the order's payment and tracking number.
    assert!(printed.contains("\"stock\":{\"available\":"), "{printed}");
    assert!(
        printed.contains("\"payment\":{\"status\":\"CAPTURED\"}"),
        "{printed}"
    );
    assert!(printed.contains("\"trackingNumber\":\""), "{printed}");
    // Cancelling the completed order is refused; the cart is checked out.
    assert!(printed.contains("\"status\":409"), "{printed}");
    assert!(printed.contains("\"order_id\""), "{printed}");
    // One placed, one from the cart (created as the checkout's event arrives).
    assert!(printed.contains("\"role\":\"customer\""), "{printed}");
    api.eventually(|| async { shoppers_orders(api).await.len() == 2 })
        .await;
    let orders = shoppers_orders(api).await;
    for id in &orders {
        assert_eq!(api.terminal(*id).await["status"], "COMPLETED");
    }
    let placed = orders[1];
    let payments = api
        .list(&format!("/api/v1/payments?order_id={placed}"))
        .await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "CAPTURED");
    let shipments = api
        .list(&format!("/api/v1/shipments?order_id={placed}"))
        .await;
    assert!(shipments[0]["tracking_number"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    api.eventually(|| async {
        api.list(&format!("/api/v1/notifications?order_id={placed}"))
            .await
            .len()
            == 6
    })
    .await;
    let keyboard = api.get_json(&format!("/api/v1/inventory/{KEYBOARD}")).await;
    assert_eq!(
        (keyboard["available"].clone(), keyboard["sold"].clone()),
        (Value::from(98), Value::from(2))
    );
    api.eventually(|| async {
        api.get_json(&format!("/api/v1/inventory/{MOUSE}")).await["sold"] == 1
    })
    .await;
    api.assert_audit_clean().await;
}

#[tokio::test]
async fn the_walkthrough_works_as_written_on_the_embedded_mode() {
    let app = spawn_app_with(|_| {}).await;
    let printed = run_walkthrough(&app.base).await;
    assert_it_happened(&app, &printed).await;
}

/// A distributed deployment started by `deploy/run-local.sh` under its own
/// queue prefix and database names, removed afterwards (also when the test
/// fails).
struct LocalDeployment {
    run_dir: PathBuf,
    prefix: String,
    amqp_url: String,
    databases: Vec<String>,
}

impl LocalDeployment {
    fn script(&self, command: &str, envs: &[(&str, String)]) -> bool {
        std::process::Command::new("bash")
            .arg(repo().join("deploy/run-local.sh"))
            .arg(command)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUN_DIR", &self.run_dir)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for LocalDeployment {
    fn drop(&mut self) {
        self.script("stop", &[]);
        let mut config = AmqpConfig::new(&self.amqp_url);
        config.prefix = self.prefix.clone();
        let (broker, databases) = (Broker::new(config), self.databases.clone());
        agora_testing::block_on_aside(async move {
            let services: Vec<&str> = agora::services::names();
            let _ = broker.delete_topology(&services).await;
            for db in databases {
                let _ = agora_platform::db::drop_postgres_database(&db).await;
            }
        });
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn the_walkthrough_works_as_written_on_a_fresh_distributed_start() {
    let _servers = crate::common::cluster::share_servers().await;
    let (db_url, amqp_url) = crate::common::cluster::servers();
    let (server, _) = db_url.rsplit_once('/').unwrap();
    let run = Uuid::now_v7().simple().to_string();
    let tag = &run[run.len() - 10..];
    let db_prefix = format!("walk_{tag}_");
    let deployment = LocalDeployment {
        run_dir: std::env::temp_dir().join(format!("agora-walk-{tag}")),
        prefix: format!("walk{tag}."),
        amqp_url: amqp_url.clone(),
        databases: agora::services::names()
            .iter()
            .map(|s| format!("{server}/{db_prefix}{s}"))
            .collect(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = deployment.script(
        "start",
        &[
            ("AGORA_BIN", env!("CARGO_BIN_EXE_agora").to_owned()),
            ("PG_URL", server.to_owned()),
            ("AMQP_URL", amqp_url),
            ("AGORA_AMQP_PREFIX", deployment.prefix.clone()),
            ("DB_PREFIX", db_prefix),
            ("AGORA_LISTEN", format!("127.0.0.1:{port}")),
            ("RUST_LOG", "warn".to_owned()),
        ],
    );
    assert!(
        started,
        "deploy/run-local.sh start failed (logs in {})",
        deployment.run_dir.display()
    );
    let api = Api::at(&format!("http://127.0.0.1:{port}"))
        .signed_in(ADMIN)
        .await;

    // Straight after the start, as a new user would: the demo catalog's
    // stock is there (it used to be lost), and the walkthrough works.
    let printed = run_walkthrough(&api.base).await;
    assert_it_happened(&api, &printed).await;
    drop(deployment);
}
