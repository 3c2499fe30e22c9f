use std::path::PathBuf;

use agora::{loadgen, Application, Config};
use clap::{Parser, Subcommand};

/// Agora: event-driven order processing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
struct TelemetryArgs {
    /// How log lines are written: `human`, or `json` (one object a line,
    /// with the trace, order and event ids as fields).
    #[arg(long, global = true, env = "AGORA_LOG_FORMAT", default_value = "human")]
    log_format: agora_platform::telemetry::LogFormat,
    /// Export traces over OTLP/HTTP to this receiver (e.g.
    /// http://127.0.0.1:4318); off when not given.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
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
    /// Measure this machine's ceilings, then the order load, and how close it comes.
    Bench(agora::bench::Args),
    /// List the event log, or replay part of it to a consumer.
    Events(agora::event_log::EventsArgs),
    /// Operator actions on orders that require attention.
    Orders(agora::operator::OrdersArgs),
    /// Check the cross-service invariants of a running instance.
    Audit(agora::audit::AuditArgs),
    /// Inspect, replay or purge dead letters (embedded or RabbitMQ).
    Dlq(agora::dlq::DlqArgs),
    /// Make accounts in the identity storage (the first admin, operators).
    Users(agora::users::UsersArgs),
    /// Rotate the keys that sign access tokens.
    Keys(agora::users::KeysArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the HTTP listener.
    #[arg(long, env = "AGORA_LISTEN", default_value = agora::settings::DEFAULT_LISTEN)]
    listen: String,
    /// Where the SQLite files live (one per service, plus the bus).
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
    data_dir: PathBuf,
    /// fsync every commit (survives power loss, not only a killed process).
    #[arg(long, env = "AGORA_SYNCHRONOUS_FULL")]
    synchronous_full: bool,
    /// Deliver every event twice, to watch the consumers absorb duplicates.
    #[arg(long, env = "AGORA_DUPLICATE_DELIVERY")]
    duplicate_delivery: bool,
    /// Serve the demo accounts (public passwords) on a listener that is
    /// not loopback all the same.
    #[arg(long, env = "AGORA_ALLOW_DEMO_ACCOUNTS")]
    allow_demo_accounts: bool,
    #[command(flatten)]
    limits: agora::limits::LimitArgs,
    #[command(flatten)]
    settings: agora::settings::SettingsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(command) => command,
        // No subcommand means `run` with its defaults (and environment).
        None => Cli::parse_from(["agora", "run"])
            .command
            .expect("run parses"),
    };
    let service_name = match &command {
        Command::Run(_) => "agora".to_owned(),
        Command::Service(args) => format!("agora-{}", args.name),
        Command::Gateway(_) => "agora-gateway".to_owned(),
        _ => "agora-cli".to_owned(),
    };
    let telemetry = agora_platform::telemetry::init(&agora_platform::telemetry::Options {
        log_format: cli.telemetry.log_format,
        // An empty value (a compose file's default) means off.
        otlp_endpoint: cli.telemetry.otlp_endpoint.filter(|e| !e.is_empty()),
        service_name,
        // A server's log is its output; a command's stdout is its answer.
        logs_to_stderr: !matches!(
            command,
            Command::Run(_) | Command::Service(_) | Command::Gateway(_)
        ),
    })?;
    agora_platform::chaos::install(agora_platform::chaos::Chaos::from_env()?);
    let result = serve(command).await;
    telemetry.shutdown();
    result
}

async fn serve(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Service(args) => {
            args.settings.set_public_url()?;
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
        Command::Bench(args) => agora::bench::run(args).await,
        Command::Dlq(args) => agora::dlq::run(args).await,
        Command::Audit(args) => agora::audit::run(args).await,
        Command::Events(args) => agora::event_log::run(args).await,
        Command::Orders(args) => agora::operator::run(args).await,
        Command::Users(args) => agora::users::users(args).await,
        Command::Keys(args) => agora::users::keys(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    args.settings.set_public_url()?;
    let mut config = Config::new(args.listen, args.data_dir);
    config.settings = args.settings.settings();
    config.retry = args.settings.retry();
    config.synchronous_full = args.synchronous_full;
    config.duplicate_delivery = args.duplicate_delivery;
    config.limits = args.limits.limits();
    config.dead_letter_max = args.settings.retention.dead_letter_max;
    config.allow_demo_accounts = args.allow_demo_accounts;
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
