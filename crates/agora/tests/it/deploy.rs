//! The deployment's defaults: `deploy/docker-compose.yml` publishes
//! nothing beyond this machine and writes no password, and its PostgreSQL
//! set-up (`deploy/postgres-init.sh`) gives each service a role that
//! reaches its own database only, which `agora service` logs into with a
//! password read from a secret file. The set-up is run for real on a
//! throwaway PostgreSQL cluster (password authentication on), made and
//! removed here; skipped without PostgreSQL's programs, never in CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

#[test]
fn the_compose_file_publishes_only_on_loopback_and_names_no_password() {
    let compose = std::fs::read_to_string(deploy("docker-compose.yml")).unwrap();
    let lines: Vec<&str> = compose
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let ports: Vec<&&str> = lines.iter().filter(|l| l.contains("ports:")).collect();
    assert!(!ports.is_empty());
    for line in ports {
        let published = line.split_once('[').unwrap().1;
        for port in published.trim_end_matches(']').split(',') {
            assert!(
                port.trim().trim_matches('"').starts_with("127.0.0.1:"),
                "published beyond loopback: {line}"
            );
        }
    }
    for line in &lines {
        let upper = line.to_uppercase();
        // An environment variable (upper case) about a password names a
        // file holding it, never the password.
        if let Some((key, value)) = line.trim().split_once(':') {
            let is_variable = key.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if is_variable && key.contains("PASSWORD") {
                assert!(
                    key.trim().ends_with("_FILE") || value.trim().is_empty(),
                    "a password written into the file: {line}"
                );
            }
        }
        assert!(!upper.contains("GUEST:GUEST"), "{line}");
        // A URL carries a user, never `user:password@`.
        if let Some(at) = line.find("://") {
            let authority = line[at + 3..].split('@').next().unwrap_or("");
            assert!(
                !line[at + 3..].contains('@') || !authority.contains(':'),
                "a password in a URL: {line}"
            );
        }
    }
    for service in agora::services::names() {
        let url = format!("postgres://agora_{service}@postgres:5432/agora_{service}");
        let own = lines.iter().any(|l| {
            l.contains(&url) && l.contains(&format!("/run/secrets/{service}_db_password"))
        });
        assert!(
            own,
            "{service} does not log in as its own role with its secret"
        );
    }
}

/// A PostgreSQL cluster of its own, on a free port, that demands
/// passwords over TCP; stopped and removed when dropped.
struct Throwaway {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Throwaway {
    fn start() -> Option<Throwaway> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|mut versions| versions.next())
            .and_then(|v| v.ok())
            .map(|v| v.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists() && Path::new("/usr/sbin/runuser").exists());
        let Some(bin) = bin else {
            assert!(
                !std::env::var("AGORA_REQUIRE_SERVERS").is_ok_and(|v| v == "1"),
                "AGORA_REQUIRE_SERVERS=1 but PostgreSQL's initdb is not installed"
            );
            eprintln!("no initdb: the deployment's PostgreSQL set-up is not tried");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("agora-deploy-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Throwaway { dir, bin, port };
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(&cluster.dir)
                .status();
            assert!(
                chown.unwrap().success(),
                "chown postgres {}",
                cluster.dir.display()
            );
        }
        let data = cluster.dir.join("data");
        cluster.as_postgres(
            &[
                cluster.bin.join("initdb").to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-D",
            ],
            &[&data],
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port,
            cluster.dir.display()
        );
        cluster.as_postgres(
            &[
                cluster.bin.join("pg_ctl").to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "-l",
            ],
            &[
                &cluster.dir.join("log"),
                Path::new("start"),
                Path::new("-D"),
                &data,
            ],
        );
        Some(cluster)
    }

    /// Runs `args` then `paths` as the postgres user (initdb refuses root):
    /// whether it succeeded.
    fn try_as_postgres(&self, args: &[&str], paths: &[&Path]) -> bool {
        let mut command = if is_root() {
            let mut c = Command::new("/usr/sbin/runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        command
            .args(paths)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn as_postgres(&self, args: &[&str], paths: &[&Path]) {
        assert!(self.try_as_postgres(args, paths), "{args:?} {paths:?}");
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        self.try_as_postgres(
            &[
                self.bin.join("pg_ctl").to_str().unwrap(),
                "-m",
                "immediate",
                "-D",
            ],
            &[&data, Path::new("stop")],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `agora service order` with `envs`: its address once it listens
/// (it has connected to its database and migrated it), or `None` if it
/// exits first.
async fn order_service(envs: &[(&str, String)]) -> Option<tokio::process::Child> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .args(["service", "order", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(" listening on ") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    listening.then_some(child)
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn each_service_logs_in_as_its_own_role_with_a_secret_file_and_reaches_no_other_database() {
    let Some(cluster) = Throwaway::start() else {
        return;
    };
    let secrets = cluster.dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for service in agora::services::names() {
        std::fs::write(
            secrets.join(format!("{service}_db_password")),
            format!("pw of {service}\n"),
        )
        .unwrap();
    }
    let init = Command::new("bash")
        .arg(deploy("postgres-init.sh"))
        .env("POSTGRES_USER", "postgres")
        .env("PGHOST", &cluster.dir)
        .env("PGPORT", cluster.port.to_string())
        .env("SECRETS_DIR", &secrets)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(init.success(), "postgres-init.sh failed");

    let url = |db: &str| format!("postgres://agora_order@127.0.0.1:{}/{db}", cluster.port);
    let password = secrets.join("order_db_password");
    let envs = |db: &str, with_password: bool| {
        let mut envs = vec![
            ("DATABASE_URL", url(db)),
            ("AMQP_URL", "amqp://nobody@127.0.0.1:1/%2f".to_owned()),
        ];
        if with_password {
            envs.push(("DATABASE_PASSWORD_FILE", password.display().to_string()));
        }
        envs
    };
    // Its own database, with the password from the secret file: it starts.
    let started = order_service(&envs("agora_order", true)).await;
    assert!(
        started.is_some(),
        "the order service did not start on its own database"
    );
    drop(started);
    // Without the secret, or on another service's database, or on the
    // server's own: it cannot even connect.
    assert!(order_service(&envs("agora_order", false)).await.is_none());
    assert!(order_service(&envs("agora_payment", true)).await.is_none());
    let secret = std::fs::read_to_string(&password).unwrap();
    let as_order = agora::secrets::with_password(&url("postgres"), secret.trim()).unwrap();
    assert!(agora_platform::Db::connect_postgres(&as_order, 1)
        .await
        .is_err());
}
