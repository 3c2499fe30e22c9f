//! The embedded mode: every service in one process, one SQLite file per
//! service, the embedded durable bus, one HTTP listener.
//!
//! [`Application::build`] opens and migrates each service's SQLite file and
//! the bus, and hands them to the [`Host`] (which starts everything and
//! binds the listener, port 0 in tests); [`Application::run_until_stopped`]
//! serves until the shutdown future resolves, then lets the background work
//! finish its current batch.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_payment::Gateway;
use agora_platform::bus::{BusOptions, EmbeddedBus};
use agora_platform::consumer::RetryPolicy;
use agora_platform::retention::Keep;
use agora_platform::server::Limits;
use agora_platform::service::{Peer, Settings};
use agora_platform::Db;
use axum::http::Extensions;

use crate::host::{Host, Member, Plan};
use crate::services;

/// Settings of the embedded mode.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    /// What the services read: the same settings as `agora service`'s.
    pub settings: Settings,
    /// Deliver every event twice (proves the consumers are idempotent).
    pub duplicate_delivery: bool,
    /// `synchronous=FULL`: survive power loss too, at some cost in speed.
    pub synchronous_full: bool,
    pub retry: RetryPolicy,
    /// Consumers not started: their queues fill up durably. Tests use this to
    /// hold a saga at a chosen step; a restart without it resumes them.
    pub paused_consumers: Vec<String>,
    /// The listener's limits (timeouts, requests in flight, per client).
    pub limits: Limits,
    /// Dead letters kept per service.
    pub dead_letter_max: u32,
    /// Serve the demo accounts on a listener that is not loopback.
    pub allow_demo_accounts: bool,
}

impl Config {
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: listen.into(),
            data_dir: data_dir.into(),
            settings: Settings {
                step_timeout: Duration::from_secs(30),
                reservation_ttl: Duration::from_secs(600),
                idempotency_ttl: agora_platform::idempotency::DEFAULT_TTL,
                max_waiters: agora_order::DEFAULT_MAX_WAITERS,
                stock_check: true,
                payment_decline_above: Gateway::default().decline_above,
                seed_demo: true,
                keep: Keep::default(),
                access_token_ttl: Duration::from_secs(15 * 60),
            },
            duplicate_delivery: false,
            synchronous_full: false,
            retry: RetryPolicy::default(),
            paused_consumers: Vec::new(),
            limits: Limits::default(),
            dead_letter_max: agora_platform::dead_letters::DEFAULT_MAX,
            allow_demo_accounts: false,
        }
    }
}

/// One service's storage, for the audit and the tests.
#[derive(Clone)]
pub struct ServiceDb {
    pub name: &'static str,
    pub db: Db,
}

pub struct Application {
    host: Host,
    pub bus: Arc<EmbeddedBus>,
    pub dbs: Vec<ServiceDb>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut dbs = Vec::new();
        for service in services::ALL {
            let name = service.name();
            let path = config.data_dir.join(format!("{name}.db"));
            let db = Db::open_sqlite(&path, config.synchronous_full)?;
            db.migrate(&services::migrations(service)).await?;
            dbs.push(ServiceDb { name, db });
        }
        let options = BusOptions {
            duplicate_delivery: config.duplicate_delivery,
            retry: config.retry.clone(),
            dead_letter_max: config.dead_letter_max,
        };
        let bus = EmbeddedBus::open(&config.data_dir.join("bus.db"), options).await?;
        let settings = config.settings.clone();
        // Every service is in this process: each is reached in-process.
        let mut peers = Extensions::new();
        for (service, s) in services::ALL.iter().zip(&dbs) {
            service.offer(Peer::Local(&s.db), &settings, &mut peers);
        }
        let identity = dbs
            .iter()
            .find(|s| s.name == agora_identity::NAME)
            .expect("identity is one of the services");
        crate::users::guard_demo_accounts(
            &config.listen,
            config.settings.seed_demo,
            &identity.db,
            config.allow_demo_accounts,
        )
        .await?;
        let verifier =
            agora_identity::verifier(Peer::Local(&identity.db), settings.access_token_ttl);
        let members = services::ALL
            .iter()
            .zip(&dbs)
            .map(|(service, s)| Member {
                service: *service,
                db: s.db.clone(),
            })
            .collect();
        let host = Host::build(Plan {
            listen: config.listen.clone(),
            members,
            transport: bus.clone(),
            settings,
            peers,
            relay_linger: Duration::ZERO,
            consumers: 1,
            paused_consumers: config.paused_consumers.clone(),
            limits: config.limits.clone(),
            verifier,
            operator_routes: true,
            web: true,
        })
        .await?;
        Ok(Application { host, bus, dbs })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Serves until `stop` resolves; see [`Host::run_until_stopped`].
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.host.run_until_stopped(stop).await
    }
}
