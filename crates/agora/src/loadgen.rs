//! `agora loadgen`: pushes orders through a running Agora (embedded or the
//! distributed gateway) and reports completed orders per second and the time
//! from `POST /orders` to a terminal state, overall and per second of the
//! run (`--report`, an HTML page or an SVG image of charts).
//!
//! It makes its products as an admin ([`Credentials`]), then registers its
//! own customers (`--customers`), who place the orders, each with its own
//! token, as shoppers would.
//!
//! It rides through an outage of the instance: every order has its own
//! `Idempotency-Key`, so its `POST` is retried (connection errors, time-outs,
//! 429, 502-504) with the same key until the run's deadline, and the server
//! answers a retry of a request it already carried out with the same order.
//! Polling an accepted order is retried the same way. A customer whose token
//! is refused (401) signs in again, once per request.

mod report;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;

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
    /// Give up on the run after this many seconds (retries stop then too).
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
    /// Also write the run's figures and charts (throughput, latency
    /// percentiles, retries and errors per second) to this file: an HTML
    /// page (`.html`, `.htm`) or an SVG image (`.svg`), by its extension.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
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
    pub p90_ms: f64,
    /// Orders whose `POST` was answered 201 (a replayed answer included).
    pub accepted: u64,
    /// Requests sent again: after a connection error, a time-out, a 429 or a
    /// 5xx, or with a new token after a 401.
    pub retries: u64,
    /// Times a customer signed in again because its token was refused.
    pub signed_in_again: u64,
    /// The run second by second (in the `--report` file, not in the JSON).
    #[serde(skip)]
    pub seconds: Vec<Second>,
}

/// One second of a run: what happened in it. The last one ends with the
/// run, so it is shorter; under half a second, it is folded into the one
/// before it, which is then longer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// When it starts, in seconds since the start of the run.
    pub start_secs: f64,
    /// How long it is, in seconds (1 but for the last).
    pub secs: f64,
    /// Orders whose `POST` was answered 201 in this second.
    pub accepted: u64,
    pub completed: u64,
    pub cancelled_or_rejected: u64,
    pub errors: u64,
    pub retries: u64,
    /// `POST`→terminal of the orders that ended in this second (none when
    /// no order ended in it).
    pub latency: Option<Percentiles>,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of `sorted` (ascending, in ms): `None` when empty.
    fn of(sorted: &[f64]) -> Option<Percentiles> {
        if sorted.is_empty() {
            return None;
        }
        let pct = |p: f64| {
            let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[i]
        };
        Some(Percentiles {
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: pct(1.0),
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = generate(&args).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "{} orders: {} completed in {:.2}s = {:.0} completed orders/s; POST->terminal p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}{}",
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
            .unwrap_or_default(),
        if report.retries > 0 {
            format!("; {} retries", report.retries)
        } else {
            String::new()
        }
    );
    if let Some(path) = &args.report {
        eprintln!("report written to {}", path.display());
    }
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
    // Refuse a report file of unknown kind before the run, not after it.
    args.report.as_deref().map(report::Kind::of).transpose()?;
    let cast = Cast::make(args, args.orders).await?;
    drive(args, cast).await
}

/// What a run's orders are placed with: its products and its customers.
pub struct Cast {
    base: String,
    products: Vec<uuid::Uuid>,
    customers: Vec<Customer>,
}

impl Cast {
    /// Makes `args.products` products with stock enough for `orders` orders
    /// of `args.quantity` units, and registers `args.customers` customers.
    pub async fn make(args: &Args, orders: u64) -> anyhow::Result<Cast> {
        let base = args.url.trim_end_matches('/').to_owned();
        let admin = authorized(
            reqwest::Client::builder().timeout(Duration::from_secs(60)),
            &args.credentials.token(&base).await?,
        )?;
        let count = args.products.max(1);
        let stock = orders.div_ceil(count) * u64::from(args.quantity);
        let mut products = Vec::new();
        for _ in 0..count {
            products.push(create_product(&admin, &base, stock).await?);
        }
        let mut customers = Vec::new();
        for i in 0..args.customers {
            customers.push(register_customer(&admin, &base, i).await?);
        }
        Ok(Cast {
            base,
            products,
            customers,
        })
    }

    /// The same products and customers, for another run (their tokens as
    /// they are now).
    pub async fn again(&self) -> Cast {
        let mut customers = Vec::with_capacity(self.customers.len());
        for c in &self.customers {
            customers.push(Customer {
                email: c.email.clone(),
                password: c.password.clone(),
                token: Mutex::new(c.token.lock().await.clone()),
            });
        }
        Cast {
            base: self.base.clone(),
            products: self.products.clone(),
            customers,
        }
    }
}

/// Places `args.orders` orders with `cast`'s customers and products.
pub async fn drive(args: &Args, cast: Cast) -> anyhow::Result<Report> {
    let report_kind = args.report.as_deref().map(report::Kind::of).transpose()?;
    let Cast {
        base,
        products,
        customers,
    } = cast;
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
    let started = Instant::now();
    let run = Arc::new(Run {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency as usize)
            .timeout(Duration::from_secs(60))
            .build()?,
        base,
        customers,
        products,
        quantity: args.quantity,
        started,
        deadline: started + Duration::from_secs(args.timeout_secs),
        timeline: std::sync::Mutex::new(Vec::new()),
        counts: Counts::default(),
    });
    // An optional pacer: each order waits for its tick, so the offered load
    // is the rate, not whatever the concurrency can push.
    let pacer = args.rate.filter(|r| *r > 0.0).map(|rate| {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Arc::new(Mutex::new(ticks))
    });
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (run, next, bar, pacer) = (run.clone(), next.clone(), bar.clone(), pacer.clone());
        let total = args.orders;
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() > run.deadline {
                    break;
                }
                if let Some(pacer) = &pacer {
                    pacer.lock().await.tick().await;
                }
                let t0 = Instant::now();
                match run.one_order(n).await {
                    Ok(status) => run.ended(&status, t0.elapsed()),
                    Err(e) => {
                        run.tally(|s| s.errors += 1);
                        run.counts.errors.fetch_add(1, Ordering::Relaxed);
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

    let Ok(run) = Arc::try_unwrap(run) else {
        unreachable!("the workers are done")
    };
    let mut timeline = run.timeline.into_inner().expect("no worker panicked");
    let length = timeline.len().max(elapsed.ceil() as usize).max(1);
    timeline.resize_with(length, Tally::default);
    let mut seconds: Vec<(f64, f64)> = (0..timeline.len()).map(|i| (i as f64, 1.0)).collect();
    let last = seconds.len() - 1;
    seconds[last].1 = (elapsed - last as f64).clamp(0.0, 1.0);
    if last > 0 && seconds[last].1 < 0.5 {
        let fraction = timeline.pop().expect("a last second");
        timeline[last - 1].absorb(fraction);
        seconds[last - 1].1 += seconds.pop().expect("a last second").1;
    }
    let mut latencies: Vec<f64> = timeline
        .iter()
        .flat_map(|t| t.latencies_ms.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let overall = Percentiles::of(&latencies).unwrap_or(Percentiles {
        p50: 0.0,
        p90: 0.0,
        p99: 0.0,
        max: 0.0,
    });
    let seconds = timeline
        .into_iter()
        .zip(seconds)
        .map(|(tally, (start_secs, secs))| tally.into_second(start_secs, secs))
        .collect();
    let counts = &run.counts;
    let completed = counts.completed.load(Ordering::Relaxed);
    let report = Report {
        orders: args.orders,
        completed,
        cancelled_or_rejected: counts.ended.load(Ordering::Relaxed),
        not_terminal: counts.open.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        elapsed_secs: elapsed,
        completed_per_sec: completed as f64 / elapsed,
        p50_ms: overall.p50,
        p99_ms: overall.p99,
        max_ms: overall.max,
        server_peak_rss_mb: args.server_pid.and_then(peak_rss_mb),
        products: run.products,
        p90_ms: overall.p90,
        accepted: counts.accepted.load(Ordering::Relaxed),
        retries: counts.retries.load(Ordering::Relaxed),
        signed_in_again: counts.signed_in_again.load(Ordering::Relaxed),
        seconds,
    };
    if let (Some(path), Some(kind)) = (&args.report, report_kind) {
        report::write(path, kind, &report, args)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(report)
}

/// What the workers of a run share.
struct Run {
    client: reqwest::Client,
    base: String,
    customers: Vec<Customer>,
    products: Vec<uuid::Uuid>,
    quantity: u32,
    started: Instant,
    /// No request is sent, and no retry waited for, past it.
    deadline: Instant,
    /// What happened in each second since `started`.
    timeline: std::sync::Mutex<Vec<Tally>>,
    counts: Counts,
}

/// A customer of the run: how it signs in, and its current token.
struct Customer {
    email: String,
    password: String,
    token: Mutex<String>,
}

#[derive(Default)]
struct Counts {
    completed: AtomicU64,
    ended: AtomicU64,
    open: AtomicU64,
    errors: AtomicU64,
    accepted: AtomicU64,
    retries: AtomicU64,
    signed_in_again: AtomicU64,
}

/// One second's counts, as the run goes.
#[derive(Default)]
struct Tally {
    accepted: u64,
    completed: u64,
    ended: u64,
    errors: u64,
    retries: u64,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.completed += other.completed;
        self.ended += other.ended;
        self.errors += other.errors;
        self.retries += other.retries;
        self.latencies_ms.extend(other.latencies_ms);
    }

    fn into_second(mut self, start_secs: f64, secs: f64) -> Second {
        self.latencies_ms.sort_by(f64::total_cmp);
        Second {
            start_secs,
            secs,
            accepted: self.accepted,
            completed: self.completed,
            cancelled_or_rejected: self.ended,
            errors: self.errors,
            retries: self.retries,
            latency: Percentiles::of(&self.latencies_ms),
        }
    }
}

/// What one attempt at a request came to.
enum Attempt<T> {
    Done(T),
    /// Worth sending again (the server is down, restarting or overloaded).
    Again(String),
    /// The token was refused: sign in again, then send it again.
    Unauthorized,
    /// A real error: not sent again.
    Failed(anyhow::Error),
}

/// Why a request with retries did not succeed.
enum GaveUp {
    /// Still failing when the run's deadline came.
    Deadline(String),
    Failed(anyhow::Error),
}

impl From<GaveUp> for anyhow::Error {
    fn from(gave_up: GaveUp) -> Self {
        match gave_up {
            GaveUp::Deadline(last) => {
                anyhow::anyhow!("still failing at the run's deadline: {last}")
            }
            GaveUp::Failed(e) => e,
        }
    }
}

/// The wait before each retry: 100 ms doubling to 1 s, each plus a random
/// part of up to as much again (so 2 s at most), for as long as the run's
/// deadline allows.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .build()
}

/// A transport error worth a retry: anything but a request that cannot be
/// built or an answer that is not what was asked for.
fn transient(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_decode() || e.is_redirect())
}

/// The JSON body of a response, or the attempt's outcome if there is none.
async fn json_of(response: reqwest::Response) -> Attempt<Value> {
    match response.json::<Value>().await {
        Ok(body) => Attempt::Done(body),
        Err(e) if transient(&e) => Attempt::Again(e.to_string()),
        Err(e) => Attempt::Failed(e.into()),
    }
}

impl Run {
    /// What happened at this moment, added to its second.
    fn tally(&self, f: impl FnOnce(&mut Tally)) {
        let second = self.started.elapsed().as_secs() as usize;
        let mut timeline = self.timeline.lock().expect("no worker panicked");
        if timeline.len() <= second {
            timeline.resize_with(second + 1, Tally::default);
        }
        f(&mut timeline[second]);
    }

    /// An order ended (or the run's deadline came) in `status`, `latency`
    /// after its first `POST`.
    fn ended(&self, status: &str, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let (counter, tally): (_, fn(&mut Tally)) = match status {
            "COMPLETED" => (&self.counts.completed, |t| t.completed += 1),
            "CANCELLED" | "REJECTED" => (&self.counts.ended, |t| t.ended += 1),
            _ => (&self.counts.open, |_| {}),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.tally(|t| {
            tally(t);
            t.latencies_ms.push(ms);
        });
    }

    fn retried(&self) {
        self.counts.retries.fetch_add(1, Ordering::Relaxed);
        self.tally(|t| t.retries += 1);
    }

    /// Sends a request (`attempt`, given the customer's token) until it is
    /// done, fails for real or the run's deadline comes, waiting a backoff
    /// between attempts; a refused token is renewed once.
    async fn with_retries<T, F, Fut>(&self, customer: &Customer, attempt: F) -> Result<T, GaveUp>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut waits = backoff();
        let mut renewed = false;
        loop {
            let token = customer.token.lock().await.clone();
            let why = match attempt(token.clone()).await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Failed(e) => return Err(GaveUp::Failed(e)),
                Attempt::Unauthorized if renewed => {
                    return Err(GaveUp::Failed(anyhow::anyhow!(
                        "401 for {} with a new token",
                        customer.email
                    )))
                }
                Attempt::Unauthorized => {
                    renewed = true;
                    self.renew(customer, &token).await?;
                    self.retried();
                    continue;
                }
                Attempt::Again(why) => why,
            };
            let wait = waits.next().unwrap_or(Duration::from_secs(2));
            if Instant::now() + wait > self.deadline {
                return Err(GaveUp::Deadline(why));
            }
            tokio::time::sleep(wait).await;
            self.retried();
        }
    }

    /// Signs `customer` in again, unless another request already replaced
    /// the token `refused` (retrying through an outage as requests do).
    async fn renew(&self, customer: &Customer, refused: &str) -> Result<(), GaveUp> {
        let mut token = customer.token.lock().await;
        if *token != refused {
            return Ok(());
        }
        let mut waits = backoff();
        loop {
            match sign_in(
                &self.client,
                &self.base,
                &customer.email,
                &customer.password,
            )
            .await
            {
                Ok(fresh) => {
                    *token = fresh;
                    self.counts.signed_in_again.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    let wait = waits.next().unwrap_or(Duration::from_secs(2));
                    if Instant::now() + wait > self.deadline {
                        return Err(GaveUp::Deadline(format!("signing in again: {e:#}")));
                    }
                    tokio::time::sleep(wait).await;
                    self.retried();
                }
            }
        }
    }

    /// Places order `n` and follows it to a terminal state: its last status.
    async fn one_order(&self, n: u64) -> anyhow::Result<String> {
        let product_id = self.products[(n % self.products.len() as u64) as usize];
        let customer = &self.customers[(n % self.customers.len() as u64) as usize];
        // One key for every attempt at this order: a retry of a POST that
        // the server carried out (its answer lost) gets the same order back.
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({
            "email": format!("load{n}@example.com"),
            "items": [{ "product_id": product_id, "quantity": self.quantity }],
            "shipping_address": {
                "name": "Load Test", "line1": "1 Bench St", "city": "Berlin",
                "postal_code": "10115", "country": "DE"
            },
            "payment_token": "tok_visa",
        });
        let url = format!("{}/api/v1/orders", self.base);
        let order = self
            .with_retries(customer, |token| {
                let request = self
                    .client
                    .post(&url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", &key)
                    .json(&body);
                async move {
                    let response = match request.send().await {
                        Ok(response) => response,
                        Err(e) if transient(&e) => return Attempt::Again(e.to_string()),
                        Err(e) => return Attempt::Failed(e.into()),
                    };
                    match response.status() {
                        StatusCode::CREATED => json_of(response).await,
                        StatusCode::UNAUTHORIZED => Attempt::Unauthorized,
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => {
                            Attempt::Again(format!("POST /orders: {}", response.status()))
                        }
                        status => Attempt::Failed(anyhow::anyhow!(
                            "POST /orders: {status}: {}",
                            response.text().await.unwrap_or_default()
                        )),
                    }
                }
            })
            .await?;
        self.counts.accepted.fetch_add(1, Ordering::Relaxed);
        self.tally(|t| t.accepted += 1);
        let id = order["id"].as_str().context("order id")?;
        let mut status = order["status"].as_str().unwrap_or_default().to_owned();
        let url = format!("{}/api/v1/orders/{id}?wait_ms=10000", self.base);
        loop {
            if matches!(status.as_str(), "COMPLETED" | "CANCELLED" | "REJECTED")
                || Instant::now() > self.deadline
            {
                return Ok(status);
            }
            let polled = self
                .with_retries(customer, |token| {
                    let request = self.client.get(&url).bearer_auth(token);
                    async move {
                        let response = match request.send().await {
                            Ok(response) => response,
                            Err(e) if transient(&e) => return Attempt::Again(e.to_string()),
                            Err(e) => return Attempt::Failed(e.into()),
                        };
                        match response.status() {
                            s if s.is_success() => json_of(response).await,
                            StatusCode::UNAUTHORIZED => Attempt::Unauthorized,
                            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                                Attempt::Again(format!("GET /orders/{id}: {s}"))
                            }
                            s => Attempt::Failed(anyhow::anyhow!("GET /orders/{id}: {s}")),
                        }
                    }
                })
                .await;
            match polled {
                Ok(order) => status = order["status"].as_str().unwrap_or_default().to_owned(),
                // Not terminal when the run ended: counted as such.
                Err(GaveUp::Deadline(_)) => return Ok(status),
                Err(GaveUp::Failed(e)) => return Err(e),
            }
        }
    }
}

/// Registers a customer of this run and signs it in.
async fn register_customer(
    client: &reqwest::Client,
    base: &str,
    i: u64,
) -> anyhow::Result<Customer> {
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
    let token = sign_in(client, base, &email, &password).await?;
    Ok(Customer {
        email,
        password,
        token: Mutex::new(token),
    })
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

/// Peak resident set size of a process, from /proc (Linux only).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
