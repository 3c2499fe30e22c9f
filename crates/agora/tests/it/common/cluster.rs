//! A distributed deployment for tests: every service as its own `agora
//! service` process on the machine's PostgreSQL (fresh databases) and
//! RabbitMQ (a unique exchange and queue prefix), plus the gateway. The
//! services' public URL is the gateway's, so the `dataschema` of every
//! event they emit resolves. It cleans up after itself: processes, queues,
//! exchanges, databases, also when the test panics before `stop`.

use std::process::Stdio;
use std::time::Duration;

use agora_platform::amqp::{AmqpConfig, Broker};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Every service, in start order: the binary's own list.
pub fn services() -> Vec<&'static str> {
    agora::services::names()
}

pub struct Cluster {
    api: super::Api,
    pub prefix: String,
    pub amqp_url: String,
    /// Where the gateway listens (`host:port`), chosen before anything
    /// starts: the services are told it as their public URL.
    gateway_address: String,
    processes: Vec<Process>,
    database_urls: Vec<String>,
    /// Set by `stop`; still false in `drop` when the test panicked.
    stopped: bool,
    /// Given to every process it starts (an OTLP endpoint, a log format).
    extra_envs: Vec<(String, String)>,
    /// Its hold on the servers, given up when it is dropped.
    _servers: Hold,
}

/// The machine's PostgreSQL and RabbitMQ are shared by every test of this
/// binary; a test that stops one of them (a restart) holds them alone.
static SERVERS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Hold {
    #[allow(dead_code)]
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    #[allow(dead_code)]
    Alone(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// A share of the servers, for a test that uses them without a cluster.
pub async fn share_servers() -> tokio::sync::RwLockReadGuard<'static, ()> {
    SERVERS.read().await
}

/// One started process, with what it takes to start it again.
struct Process {
    service: String,
    child: tokio::sync::Mutex<Option<Child>>,
    /// What the running process has logged, complete once it has exited.
    output: tokio::sync::Mutex<Option<JoinHandle<Vec<String>>>>,
    url: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

/// The servers to test against (the tests that use them are ignored where
/// none is named).
pub fn servers() -> (String, String) {
    agora_testing::servers()
}

/// A started process: the child, the address it listens on, and its log
/// lines (every line after the address, gathered until it exits).
pub async fn spawn(
    args: &[String],
    envs: &[(String, String)],
) -> (Child, String, JoinHandle<Vec<String>>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("AGORA_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the agora binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{args:?} did not start"))
            .unwrap()
            .unwrap_or_else(|| panic!("{args:?} exited early"));
        if let Some((_, url)) = line.split_once(" listening on ") {
            break url.trim().to_owned();
        }
    };
    let name = args.join(" ");
    let output = tokio::spawn(async move {
        let mut logged = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var("AGORA_TEST_LOG").is_ok() {
                eprintln!("[{name}] {line}");
            }
            logged.push(line);
        }
        logged
    });
    (child, url, output)
}

/// A free port on loopback for a gateway, below the range the system
/// gives port-0 listeners from (so no service started meanwhile takes it),
/// drawn at random so that concurrent clusters do not pick the same one.
fn gateway_port() -> u16 {
    loop {
        let port = 20_000 + (Uuid::now_v7().as_u128() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// Starts every service (`instances` of the named ones, one of the rest)
    /// and the gateway, and waits until the gateway is ready.
    pub async fn start(instances: &[(&str, usize)]) -> Cluster {
        let cluster = Cluster::empty().await;
        cluster.started(instances).await
    }

    /// As [`Cluster::start`], with `envs` given to every process.
    pub async fn start_with_env(instances: &[(&str, usize)], envs: &[(&str, String)]) -> Cluster {
        let mut cluster = Cluster::empty().await;
        cluster.extra_envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        cluster.started(instances).await
    }

    /// As [`Cluster::start`], holding the servers alone: for a test that
    /// stops and starts one of them.
    pub async fn start_alone(instances: &[(&str, usize)]) -> Cluster {
        let hold = Hold::Alone(SERVERS.write().await);
        Cluster::with(hold).started(instances).await
    }

    async fn started(mut self, instances: &[(&str, usize)]) -> Cluster {
        let cluster = &mut self;
        for service in services() {
            let count = instances
                .iter()
                .find(|(s, _)| *s == service)
                .map_or(1, |(_, n)| *n);
            cluster.start_service(service, count).await;
        }
        cluster.start_gateway().await;
        cluster.ready().await;
        // Its API is the demo admin's (identity seeds the demo accounts).
        self.api = self.api.signed_in(super::ADMIN).await;
        self
    }

    /// A deployment with nothing started yet: its own queue prefix and
    /// database names on the test servers.
    pub async fn empty() -> Cluster {
        Cluster::with(Hold::Shared(SERVERS.read().await))
    }

    fn with(hold: Hold) -> Cluster {
        let (_, amqp_url) = servers();
        let run = Uuid::now_v7().simple().to_string();
        let prefix = format!("t{}.", &run[run.len() - 10..]);
        Cluster {
            api: super::Api::at(""),
            prefix,
            amqp_url,
            gateway_address: format!("127.0.0.1:{}", gateway_port()),
            processes: Vec::new(),
            database_urls: Vec::new(),
            stopped: false,
            extra_envs: Vec::new(),
            _servers: hold,
        }
    }

    /// The public URL of this deployment: the gateway's.
    pub fn public_url(&self) -> String {
        format!("http://{}", self.gateway_address)
    }

    /// This deployment's database of `service` on the test server.
    pub fn database_url(&self, service: &str) -> String {
        let (db_base, _) = servers();
        let (server, _) = db_base.rsplit_once('/').expect("a database URL");
        format!(
            "{server}/agora_{}_{service}",
            self.prefix.trim_end_matches('.')
        )
    }

    /// The instances of `service` started so far.
    fn instances(&self, service: &str) -> Vec<String> {
        self.processes
            .iter()
            .filter(|p| p.service == service)
            .map(|p| p.url.clone())
            .collect()
    }

    /// Starts `count` instances of `service`, all at the same moment, as
    /// `deploy/run-local.sh` starts them (they race to create their
    /// database and declare their queues), pointed at the catalog and
    /// inventory started before them.
    pub async fn start_service(&mut self, service: &str, count: usize) {
        let database_url = self.database_url(service);
        if !self.database_urls.contains(&database_url) {
            self.database_urls.push(database_url.clone());
        }
        let mut envs: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url),
            ("AMQP_URL".into(), self.amqp_url.clone()),
            ("AGORA_AMQP_PREFIX".into(), self.prefix.clone()),
            ("AGORA_PAYMENT_DECLINE_ABOVE".into(), "500000".to_owned()),
            // As deploy/run-local.sh: the gateway, on this machine, names
            // the client of each request.
            ("AGORA_TRUSTED_PROXIES".into(), "127.0.0.1".to_owned()),
            ("AGORA_PUBLIC_URL".into(), self.public_url()),
        ];
        envs.extend(self.extra_envs.iter().cloned());
        // Where the services started so far are (the ones it needs among them).
        for peer in services() {
            if let Some(url) = self.instances(peer).into_iter().next() {
                envs.push((format!("AGORA_{}_URL", peer.to_ascii_uppercase()), url));
            }
        }
        let args: Vec<String> = [
            "service",
            service,
            "--listen",
            "127.0.0.1:0",
            "--db-connections",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let pending = (0..count).map(|_| {
            let (args, envs) = (args.clone(), envs.clone());
            async move {
                let (child, url, output) = spawn(&args, &envs).await;
                Process {
                    service: service.to_owned(),
                    child: tokio::sync::Mutex::new(Some(child)),
                    output: tokio::sync::Mutex::new(Some(output)),
                    url,
                    args,
                    envs,
                }
            }
        });
        let started = futures_util::future::join_all(pending).await;
        self.processes.extend(started);
    }

    /// Starts the gateway in front of every service started so far.
    pub async fn start_gateway(&mut self) {
        let mut args = vec![
            "gateway".to_owned(),
            "--listen".to_owned(),
            self.gateway_address.clone(),
        ];
        for service in services() {
            args.push("--url".to_owned());
            args.push(format!("{service}={}", self.instances(service).join(",")));
        }
        let mut envs = vec![
            ("AMQP_URL".to_owned(), self.amqp_url.clone()),
            ("AGORA_AMQP_PREFIX".to_owned(), self.prefix.clone()),
        ];
        envs.extend(self.extra_envs.iter().cloned());
        let (child, gateway, output) = spawn(&args, &envs).await;
        self.processes.push(Process {
            service: "gateway".into(),
            child: tokio::sync::Mutex::new(Some(child)),
            output: tokio::sync::Mutex::new(Some(output)),
            url: gateway.clone(),
            args,
            envs,
        });
        self.api = super::Api::at(&gateway);
    }

    /// Waits until the gateway and every instance behind it are ready.
    pub async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(self.url("/ready")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster never became ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the first instance of `service` answers `/ready` with 200.
    pub async fn instance_ready(&self, service: &str) {
        let url = format!("{}/ready", self.instance_url(service));
        self.eventually(|| async {
            self.client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// The broker as the services see it (same prefix).
    pub fn broker(&self) -> std::sync::Arc<Broker> {
        let mut config = AmqpConfig::new(&self.amqp_url);
        config.prefix = self.prefix.clone();
        Broker::new(config)
    }

    /// The base URL of the first instance of `service`.
    pub fn instance_url(&self, service: &str) -> String {
        self.process(service).url.clone()
    }

    fn process(&self, service: &str) -> &Process {
        self.processes
            .iter()
            .find(|p| p.service == service)
            .expect("a started service")
    }

    /// `kill -9` of the first instance of `service`.
    pub async fn kill(&self, service: &str) {
        if let Some(mut child) = self.process(service).child.lock().await.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Starts the first instance of `service` again, on the same address.
    pub async fn restart(&self, service: &str) {
        let process = self.process(service);
        let address = process.url.trim_start_matches("http://").to_owned();
        let args: Vec<String> = process
            .args
            .iter()
            .map(|a| {
                if a == "127.0.0.1:0" {
                    address.clone()
                } else {
                    a.clone()
                }
            })
            .collect();
        let (child, _, output) = spawn(&args, &process.envs).await;
        *process.child.lock().await = Some(child);
        *process.output.lock().await = Some(output);
    }

    /// Stops the first instance of `service` (or the gateway) as an
    /// operator would, with SIGTERM, and returns how it exited and what it
    /// logged.
    pub async fn terminate(&self, service: &str) -> (std::process::ExitStatus, Vec<String>) {
        let process = self.process(service);
        let mut child = process
            .child
            .lock()
            .await
            .take()
            .expect("a running process");
        let pid = child.id().expect("a running process has a pid");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {service} ({pid})");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{service} still running 30 s after SIGTERM"))
            .unwrap();
        let output = process.output.lock().await.take().expect("its output");
        (status, output.await.unwrap())
    }

    /// Stops every process and removes the queues, exchanges and databases.
    pub async fn stop(mut self) {
        for process in &mut self.processes {
            if let Some(mut child) = process.child.get_mut().take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        self.remove_topology_and_databases().await;
        self.stopped = true;
    }

    async fn remove_topology_and_databases(&self) {
        let services: Vec<&str> = services();
        if let Err(e) = self.broker().delete_topology(&services).await {
            eprintln!("could not delete the test topology: {e}");
        }
        for url in &self.database_urls {
            if let Err(e) = agora_platform::db::drop_postgres_database(url).await {
                eprintln!("could not drop {url}: {e}");
            }
        }
    }
}

impl Drop for Cluster {
    /// A test that panics never reaches `stop`: kill its processes and
    /// remove what it made on the servers here, so nothing is left behind.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        for process in &mut self.processes {
            if let Some(mut child) = process.child.get_mut().take() {
                let _ = child.start_kill();
            }
        }
        agora_testing::block_on_aside(self.remove_topology_and_databases());
    }
}

impl std::ops::Deref for Cluster {
    type Target = super::Api;
    fn deref(&self) -> &super::Api {
        &self.api
    }
}
