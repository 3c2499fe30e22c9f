//! PostgreSQL restarted in the middle of a load: services report not ready,
//! their pools reconnect, and every accepted order finishes with nothing lost
//! or done twice. Runs against the machine's server (its own test binary, so
//! nothing else is using it meanwhile).

use crate::common::cluster::Cluster;
use crate::common::outage::{orders_survive, run};

#[tokio::test]
async fn orders_survive_a_postgres_restart() {
    let Some(cluster) = Cluster::start(&[]).await else {
        return;
    };
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster")
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    orders_survive(cluster, 300, 8, |_cluster| async move {
        run(
            "pg_ctlcluster",
            &["--skip-systemctl-redirect", &version, "main", "restart"],
        )
        .await;
    })
    .await;
}
