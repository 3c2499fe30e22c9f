//! `agora bench`: the order load as a fraction of what this machine can do,
//! both measured in one run.
//!
//! First the references ([`agora_platform::bench`]): saga steps per second
//! on SQLite through the storage layer, on PostgreSQL with
//! `--database-url`, and the broker's persistent publishes and acked
//! consumes with `--amqp-url`. Then the order load: an embedded app in
//! this process, or a running deployment at `--url`, pushed as hard as
//! `--concurrency` allows, then at half the rate it reached. Then the
//! references again: the host's speed drifts within minutes, so the
//! ceiling comes from both runs of each as one, and the drift is reported.
//! What an order cost (storage transactions, events published, deliveries) is counted
//! from the `/metrics` pages over the full load, never assumed, and the
//! references turn it into a ceiling in orders per second:
//!
//! - embedded: the SQLite step rate ÷ SQLite transactions per order (the
//!   bus is SQLite too, so its transactions are among them); beside it,
//!   the ceiling of a six-step saga (the step rate ÷ 6);
//! - distributed: one order's references added up as time on the one
//!   machine, `1 / (T/pg + E/publish + D/consume)` for T PostgreSQL
//!   transactions, E events published and D deliveries (plus SQLite's, if
//!   any): what the machine could do if the services did nothing but
//!   their storage and broker work.
//!
//! The fraction is the completed orders per second over that ceiling.
//! `--min-fraction` makes a run below a floor fail, for CI.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_platform::bench::{self as reference, BrokerRates, Rate};
use agora_platform::metrics::{
    DB_TRANSACTIONS, EVENTS_CONSUMED, EVENTS_DUPLICATES, EVENTS_PUBLISHED,
};
use agora_platform::Db;
use anyhow::Context;
use serde::Serialize;

use crate::credentials::Credentials;
use crate::loadgen;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Orders placed at full load.
    #[arg(long, default_value_t = 20_000)]
    pub orders: u64,
    /// Orders in flight at once at full load.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u64,
    /// Orders placed at half load, paced at half the full load's rate (0:
    /// no half-load run). Default: a quarter of `--orders`.
    #[arg(long)]
    pub half_orders: Option<u64>,
    /// Products the orders are spread over (one is the worst case for
    /// contention on a stock row).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub products: u64,
    /// Seconds each storage reference runs.
    #[arg(long, default_value_t = 5.0)]
    pub reference_secs: f64,
    /// Messages the broker reference publishes and consumes.
    #[arg(long, default_value_t = 20_000)]
    pub broker_messages: u64,
    /// Also measure a saga step on this PostgreSQL server (in a database
    /// `agora_bench` of its own, dropped afterwards).
    #[arg(long, env = "AGORA_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Also measure this RabbitMQ broker (a queue of its own, deleted
    /// afterwards).
    #[arg(long, env = "AGORA_BENCH_AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Load the running deployment at this URL (the distributed gateway, or
    /// an `agora run`) instead of an embedded app in this process.
    #[arg(long)]
    pub url: Option<String>,
    /// The `/metrics` pages whose counters say what an order cost: every
    /// process of the deployment (repeat the flag). Default: `--url`'s own
    /// (which, for the embedded app, counts everything).
    #[arg(long = "metrics-url", value_name = "URL")]
    pub metrics_urls: Vec<String>,
    /// Where the embedded app keeps its files (default: a new temporary
    /// directory, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The peak RSS of this process (the server of `--url`) is reported;
    /// without `--url`, this process's own.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Fail when the fraction of the ceiling reached is below this.
    #[arg(long)]
    pub min_fraction: Option<f64>,
    /// Print the report as JSON (and nothing else on stdout).
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// An admin's credentials, to make the products (for `--url`).
    #[command(flatten)]
    pub credentials: Credentials,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `embedded` (in this process) or the URL loaded.
    pub target: String,
    /// The references over both of their runs, before and after the load:
    /// what the ceiling is reckoned from.
    pub references: References,
    /// The references measured before the load, and again after it.
    pub references_before: References,
    pub references_after: References,
    /// The SQLite step rate after the load ÷ before it: how far the
    /// machine's speed moved during the run (1 is not at all). A run whose
    /// drift is far from 1 says more about the host than about Agora.
    pub reference_drift: f64,
    pub full_load: Load,
    pub half_load: Option<Load>,
    /// What one completed order cost, counted over the full load.
    pub per_order: PerOrder,
    /// Orders per second the references allow for that cost (none when a
    /// reference the cost needs was not measured).
    pub ceiling_per_sec: Option<f64>,
    /// How it was reckoned.
    pub ceiling_basis: String,
    /// Completed orders per second at full load ÷ the ceiling.
    pub fraction: Option<f64>,
    /// The ceiling of a six-step saga on SQLite (the step rate ÷ 6), and
    /// the fraction of it reached: the embedded mode's target.
    pub six_step_ceiling_per_sec: f64,
    pub six_step_fraction: f64,
    pub peak_rss_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct References {
    pub sqlite_step: Rate,
    pub postgres_step: Option<Rate>,
    pub broker: Option<BrokerRates>,
}

impl References {
    /// Both runs as one, reference by reference.
    fn with(&self, other: &References) -> References {
        References {
            sqlite_step: self.sqlite_step.with(&other.sqlite_step),
            postgres_step: self
                .postgres_step
                .zip(other.postgres_step)
                .map(|(a, b)| a.with(&b)),
            broker: self.broker.zip(other.broker).map(|(a, b)| a.with(&b)),
        }
    }
}

/// One load run.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub orders: u64,
    pub completed: u64,
    /// Orders that ended otherwise, or not at all, or failed.
    pub not_completed: u64,
    pub offered_per_sec: Option<f64>,
    pub completed_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub elapsed_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PerOrder {
    pub sqlite_transactions: f64,
    pub postgres_transactions: f64,
    pub events_published: f64,
    pub deliveries: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human(&report));
    }
    if let Some(floor) = args.min_fraction {
        match report.fraction {
            Some(fraction) if fraction >= floor => {}
            Some(fraction) => anyhow::bail!(
                "the load reached {fraction:.3} of the ceiling, below the floor of {floor}"
            ),
            None => anyhow::bail!(
                "no ceiling to hold against the floor: {}",
                report.ceiling_basis
            ),
        }
    }
    Ok(())
}

/// References, then the load, then the references again (the host's
/// speed drifts), then what they say together.
pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    let before = measure_references(args).await?;
    let (target, loads, rss) = measure_load(args).await?;
    let after = measure_references(args).await?;
    Ok(assemble(target, [before, after], loads, rss))
}

/// The load (on `--url`, or on an embedded app started and stopped here),
/// with what it was loaded on and the peak RSS.
async fn measure_load(args: &Args) -> anyhow::Result<(String, Loads, Option<f64>)> {
    match &args.url {
        Some(url) => {
            let urls = if args.metrics_urls.is_empty() {
                vec![url.clone()]
            } else {
                args.metrics_urls.clone()
            };
            let loads = load(args, url, &urls).await?;
            let rss = args.server_pid.and_then(loadgen::peak_rss_mb);
            Ok((url.clone(), loads, rss))
        }
        None => {
            let scratch;
            let dir = match &args.data_dir {
                Some(dir) => dir.clone(),
                None => {
                    scratch = tempdir("agora-bench-app")?;
                    scratch.0.clone()
                }
            };
            let app = Embedded::start(crate::Config::new("127.0.0.1:0", &dir)).await?;
            let loads = load(args, &app.url, std::slice::from_ref(&app.url)).await;
            app.stop()?;
            let rss = loadgen::peak_rss_mb(args.server_pid.unwrap_or_else(std::process::id));
            Ok(("embedded".into(), loads?, rss))
        }
    }
}

/// The embedded app in this process, on a runtime of its own (as many
/// workers as cores, as `agora run` has), so that the load generator's
/// tasks do not queue among the app's as they would not against a server
/// of its own; the cores are shared all the same.
struct Embedded {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Embedded {
    async fn start(config: crate::Config) -> anyhow::Result<Embedded> {
        let (started, url) = tokio::sync::oneshot::channel::<anyhow::Result<String>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded app".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let app = match crate::Application::build(config).await {
                        Ok(app) => app,
                        Err(e) => {
                            let _ = started.send(Err(anyhow::anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let _ = started.send(Ok(format!("http://{}", app.local_addr())));
                    app.run_until_stopped(async {
                        let _ = stopped.await;
                    })
                    .await
                })
            })?;
        let url = url.await.context("the embedded app's thread ended")??;
        Ok(Embedded { url, stop, thread })
    }

    fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the embedded app panicked"))?
    }
}

async fn measure_references(args: &Args) -> anyhow::Result<References> {
    let secs = Duration::from_secs_f64(args.reference_secs.max(0.1));
    let dir = tempdir("agora-bench-sqlite")?;
    let sqlite = Db::open_sqlite(&dir.0.join("step.db"), false)?;
    let sqlite_step = steps(args, "SQLite saga steps", &sqlite, secs).await?;
    drop(sqlite);
    drop(dir);
    let postgres_step = match &args.database_url {
        Some(url) => Some(postgres_steps(args, url, secs).await?),
        None => None,
    };
    let broker = match &args.amqp_url {
        Some(url) => {
            let bar = bar(
                args,
                Some(args.broker_messages * 2),
                "RabbitMQ publish + consume",
            );
            let tick = bar.clone();
            let rates =
                reference::broker_round_trip(url, args.broker_messages, move |n| tick.inc(n))
                    .await
                    .context("the broker reference")?;
            bar.finish_and_clear();
            Some(rates)
        }
        None => None,
    };
    Ok(References {
        sqlite_step,
        postgres_step,
        broker,
    })
}

async fn postgres_steps(args: &Args, url: &str, secs: Duration) -> anyhow::Result<Rate> {
    let mut parsed = reqwest::Url::parse(url).context("--database-url")?;
    parsed.set_path("/agora_bench");
    let db_url = parsed.to_string();
    agora_platform::db::drop_postgres_database(&db_url).await?;
    let db = Db::connect_postgres(&db_url, reference::STEP_CLIENTS as u32).await?;
    let rate = steps(args, "PostgreSQL saga steps", &db, secs).await;
    db.close().await;
    agora_platform::db::drop_postgres_database(&db_url).await?;
    rate
}

async fn steps(args: &Args, what: &str, db: &Db, secs: Duration) -> anyhow::Result<Rate> {
    let bar = bar(args, None, what);
    let tick = bar.clone();
    let rate = reference::saga_steps(db, secs, move || tick.inc(1))
        .await
        .with_context(|| format!("the reference: {what}"))?;
    bar.finish_and_clear();
    Ok(rate)
}

/// The full load and, at half its rate, the half load, with what the
/// counters moved by over the full load.
struct Loads {
    full: Load,
    half: Option<Load>,
    cost: PerOrder,
}

async fn load(args: &Args, url: &str, metrics_urls: &[String]) -> anyhow::Result<Loads> {
    let half_orders = args.half_orders.unwrap_or(args.orders / 4);
    let mut load = loadgen::Args {
        url: url.to_owned(),
        orders: args.orders,
        concurrency: args.concurrency,
        quantity: 1,
        products: args.products,
        rate: None,
        timeout_secs: 1800,
        server_pid: None,
        quiet: args.quiet,
        customers: 16,
        report: None,
        credentials: args.credentials.clone(),
    };
    let cast = loadgen::Cast::make(&load, args.orders + half_orders).await?;
    let scrape = Scrape::new(metrics_urls);
    let before = scrape.settled().await?;
    let second = cast.again().await;
    let full = loadgen::drive(&load, cast).await?;
    let after = scrape.settled().await?;
    let cost = after.minus(&before).per(full.completed);
    let full = Load::of(&full, None);
    let half = if half_orders > 0 && full.completed_per_sec > 0.0 {
        let rate = full.completed_per_sec / 2.0;
        load.orders = half_orders;
        load.rate = Some(rate);
        Some(Load::of(&loadgen::drive(&load, second).await?, Some(rate)))
    } else {
        None
    };
    Ok(Loads { full, half, cost })
}

impl Load {
    fn of(report: &loadgen::Report, offered: Option<f64>) -> Load {
        Load {
            orders: report.orders,
            completed: report.completed,
            not_completed: report.orders - report.completed,
            offered_per_sec: offered,
            completed_per_sec: report.completed_per_sec,
            p50_ms: report.p50_ms,
            p99_ms: report.p99_ms,
            elapsed_secs: report.elapsed_secs,
        }
    }
}

fn assemble(
    target: String,
    [before, after]: [References; 2],
    loads: Loads,
    rss: Option<f64>,
) -> Report {
    let Loads { full, half, cost } = loads;
    let references = before.with(&after);
    let (ceiling, basis) = ceiling(&references, &cost);
    let six_step = references.sqlite_step.per_sec / 6.0;
    Report {
        target,
        fraction: ceiling.map(|c| full.completed_per_sec / c),
        ceiling_per_sec: ceiling,
        ceiling_basis: basis,
        six_step_ceiling_per_sec: six_step,
        six_step_fraction: full.completed_per_sec / six_step,
        reference_drift: after.sqlite_step.per_sec / before.sqlite_step.per_sec,
        references,
        references_before: before,
        references_after: after,
        full_load: full,
        half_load: half,
        per_order: cost,
        peak_rss_mb: rss,
    }
}

/// Orders per second that the references allow for what an order costs,
/// and how that was reckoned: each part of the cost takes its share of
/// the one machine's time.
fn ceiling(references: &References, cost: &PerOrder) -> (Option<f64>, String) {
    let distributed = cost.postgres_transactions > 0.0;
    let mut parts: Vec<(f64, Option<f64>, &str)> = vec![(
        cost.sqlite_transactions,
        Some(references.sqlite_step.per_sec),
        "SQLite transactions",
    )];
    if distributed {
        parts.push((
            cost.postgres_transactions,
            references.postgres_step.map(|r| r.per_sec),
            "PostgreSQL transactions (give --database-url)",
        ));
        let broker = references.broker;
        parts.push((
            cost.events_published,
            broker.map(|b| b.publish.per_sec),
            "events published (give --amqp-url)",
        ));
        parts.push((
            cost.deliveries,
            broker.map(|b| b.consume.per_sec),
            "deliveries (give --amqp-url)",
        ));
    }
    let mut secs = 0.0;
    for (count, rate, missing) in parts {
        if count <= 0.0 {
            continue;
        }
        match rate {
            Some(rate) if rate > 0.0 => secs += count / rate,
            _ => return (None, format!("not measured: the reference for {missing}")),
        }
    }
    if secs <= 0.0 {
        return (
            None,
            "nothing counted: no storage transaction on the /metrics pages read".into(),
        );
    }
    let basis = if distributed {
        format!(
            "1 / ({:.2} PostgreSQL steps/pg rate + {:.2} publishes/publish rate + {:.2} deliveries/consume rate{})",
            cost.postgres_transactions,
            cost.events_published,
            cost.deliveries,
            if cost.sqlite_transactions > 0.0 { " + SQLite steps/SQLite rate" } else { "" }
        )
    } else {
        format!(
            "the SQLite step rate / {:.2} SQLite transactions per order",
            cost.sqlite_transactions
        )
    };
    (Some(1.0 / secs), basis)
}

/// Counters read off the deployment's `/metrics` pages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    sqlite: f64,
    postgres: f64,
    published: f64,
    deliveries: f64,
}

impl Counters {
    /// Field by field, `self` and `other` combined by `op`.
    fn with(&self, other: &Counters, op: impl Fn(f64, f64) -> f64) -> Counters {
        Counters {
            sqlite: op(self.sqlite, other.sqlite),
            postgres: op(self.postgres, other.postgres),
            published: op(self.published, other.published),
            deliveries: op(self.deliveries, other.deliveries),
        }
    }

    fn minus(&self, before: &Counters) -> Counters {
        self.with(before, |a, b| a - b)
    }

    fn per(&self, orders: u64) -> PerOrder {
        let n = orders.max(1) as f64;
        PerOrder {
            sqlite_transactions: self.sqlite / n,
            postgres_transactions: self.postgres / n,
            events_published: self.published / n,
            deliveries: self.deliveries / n,
        }
    }

    fn of_page(page: &str) -> Counters {
        Counters {
            sqlite: sample_sum(page, DB_TRANSACTIONS, Some(("backend", "sqlite"))),
            postgres: sample_sum(page, DB_TRANSACTIONS, Some(("backend", "postgres"))),
            published: sample_sum(page, EVENTS_PUBLISHED, None),
            deliveries: sample_sum(page, EVENTS_CONSUMED, None)
                + sample_sum(page, EVENTS_DUPLICATES, None),
        }
    }
}

/// The sum of `name`'s samples in a Prometheus text page, of those with
/// the label `label` if given.
fn sample_sum(page: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((metric, labels)) => (metric, labels),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            if let Some((key, wanted)) = label {
                if !labels.contains(&format!("{key}=\"{wanted}\"")) {
                    return None;
                }
            }
            value.parse::<f64>().ok()
        })
        .sum()
}

struct Scrape {
    client: reqwest::Client,
    pages: Vec<String>,
}

impl Scrape {
    fn new(urls: &[String]) -> Scrape {
        Scrape {
            client: reqwest::Client::new(),
            pages: urls
                .iter()
                .map(|u| {
                    let u = u.trim_end_matches('/');
                    match u.ends_with("/metrics") {
                        true => u.to_owned(),
                        false => format!("{u}/metrics"),
                    }
                })
                .collect(),
        }
    }

    async fn once(&self) -> anyhow::Result<Counters> {
        let mut total = Counters::default();
        for page in &self.pages {
            let text = self
                .client
                .get(page)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("reading {page}"))?
                .text()
                .await?;
            total = total.with(&Counters::of_page(&text), |a, b| a + b);
        }
        Ok(total)
    }

    /// The counters once they stop moving (the work that follows an
    /// order's last answer, such as its notification, is part of its
    /// cost), or as they are after 20 s.
    async fn settled(&self) -> anyhow::Result<Counters> {
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut last = self.once().await?;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.once().await?;
            if now == last || Instant::now() > give_up {
                return Ok(now);
            }
            last = now;
        }
    }
}

fn bar(args: &Args, len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if args.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            indicatif::ProgressBar::new(len),
            "{bar:40} {pos}/{len} {msg}, {per_sec}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} {msg}: {pos} in {elapsed}, {per_sec}",
        ),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A directory of its own under the system's temporary one, removed when
/// dropped.
struct TempDir(PathBuf);

fn tempdir(prefix: &str) -> anyhow::Result<Arc<TempDir>> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Arc::new(TempDir(dir)))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn human(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (refs, before, after) = (&r.references, &r.references_before, &r.references_after);
    let _ = writeln!(
        out,
        "references (this machine, before and after the load; drift {:.2}):",
        r.reference_drift
    );
    let span = |all: f64, before: f64, after: f64| format!("{all:>9.0} ({before:.0} / {after:.0})");
    let _ = writeln!(
        out,
        "  SQLite saga step        {} steps/s",
        span(
            refs.sqlite_step.per_sec,
            before.sqlite_step.per_sec,
            after.sqlite_step.per_sec
        )
    );
    if let (Some(pg), Some(b), Some(a)) = (
        refs.postgres_step,
        before.postgres_step,
        after.postgres_step,
    ) {
        let _ = writeln!(
            out,
            "  PostgreSQL saga step    {} steps/s",
            span(pg.per_sec, b.per_sec, a.per_sec)
        );
    }
    if let (Some(all), Some(b), Some(a)) = (refs.broker, before.broker, after.broker) {
        let _ = writeln!(
            out,
            "  RabbitMQ publish        {} msgs/s (persistent, pipelined confirms)",
            span(all.publish.per_sec, b.publish.per_sec, a.publish.per_sec)
        );
        let _ = writeln!(
            out,
            "  RabbitMQ consume + ack  {} msgs/s",
            span(all.consume.per_sec, b.consume.per_sec, a.consume.per_sec)
        );
    }
    let _ = writeln!(out, "order load ({}):", r.target);
    for (name, load) in std::iter::once(("full", Some(&r.full_load)))
        .chain(std::iter::once(("half", r.half_load.as_ref())))
    {
        let Some(load) = load else { continue };
        let _ = writeln!(
            out,
            "  {name} load  {:>6} orders  {:>7.0} completed/s{}  p50 {:.1} ms  p99 {:.1} ms{}",
            load.orders,
            load.completed_per_sec,
            load.offered_per_sec
                .map(|o| format!(" (offered {o:.0}/s)"))
                .unwrap_or_default(),
            load.p50_ms,
            load.p99_ms,
            if load.not_completed > 0 {
                format!("  ({} not completed)", load.not_completed)
            } else {
                String::new()
            }
        );
    }
    let c = &r.per_order;
    let _ = writeln!(
        out,
        "per order (counted): {:.2} SQLite + {:.2} PostgreSQL transactions, {:.2} events published, {:.2} deliveries",
        c.sqlite_transactions, c.postgres_transactions, c.events_published, c.deliveries
    );
    match (r.ceiling_per_sec, r.fraction) {
        (Some(ceiling), Some(fraction)) => {
            let _ = writeln!(
                out,
                "ceiling {ceiling:.0} orders/s ({}): reached {fraction:.2}",
                r.ceiling_basis
            );
        }
        _ => {
            let _ = writeln!(out, "ceiling unknown: {}", r.ceiling_basis);
        }
    }
    let _ = writeln!(
        out,
        "six-step saga on SQLite: ceiling {:.0} orders/s, reached {:.2}",
        r.six_step_ceiling_per_sec, r.six_step_fraction
    );
    if let Some(rss) = r.peak_rss_mb {
        let _ = writeln!(out, "peak RSS {rss:.1} MB");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str =
        "# HELP agora_db_transactions_total Storage transactions committed, by backend.
# TYPE agora_db_transactions_total counter
agora_db_transactions_total{backend=\"sqlite\"} 120
agora_db_transactions_total{backend=\"postgres\"} 7
agora_events_published_total{service=\"order\",type=\"order.created\"} 10
agora_events_published_total{service=\"inventory\",type=\"stock.reserved\"} 10
agora_events_consumed_total{service=\"payment\",type=\"payment.requested\"} 9
agora_events_duplicates_total{service=\"payment\",type=\"payment.requested\"} 1
agora_events_published_total_other 99
";

    #[test]
    fn counters_are_the_sums_of_their_samples() {
        let c = Counters::of_page(PAGE);
        assert_eq!(c.sqlite, 120.0);
        assert_eq!(c.postgres, 7.0);
        assert_eq!(c.published, 20.0);
        assert_eq!(c.deliveries, 10.0);
    }

    fn rate(per_sec: f64) -> Rate {
        Rate {
            operations: per_sec as u64,
            secs: 1.0,
            per_sec,
        }
    }

    fn refs(pg: Option<f64>, broker: Option<(f64, f64)>) -> References {
        References {
            sqlite_step: rate(6000.0),
            postgres_step: pg.map(rate),
            broker: broker.map(|(p, c)| BrokerRates {
                publish: rate(p),
                consume: rate(c),
            }),
        }
    }

    #[test]
    fn the_embedded_ceiling_is_the_step_rate_over_the_steps_an_order_takes() {
        let cost = PerOrder {
            sqlite_transactions: 12.0,
            events_published: 7.0,
            deliveries: 10.0,
            ..PerOrder::default()
        };
        let (ceiling, _) = ceiling(&refs(None, None), &cost);
        assert_eq!(ceiling, Some(500.0));
    }

    #[test]
    fn the_distributed_ceiling_shares_one_machine_between_storage_and_broker() {
        let cost = PerOrder {
            postgres_transactions: 10.0,
            events_published: 7.0,
            deliveries: 10.0,
            ..PerOrder::default()
        };
        // 10/4000 + 7/14000 + 10/20000 = 0.0025 + 0.0005 + 0.0005 s.
        let (ceiling, _) = ceiling(&refs(Some(4000.0), Some((14_000.0, 20_000.0))), &cost);
        assert!((ceiling.unwrap() - 1.0 / 0.0035).abs() < 1e-6);
    }

    #[test]
    fn a_ceiling_that_needs_a_reference_not_measured_is_unknown() {
        let cost = PerOrder {
            postgres_transactions: 10.0,
            events_published: 7.0,
            deliveries: 10.0,
            ..PerOrder::default()
        };
        let (ceiling, basis) = ceiling(&refs(Some(4000.0), None), &cost);
        assert_eq!(ceiling, None);
        assert!(basis.contains("--amqp-url"), "{basis}");
    }

    #[test]
    fn the_ceiling_comes_from_the_references_before_and_after_the_load_as_one() {
        // The host slowed down by half while the load ran.
        let before = References {
            sqlite_step: Rate::new(8_000, Duration::from_secs(2)),
            ..refs(Some(4000.0), None)
        };
        let after = References {
            sqlite_step: Rate::new(2_000, Duration::from_secs(1)),
            ..refs(None, None)
        };
        let load = Load {
            orders: 100,
            completed: 100,
            not_completed: 0,
            offered_per_sec: None,
            completed_per_sec: 250.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            elapsed_secs: 0.4,
        };
        let cost = PerOrder {
            sqlite_transactions: 4.0,
            ..PerOrder::default()
        };
        let loads = Loads {
            full: load,
            half: None,
            cost,
        };

        let r = assemble("embedded".into(), [before, after], loads, None);

        assert_eq!(r.reference_drift, 0.5);
        // 10,000 steps in 3 s; a reference measured only once is not
        // pooled with nothing.
        assert!((r.references.sqlite_step.per_sec - 10_000.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.references.postgres_step, None);
        assert!((r.ceiling_per_sec.unwrap() - 10_000.0 / 3.0 / 4.0).abs() < 1e-9);
        assert!((r.fraction.unwrap() - 250.0 / (10_000.0 / 12.0)).abs() < 1e-9);
        assert_eq!(r.references_before.sqlite_step.per_sec, 4_000.0);
        assert_eq!(r.references_after.sqlite_step.per_sec, 2_000.0);
    }
}
