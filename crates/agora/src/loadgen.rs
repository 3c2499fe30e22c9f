//! `agora loadgen`: pushes orders through a running Agora (embedded or the
//! distributed gateway) and reports completed orders per second and the time
//! from `POST /orders` to a terminal state.
//!
//! It makes its products as an admin ([`Credentials`]), then registers its
//! own customers (`--customers`), who place the orders, each with its own
//! token, as shoppers would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::credentials::{authorized, sign_in, Credentials};
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Base URL of the running instance.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How many orders to place.
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// Orders in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u64,
    /// Units per order.
    #[arg(long, default_value_t = 1)]
    pub quantity: u32,
    /// Products the orders are spread over (round robin). One product puts
    /// every reservation on one stock row, the worst case for contention.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub products: u64,
    /// Offered load in orders per second (default: as fast as the
    /// concurrency allows).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Give up on the run after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Report the peak RSS of this process (Linux), e.g. the server's pid.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Customers it registers to place the orders (round robin).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub customers: u64,
    /// An admin's credentials, to make the products.
    #[command(flatten)]
    pub credentials: Credentials,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub orders: u64,
    pub completed: u64,
    pub cancelled_or_rejected: u64,
    pub not_terminal: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub completed_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_peak_rss_mb: Option<f64>,
    /// The products the run created and ordered.
    pub products: Vec<uuid::Uuid>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = generate(&args).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "{} orders: {} completed in {:.2}s = {:.0} completed orders/s; POST->terminal p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
        report.orders,
        report.completed,
        report.elapsed_secs,
        report.completed_per_sec,
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        report
            .server_peak_rss_mb
            .map(|mb| format!("; server peak RSS {mb:.1} MB"))
            .unwrap_or_default()
    );
    if report.errors > 0 || report.not_terminal > 0 {
        anyhow::bail!(
            "{} errors, {} orders not terminal",
            report.errors,
            report.not_terminal
        );
    }
    Ok(())
}

pub async fn generate(args: &Args) -> anyhow::Result<Report> {
    let builder = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency as usize)
            .timeout(Duration::from_secs(60))
    };
    let base = args.url.trim_end_matches('/').to_owned();
    let admin = authorized(builder(), &args.credentials.token(&base).await?)?;
    let count = args.products.max(1);
    let stock = args.orders.div_ceil(count) * u64::from(args.quantity);
    let mut products = Vec::new();
    for _ in 0..count {
        products.push(create_product(&admin, &base, stock).await?);
    }
    let products = Arc::new(products);
    let mut customers = Vec::new();
    for i in 0..args.customers {
        let token = register_customer(&admin, &base, i).await?;
        customers.push(authorized(builder(), &token)?);
    }
    let customers = Arc::new(customers);

    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.orders as usize)));
    let counts = Arc::new(Counts::default());
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.orders)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} orders, {per_sec}, eta {eta}",
        )
        .expect("a valid template"),
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    // An optional pacer: each order waits for its tick, so the offered load
    // is the rate, not whatever the concurrency can push.
    let pacer = args.rate.filter(|r| *r > 0.0).map(|rate| {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Arc::new(Mutex::new(ticks))
    });
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (customers, base, next, latencies, counts, bar, pacer, products) = (
            customers.clone(),
            base.clone(),
            next.clone(),
            latencies.clone(),
            counts.clone(),
            bar.clone(),
            pacer.clone(),
            products.clone(),
        );
        let (total, quantity) = (args.orders, args.quantity);
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() > deadline {
                    break;
                }
                if let Some(pacer) = &pacer {
                    pacer.lock().await.tick().await;
                }
                let t0 = Instant::now();
                let product_id = products[(n % products.len() as u64) as usize];
                let client = &customers[(n % customers.len() as u64) as usize];
                match one_order(client, &base, product_id, quantity, n, deadline).await {
                    Ok(status) => {
                        latencies.lock().await.push(t0.elapsed());
                        counts.record(&status);
                    }
                    Err(e) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "order failed");
                    }
                }
                bar.inc(1);
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut latencies = Arc::try_unwrap(latencies)
        .expect("workers are done")
        .into_inner();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let completed = counts.completed.load(Ordering::Relaxed);
    Ok(Report {
        orders: args.orders,
        completed,
        cancelled_or_rejected: counts.ended.load(Ordering::Relaxed),
        not_terminal: counts.open.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        completed_per_sec: completed as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        server_peak_rss_mb: args.server_pid.and_then(peak_rss_mb),
        products: products.to_vec(),
    })
}

#[derive(Default)]
struct Counts {
    completed: AtomicU64,
    ended: AtomicU64,
    open: AtomicU64,
    errors: AtomicU64,
}

impl Counts {
    fn record(&self, status: &str) {
        let counter = match status {
            "COMPLETED" => &self.completed,
            "CANCELLED" | "REJECTED" => &self.ended,
            _ => &self.open,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Registers a customer of this run and signs it in: its token.
async fn register_customer(client: &reqwest::Client, base: &str, i: u64) -> anyhow::Result<String> {
    let email = format!("load-{}-{i}@loadgen.example", uuid::Uuid::now_v7().simple());
    let password = format!("loadgen-{}", uuid::Uuid::now_v7().simple());
    let response = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(
            &json!({ "email": email, "password": password, "name": format!("Load customer {i}") }),
        )
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "registering a load customer: {}",
        response.text().await?
    );
    sign_in(client, base, &email, &password).await
}

/// A product with `stock` units: enough for its share of the run, so every
/// order can complete.
async fn create_product(
    client: &reqwest::Client,
    base: &str,
    stock: u64,
) -> anyhow::Result<uuid::Uuid> {
    let sku = format!("LOAD-{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let response = client
        .post(format!("{base}/api/v1/products"))
        .json(&json!({
            "name": "Load test item",
            "sku": sku,
            "price": { "amount": 100, "currency": "EUR" },
            "initial_stock": stock,
        }))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "creating the load product: {}",
        response.text().await?
    );
    let product: Value = response.json().await?;
    let id: uuid::Uuid = product["id"].as_str().context("product id")?.parse()?;
    // Stock arrives at inventory through ProductCreated.
    for _ in 0..200 {
        let r = client
            .get(format!("{base}/api/v1/inventory/{id}"))
            .send()
            .await?;
        if r.status().is_success() {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("inventory never learned about product {id}")
}

async fn one_order(
    client: &reqwest::Client,
    base: &str,
    product_id: uuid::Uuid,
    quantity: u32,
    n: u64,
    deadline: Instant,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/v1/orders"))
        .json(&json!({
            "email": format!("load{n}@example.com"),
            "items": [{ "product_id": product_id, "quantity": quantity }],
            "shipping_address": {
                "name": "Load Test", "line1": "1 Bench St", "city": "Berlin",
                "postal_code": "10115", "country": "DE"
            },
            "payment_token": "tok_visa",
        }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::CREATED,
        "POST /orders: {}",
        response.status()
    );
    let order: Value = response.json().await?;
    let id = order["id"].as_str().context("order id")?.to_owned();
    loop {
        let order: Value = client
            .get(format!("{base}/api/v1/orders/{id}?wait_ms=10000"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let status = order["status"].as_str().unwrap_or_default().to_owned();
        if matches!(status.as_str(), "COMPLETED" | "CANCELLED" | "REJECTED")
            || Instant::now() > deadline
        {
            return Ok(status);
        }
    }
}

/// Peak resident set size of a process, from /proc (Linux only).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
