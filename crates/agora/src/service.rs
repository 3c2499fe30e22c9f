//! The distributed mode: `agora service <name>` runs one service in its own
//! process, on its own PostgreSQL database (created if missing, migrated at
//! start), talking to the others over RabbitMQ. Start several of one service
//! for competing consumers.

use std::time::Duration;

use agora_platform::amqp::{AmqpConfig, Broker, QueueType};
use agora_platform::service::Peer;
use agora_platform::Db;
use axum::http::Extensions;

use crate::host::{Host, Member, Plan};
use crate::limits::LimitArgs;
use crate::services::{self, ServiceUrls};
use crate::settings::SettingsArgs;

/// The broker a service uses unless told otherwise: a local RabbitMQ.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    /// The service to run (`agora services` lists them).
    pub name: String,
    /// Address of this service's HTTP listener.
    #[arg(long, env = "AGORA_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// This service's own PostgreSQL database (created if missing).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// A file holding the database password (a Docker or Kubernetes
    /// secret), put into --database-url.
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<std::path::PathBuf>,
    /// A file holding the broker password, put into --amqp-url.
    #[arg(long, env = "AMQP_PASSWORD_FILE")]
    pub amqp_password_file: Option<std::path::PathBuf>,
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// Prefix of every exchange and queue (isolates deployments and tests).
    #[arg(long, env = "AGORA_AMQP_PREFIX", default_value = "agora.")]
    pub amqp_prefix: String,
    /// Unacknowledged messages one consumer may hold.
    #[arg(long, env = "AGORA_PREFETCH", default_value_t = 128)]
    pub prefetch: u16,
    /// classic or quorum (classic: see ARCHITECTURE.md for why).
    #[arg(long, env = "AGORA_QUEUE_TYPE", default_value = "classic")]
    pub queue_type: QueueType,
    /// Consumers of this service's queue inside this process. One: on a
    /// busy machine fewer, larger batches beat parallel small ones (more
    /// throughput, see docs/performance.md); scale out with instances.
    #[arg(long, env = "AGORA_CONSUMERS", default_value_t = 1)]
    pub consumers: usize,
    /// How long a consumer waits for more deliveries to join a batch (one
    /// transaction and one ack for all); bounds the latency each hop adds.
    #[arg(long, env = "AGORA_CONSUMER_LINGER_MS", default_value_t = agora_platform::amqp::DEFAULT_BATCH_LINGER_MS)]
    pub consumer_linger_ms: u64,
    /// PostgreSQL connections of this process.
    #[arg(long, env = "AGORA_DB_CONNECTIONS", default_value_t = 10)]
    pub db_connections: u32,
    /// Milliseconds the outbox relay waits for more events before publishing.
    #[arg(long, env = "AGORA_RELAY_LINGER_MS", default_value_t = 5)]
    pub relay_linger_ms: u64,
    /// Identity: serve the demo accounts (public passwords) on a listener
    /// that is not loopback all the same.
    #[arg(long, env = "AGORA_ALLOW_DEMO_ACCOUNTS")]
    pub allow_demo_accounts: bool,
    #[command(flatten)]
    pub urls: ServiceUrls,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

pub struct ServiceApp {
    name: &'static str,
    host: Host,
}

impl ServiceApp {
    pub async fn build(args: ServiceArgs) -> anyhow::Result<ServiceApp> {
        let service = services::find(&args.name)?;
        args.urls.check()?;
        let database_url = crate::secrets::url_with_password_file(
            &args.database_url,
            args.database_password_file.as_deref(),
        )?;
        let amqp_url = crate::secrets::url_with_password_file(
            &args.amqp_url,
            args.amqp_password_file.as_deref(),
        )?;
        let db = Db::connect_postgres(&database_url, args.db_connections).await?;
        db.migrate(&services::migrations(service)).await?;
        let settings = args.settings.settings();
        // The services it needs run elsewhere: each is reached over HTTP.
        let mut peers = Extensions::new();
        for need in service.needs() {
            let url = args.urls.first_of(need)?;
            services::find(need)?.offer(Peer::Remote(&url), &settings, &mut peers);
        }

        // Tokens are verified here too, with identity's keys: read from its
        // storage in its own process, fetched from it in any other.
        let identity_url = args.urls.first_of(agora_identity::NAME)?;
        let keys_at = if service.name() == agora_identity::NAME {
            crate::users::guard_demo_accounts(
                &args.listen,
                settings.seed_demo,
                &db,
                args.allow_demo_accounts,
            )
            .await?;
            Peer::Local(&db)
        } else {
            Peer::Remote(&identity_url)
        };
        let verifier = agora_identity::verifier(keys_at, settings.access_token_ttl);

        let mut amqp = AmqpConfig::new(&amqp_url);
        amqp.prefix = args.amqp_prefix.clone();
        amqp.prefetch = args.prefetch;
        amqp.batch_linger = Duration::from_millis(args.consumer_linger_ms);
        amqp.queue_type = args.queue_type;
        amqp.retry = args.settings.retry();
        amqp.dead_letter_max = args.settings.retention.dead_letter_max;
        let host = Host::build(Plan {
            listen: args.listen.clone(),
            members: vec![Member { service, db }],
            transport: Broker::new(amqp),
            settings,
            peers,
            relay_linger: Duration::from_millis(args.relay_linger_ms),
            consumers: args.consumers,
            paused_consumers: Vec::new(),
            limits: args.limits.service_limits(),
            verifier,
            operator_routes: false,
            web: false,
        })
        .await?;
        Ok(ServiceApp {
            name: service.name(),
            host,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.host.run_until_stopped(stop).await
    }
}
