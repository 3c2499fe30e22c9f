//! RabbitMQ stopped and started in the middle of a load: services report
//! not ready, reconnect, and every accepted order finishes with nothing lost
//! or done twice. Runs against the machine's broker, holding it alone (no other
//! test of the binary uses the servers meanwhile).

use std::time::Duration;

use crate::common::cluster::Cluster;
use crate::common::outage::{not_ready, orders_survive, run};

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn orders_survive_a_broker_restart() {
    let cluster = Cluster::start_alone(&[]).await;
    orders_survive(cluster, 300, 8, |cluster| async move {
        run("rabbitmqctl", &["-q", "stop_app"]).await;
        not_ready(&cluster).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        run("rabbitmqctl", &["-q", "start_app"]).await;
        run("rabbitmqctl", &["-q", "await_startup"]).await;
    })
    .await;
}
