//! Test helpers: one way to spawn an app on port 0 with fresh storage, and
//! small clients for the calls the specifications make.
#![allow(dead_code)]

pub mod bad_input;
pub mod checkout;
pub mod cluster;
pub mod outage;
pub mod paging;
pub mod traces;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora::credentials::{authorized, sign_in};
use agora::{Application, Config};
use agora_testing::DataDir;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The public API of a running Agora (embedded app or distributed gateway),
/// as one caller: its `client` sends that caller's token (if any) with every
/// request. A test app's is the admin's; [`Api::customer`] gives a
/// customer's, [`Api::anonymous`] nobody's.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    /// The caller's access token (for requests written by hand).
    pub token: Option<String>,
    /// The customers made so far, by the name a test calls them: their
    /// account id and token (shared by the clones of one Api).
    customers: Arc<Mutex<HashMap<String, (String, String)>>>,
}

/// The demo admin, seeded with the demo catalog.
pub const ADMIN: (&str, &str) = ("admin@example.com", "demo-admin-password");
/// The admin `start_binary` makes with `agora users create` (`--no-seed`).
pub const ROOT: (&str, &str) = ("root@example.test", "a long root password");
/// Every customer a test makes signs in with this.
const CUSTOMER_PASSWORD: &str = "a customer password";

pub struct TestApp {
    api: Api,
    pub data_dir: DataDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    pub bus: std::sync::Arc<agora_platform::bus::EmbeddedBus>,
    /// Each service's storage (what a request costs it is counted there).
    pub dbs: Vec<agora::app::ServiceDb>,
}

/// A fresh data directory, removed when the test ends (pass or fail).
pub fn fresh_dir() -> DataDir {
    agora_testing::data_dir()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns an app on port 0 with a fresh data directory, adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(fresh_dir(), tweak).await
}

/// Spawns an app on an existing data directory (a restart).
pub async fn spawn_app_on(data_dir: DataDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    traces::install();
    let mut config = Config::new("127.0.0.1:0", data_dir.to_path_buf());
    config.retry.base_delay = Duration::from_millis(20);
    tweak(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let bus = app.bus.clone();
    let dbs = app.dbs.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let api = Api::at(&base).signed_in(ADMIN).await;
    TestApp {
        api,
        data_dir,
        stop: Some(stop),
        server: Some(server),
        bus,
        dbs,
    }
}

pub fn address() -> Value {
    json!({ "name": "Ada Lovelace", "line1": "1 Analytical St", "city": "Berlin", "postal_code": "10115", "country": "DE" })
}

/// An order of `quantity` units; its customer is whoever places it.
pub fn order_body(product_id: Uuid, quantity: i64, token: &str) -> Value {
    json!({
        "email": "ada@example.com",
        "phone": "+4930123456",
        "items": [{ "product_id": product_id, "quantity": quantity }],
        "shipping_address": address(),
        "payment_token": token,
    })
}

impl TestApp {
    /// Stops gracefully and waits until everything is closed.
    /// Returns its data directory, for a restart on it.
    pub async fn stop(mut self) -> DataDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.data_dir.clone()
    }

    /// Waits until `service` has `count` dead letters.
    pub async fn dead_lettered(&self, service: &str, count: usize) {
        let path = format!("/api/v1/admin/dead-letters?service={service}");
        self.eventually(|| async { self.list(&path).await.len() == count })
            .await;
    }

    /// Waits until `service`'s queue is empty (the others may be paused).
    pub async fn drained(&self, service: &str) {
        self.eventually(|| async {
            let queues: Vec<Value> = self.list("/api/v1/admin/queues").await;
            queues
                .iter()
                .all(|q| q["service"] != service || q["depth"] == 0)
        })
        .await;
    }

    /// Waits until every queue is empty: all published events are handled.
    pub async fn settled(&self) {
        self.eventually(|| async {
            let queues: Vec<Value> = self.list("/api/v1/admin/queues").await;
            queues.iter().all(|q| q["depth"] == 0)
        })
        .await;
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    /// The API of the process listening at `base` (`http://host:port`), as
    /// an anonymous caller.
    pub fn at(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            token: None,
            customers: Arc::default(),
        }
    }

    /// The same API as the caller of `token`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            client: authorized(reqwest::Client::builder(), token).unwrap(),
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// `Authorization: Bearer …\r\n` for a request written by hand (none for
    /// an anonymous caller).
    pub fn authorization_line(&self) -> String {
        self.token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default()
    }

    /// The same caller (and customers) at `base`: the process restarted on
    /// another port, its data (and signing key) kept.
    pub fn moved_to(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// The same API as nobody.
    pub fn anonymous(&self) -> Api {
        Api {
            client: reqwest::Client::new(),
            token: None,
            ..self.clone()
        }
    }

    /// The same API as the account of `(email, password)`.
    pub async fn signed_in(&self, (email, password): (&str, &str)) -> Api {
        let token = self.token_of(email, password).await;
        self.with_token(&token)
    }

    pub async fn token_of(&self, email: &str, password: &str) -> String {
        sign_in(&reqwest::Client::new(), &self.base, email, password)
            .await
            .unwrap()
    }

    /// The same API as the customer a test calls `name` (registered the
    /// first time it is named).
    pub async fn customer(&self, name: &str) -> Api {
        let (_, token) = self.customer_account(name).await;
        self.with_token(&token)
    }

    /// The customer id (the account id) of the customer called `name`.
    /// The id of the account this API signs in as.
    pub async fn own_id(&self) -> String {
        let me = self.get_json("/api/v1/me").await;
        me["id"].as_str().expect("an account id").to_owned()
    }

    pub async fn customer_id(&self, name: &str) -> String {
        self.customer_account(name).await.0
    }

    async fn customer_account(&self, name: &str) -> (String, String) {
        if let Some(known) = self.customers.lock().unwrap().get(name) {
            return known.clone();
        }
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        let email = format!("c-{hex}-{}@example.test", Uuid::now_v7().simple());
        let r = self
            .anonymous()
            .post_json(
                "/api/v1/auth/register",
                &json!({ "email": email, "password": CUSTOMER_PASSWORD, "name": "Test customer" }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = self.token_of(&email, CUSTOMER_PASSWORD).await;
        let account = (id, token);
        self.customers
            .lock()
            .unwrap()
            .insert(name.to_owned(), account.clone());
        account
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `agora audit` against this instance: fails the test naming every
    /// violated invariant.
    pub async fn assert_audit_clean(&self) {
        let report = agora::audit::audit(&self.client, &self.base, 120)
            .await
            .expect("the audit runs");
        assert!(
            report.violations.is_empty(),
            "audit violations: {:#?}",
            report.violations
        );
    }

    /// The ids of every order of the customer called `customer` (up to 500),
    /// newest first (as an operator sees them).
    pub async fn orders_of(&self, customer: &str) -> Vec<Uuid> {
        let id = self.customer_id(customer).await;
        self.order_ids(&format!("/api/v1/orders?customer_id={id}&limit=500"))
            .await
    }

    /// The ids of the orders the caller may see (up to 500), newest first:
    /// a customer's own.
    pub async fn own_orders(&self) -> Vec<Uuid> {
        self.order_ids("/api/v1/orders?limit=500").await
    }

    async fn order_ids(&self, path: &str) -> Vec<Uuid> {
        let page = self.get_json(path).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// POSTs with an `Idempotency-Key`: (status, body, replayed?).
    pub async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> (u16, Value, bool) {
        let r = self
            .client
            .post(self.url(path))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        (r.status().as_u16(), r.json().await.unwrap(), replayed)
    }

    /// Creates a product with `stock` units and waits until inventory knows it.
    pub async fn create_product(&self, price: i64, stock: i64) -> Uuid {
        self.create_product_in(price, "EUR", stock).await
    }

    /// Creates a product in the catalog only (inventory hears of it later).
    pub async fn new_product(&self, price: i64, currency: &str, stock: i64) -> Uuid {
        let sku = format!("T-{}", Uuid::now_v7().simple()).to_uppercase();
        let r = self
            .post_json(
                "/api/v1/products",
                &json!({ "name": "Test product", "sku": sku, "price": { "amount": price, "currency": currency }, "initial_stock": stock }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// [`Api::create_product`] priced in `currency`.
    pub async fn create_product_in(&self, price: i64, currency: &str, stock: i64) -> Uuid {
        let id = self.new_product(price, currency, stock).await;
        self.eventually(|| async {
            self.get(&format!("/api/v1/inventory/{id}")).await.status() == 200
        })
        .await;
        id
    }

    pub async fn place_order(&self, body: &Value) -> Uuid {
        let r = self.post_json("/api/v1/orders", body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Places an order that the fast stock check may refuse: `None` for a
    /// 409 naming a line's quantity, the id for a 201.
    pub async fn try_order(&self, body: &Value) -> Option<Uuid> {
        let r = self.post_json("/api/v1/orders", body).await;
        match r.status().as_u16() {
            201 => Some(
                r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            ),
            409 => {
                let problem: Value = r.json().await.unwrap();
                assert!(
                    problem["errors"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains("in stock"),
                    "{problem}"
                );
                None
            }
            other => panic!("POST /orders answered {other}: {}", r.text().await.unwrap()),
        }
    }

    /// The terminal status of an order the stock check let in, or
    /// `REFUSED` for one it turned away.
    pub async fn outcome(&self, body: &Value) -> String {
        match self.try_order(body).await {
            Some(id) => self.terminal(id).await["status"]
                .as_str()
                .unwrap()
                .to_owned(),
            None => "REFUSED".to_owned(),
        }
    }

    pub async fn order(&self, id: Uuid) -> Value {
        self.get_json(&format!("/api/v1/orders/{id}")).await
    }

    /// The order once it reaches a terminal state (fails after 60 s).
    pub async fn terminal(&self, id: Uuid) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let order = self
                .get_json(&format!("/api/v1/orders/{id}?wait_ms=2000"))
                .await;
            let status = order["status"].as_str().unwrap();
            if matches!(status, "COMPLETED" | "CANCELLED" | "REJECTED") {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} stuck in {status}"
            );
        }
    }

    /// Waits until the order has `status` (fails after 60 s).
    pub async fn reaches(&self, id: Uuid, status: &str) -> Value {
        self.eventually(|| async { self.order(id).await["status"] == status })
            .await;
        self.order(id).await
    }

    pub async fn stock(&self, product_id: Uuid) -> Value {
        self.get_json(&format!("/api/v1/inventory/{product_id}"))
            .await
    }

    pub async fn list(&self, path: &str) -> Vec<Value> {
        self.get_json(path).await.as_array().unwrap().clone()
    }

    /// Polls `check` until it holds (fails after 60 s).
    pub async fn eventually<F, Fut>(&self, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Stock is conserved: every unit is available, reserved or sold.
pub fn assert_conserved(stock: &Value) {
    let total = |k: &str| stock[k].as_i64().unwrap();
    assert_eq!(
        total("initial") + total("adjusted"),
        total("available") + total("reserved") + total("sold"),
        "stock not conserved: {stock}"
    );
}

/// The API of a binary started by [`start_binary`], as its admin ([`ROOT`]).
pub async fn root_api(base: &str) -> Api {
    Api::at(base).signed_in(ROOT).await
}

/// Starts `agora run` (the real binary) on `dir` with extra environment, and
/// returns the process and its base URL. Its data has no demo accounts
/// (`--no-seed`): its admin is [`ROOT`], made with `agora users create`.
pub async fn start_binary(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    try_start_binary(dir, envs)
        .await
        .expect("agora exited early")
}

/// [`start_binary`] listening on `listen` (`127.0.0.1:PORT`): a restart on
/// the same port is at the same URL, as its clients know it.
pub async fn start_binary_on(
    dir: &std::path::Path,
    listen: &str,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    try_start_binary_on(dir, listen, envs)
        .await
        .expect("agora exited early")
}

/// [`start_binary`], or `None` if the process exits before it listens (a
/// chaos crash can come while it works off the events left from before).
#[allow(dead_code)] // not every test binary restarts a crashing process
pub async fn try_start_binary(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> Option<(tokio::process::Child, String)> {
    try_start_binary_on(dir, "127.0.0.1:0", envs).await
}

/// [`try_start_binary`] listening on `listen`.
pub async fn try_start_binary_on(
    dir: &std::path::Path,
    listen: &str,
    envs: &[(&str, &str)],
) -> Option<(tokio::process::Child, String)> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let made = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "users",
            "create",
            "--email",
            ROOT.0,
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir)
        .env("AGORA_PASSWORD", ROOT.1)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("agora users create runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .args(["run", "--listen", listen, "--no-seed", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the agora binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("agora prints its address")
            .unwrap()?;
        if let Some(url) = line.strip_prefix("agora listening on ") {
            break url.trim().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, base))
}
