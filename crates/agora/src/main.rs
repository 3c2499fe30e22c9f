use std::path::PathBuf;

use agora::{loadgen, Application, Config};
use clap::{Parser, Subcommand};

/// Agora: event-driven order processing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process (the default).
    Run(RunArgs),
    /// Run one service in its own process (distributed mode: PostgreSQL + RabbitMQ).
    Service(agora::service::ServiceArgs),
    /// Run the public entry point of the distributed mode.
    Gateway(agora::gateway::GatewayArgs),
    /// List the services (name, default port, the paths each serves).
    Services,
    /// Push orders through a running instance and report throughput and latency.
    Loadgen(loadgen::Args),
    /// List the event log, or replay part of it to a consumer.
    Events(agora::event_log::EventsArgs),
    /// Operator actions on orders that require attention.
    Orders(agora::operator::OrdersArgs),
    /// Check the cross-service invariants of a running instance.
    Audit(agora::audit::AuditArgs),
    /// Inspect, replay or purge dead letters (embedded or RabbitMQ).
    Dlq(agora::dlq::DlqArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the HTTP listener.
    #[arg(long, env = "AGORA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the SQLite files live (one per service, plus the bus).
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
    data_dir: PathBuf,
    /// Payments above this many minor units are declined.
    #[arg(long, env = "AGORA_PAYMENT_DECLINE_ABOVE", default_value_t = 1_000_000)]
    payment_decline_above: i64,
    /// Do not seed the demo catalog on first start.
    #[arg(long, env = "AGORA_NO_SEED")]
    no_seed: bool,
    /// fsync every commit (survives power loss, not only a killed process).
    #[arg(long, env = "AGORA_SYNCHRONOUS_FULL")]
    synchronous_full: bool,
    /// Seconds each saga step may take before the order is cancelled.
    #[arg(long, env = "AGORA_STEP_TIMEOUT_SECS", default_value_t = 30)]
    step_timeout_secs: u64,
    /// Seconds a stock reservation is held at most.
    #[arg(long, env = "AGORA_RESERVATION_TTL_SECS", default_value_t = 600)]
    reservation_ttl_secs: u64,
    /// Attempts before a failing event goes to the dead-letter queue.
    #[arg(long, env = "AGORA_MAX_ATTEMPTS", default_value_t = 8)]
    max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "AGORA_RETRY_BASE_MS", default_value_t = 100)]
    retry_base_ms: u64,
    /// Seconds an Idempotency-Key is remembered.
    #[arg(long, env = "AGORA_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    idempotency_ttl_secs: u64,
    /// Turn off the order service's fast stock check (the saga alone decides).
    #[arg(long, env = "AGORA_NO_STOCK_CHECK")]
    no_stock_check: bool,
    /// Deliver every event twice, to watch the consumers absorb duplicates.
    #[arg(long, env = "AGORA_DUPLICATE_DELIVERY")]
    duplicate_delivery: bool,
    /// Clients waiting at once in `GET /orders/{id}?wait_ms`; past it, the
    /// order is answered as it is, at once.
    #[arg(long, env = "AGORA_MAX_WAITERS", default_value_t = agora_order::DEFAULT_MAX_WAITERS)]
    max_waiters: usize,
    #[command(flatten)]
    limits: agora::limits::LimitArgs,
    #[command(flatten)]
    retention: agora::limits::RetentionArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    agora_platform::telemetry::init();
    let command = match Cli::parse().command {
        Some(command) => command,
        // No subcommand means `run` with its defaults (and environment).
        None => Cli::parse_from(["agora", "run"])
            .command
            .expect("run parses"),
    };
    agora_platform::chaos::install(agora_platform::chaos::Chaos::from_env()?);
    match command {
        Command::Run(args) => run(args).await,
        Command::Service(args) => {
            let app = agora::service::ServiceApp::build(args).await?;
            println!(
                "agora {} listening on http://{}",
                app.name(),
                app.local_addr()
            );
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Gateway(args) => {
            let app = agora::gateway::GatewayApp::build(args).await?;
            println!("agora gateway listening on http://{}", app.local_addr());
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Services => {
            for service in agora::services::ALL {
                let port = agora::services::default_port(service.name()).unwrap_or_default();
                println!("{} {} {}", service.name(), port, service.paths().join(","));
            }
            Ok(())
        }
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::Dlq(args) => agora::dlq::run(args).await,
        Command::Audit(args) => agora::audit::run(args).await,
        Command::Events(args) => agora::event_log::run(args).await,
        Command::Orders(args) => agora::operator::run(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = Config::new(args.listen, args.data_dir);
    config.decline_above = args.payment_decline_above;
    config.seed_demo = !args.no_seed;
    config.synchronous_full = args.synchronous_full;
    config.duplicate_delivery = args.duplicate_delivery;
    config.retry.max_attempts = args.max_attempts.max(1);
    config.retry.base_delay = std::time::Duration::from_millis(args.retry_base_ms);
    config.stock_precheck = !args.no_stock_check;
    config.idempotency_ttl = std::time::Duration::from_secs(args.idempotency_ttl_secs);
    config.step_timeout = std::time::Duration::from_secs(args.step_timeout_secs);
    config.reservation_ttl = std::time::Duration::from_secs(args.reservation_ttl_secs);
    config.max_waiters = args.max_waiters;
    config.limits = args.limits.limits();
    config.keep = args.retention.keep(config.idempotency_ttl);
    config.dead_letter_max = args.retention.dead_letter_max;
    let app = Application::build(config.clone()).await?;
    // A plain line that scripts (and the kill -9 test) read the port from.
    println!("agora listening on http://{}", app.local_addr());
    tracing::info!(data_dir = %config.data_dir.display(), "agora is serving every service in one process");
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing current work");
}
