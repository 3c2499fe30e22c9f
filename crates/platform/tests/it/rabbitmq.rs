//! The RabbitMQ publisher against the machine's broker (ignored without
//! `AGORA_TEST_AMQP_URL`, never in CI): an event is confirmed only once a
//! queue took it.

use agora_platform::amqp::{AmqpConfig, Broker, QueueSpec};
use agora_platform::events::{Envelope, OrderCompleted};
use agora_platform::outbox::OutboxRecord;
use agora_platform::transport::{Publisher, Transport};

fn broker_url() -> String {
    agora_testing::servers().1
}

fn completed() -> OutboxRecord {
    let envelope = Envelope::root(&OrderCompleted {
        order_id: uuid::Uuid::now_v7(),
    });
    OutboxRecord {
        id: envelope.id.to_string(),
        routing_key: envelope.routing_key().unwrap().to_owned(),
        envelope: serde_json::to_string(&envelope).unwrap(),
    }
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn an_event_that_no_queue_takes_is_not_confirmed_and_is_published_again_later() {
    let url = broker_url();
    let mut config = AmqpConfig::new(&url);
    config.prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let broker = Broker::new(config.clone());
    broker
        .bind(&[QueueSpec::new("inventory", &["order.completed.v1"])])
        .await
        .expect("bound");

    // The publisher declared the consumer's queue itself: the event waits
    // there although no inventory ever ran.
    broker.publish(&[completed()]).await.unwrap();
    assert_eq!(broker.message_count("inventory").await.unwrap(), 1);

    // The queue vanishes under a connected publisher: the event comes back
    // (mandatory) and the publish fails, so the relay keeps it in the outbox.
    delete_queue(&url, &config.queue("inventory")).await;
    let lost = broker.publish(&[completed()]).await.unwrap_err();
    assert!(lost.to_string().contains("reached no queue"), "{lost}");

    // The next attempt reconnects, declares the queue again, and delivers.
    broker.publish(&[completed()]).await.unwrap();
    assert_eq!(broker.message_count("inventory").await.unwrap(), 1);

    broker.delete_topology(&["inventory"]).await.unwrap();
    broker.close().await;
}

async fn delete_queue(url: &str, queue: &str) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(queue, Default::default())
        .await
        .unwrap();
    conn.close(200, "done").await.unwrap();
}

/// A service's dead-letter queue keeps at most its maximum: the oldest go.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_dead_letter_queue_keeps_at_most_its_maximum() {
    let url = broker_url();
    let mut config = AmqpConfig::new(&url);
    config.prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    config.dead_letter_max = 2;
    let broker = Broker::new(config.clone());
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    broker
        .declare(&conn, &channel, "inventory", &["order.completed.v1"])
        .await
        .unwrap();
    for n in 0..3 {
        channel
            .basic_publish(
                &config.dead_letter_exchange(),
                "inventory",
                Default::default(),
                format!("letter {n}").as_bytes(),
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(broker.dead_letter_count("inventory").await.unwrap(), 2);
    conn.close(200, "done").await.unwrap();
    broker.delete_topology(&["inventory"]).await.unwrap();
    broker.close().await;
}

/// A dead-letter queue made before it had a maximum is taken as it is:
/// declaring it again with other arguments would fail, and the consumer
/// with it.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_dead_letter_queue_made_without_a_maximum_is_taken_as_it_is() {
    let url = broker_url();
    let mut config = AmqpConfig::new(&url);
    config.prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let broker = Broker::new(config.clone());
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut classic = lapin::types::FieldTable::default();
    classic.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("classic".into()),
    );
    channel
        .queue_declare(&config.dead_letter_queue("inventory"), durable, classic)
        .await
        .unwrap();

    broker
        .declare(&conn, &channel, "inventory", &["order.completed.v1"])
        .await
        .unwrap();

    assert_eq!(broker.dead_letter_count("inventory").await.unwrap(), 0);
    conn.close(200, "done").await.unwrap();
    broker.delete_topology(&["inventory"]).await.unwrap();
    broker.close().await;
}
