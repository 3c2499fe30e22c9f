//! `kill -9` of service processes in the middle of a load (distributed
//! mode): the order, inventory and payment processes die at different
//! moments and come back; every accepted order finishes once, and the audit
//! is clean.

use std::time::Duration;

use crate::common::cluster::Cluster;
use crate::common::outage::orders_survive;

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn orders_survive_service_processes_killed_mid_saga() {
    let cluster = Cluster::start(&[]).await;
    orders_survive(cluster, 300, 8, |cluster| async move {
        for service in ["payment", "inventory", "order"] {
            cluster.kill(service).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            cluster.restart(service).await;
        }
    })
    .await;
}
