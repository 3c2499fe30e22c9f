//! PostgreSQL restarted in the middle of a load: services report not ready,
//! their pools reconnect, and every accepted order finishes with nothing lost
//! or done twice. Runs against the machine's server, holding it alone (no other
//! test of the binary uses the servers meanwhile).

use crate::common::cluster::Cluster;
use crate::common::outage::{orders_survive, run};

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn orders_survive_a_postgres_restart() {
    let cluster = Cluster::start_alone(&[]).await;
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
