//! Dead letters an operator can act on (embedded mode): list, show,
//! replay, purge over REST and the `agora dlq` command.

use crate::common::spawn_app_with;
use agora_platform::events::{Address, Envelope, Money, OrderCreated, PaymentSucceeded};
use serde_json::Value;
use uuid::Uuid;

fn order_created(order_id: Uuid) -> Envelope {
    Envelope::root(&OrderCreated {
        order_id,
        customer_id: "c".into(),
        email: "ada@example.com".into(),
        phone: None,
        items: vec![],
        total: Money {
            amount: 0,
            currency: "EUR".into(),
        },
        shipping_address: Address {
            name: "Ada".into(),
            line1: "1 St".into(),
            line2: None,
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        },
    })
}

fn payment_succeeded(order_id: Uuid) -> Envelope {
    Envelope::root(&PaymentSucceeded {
        order_id,
        payment_id: Uuid::now_v7(),
        amount: Money {
            amount: 100,
            currency: "EUR".into(),
        },
    })
}

#[tokio::test]
async fn an_exhausted_event_is_replayed_once_its_cause_is_fixed_and_replaying_twice_is_harmless() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 2).await;
    let order_id = Uuid::now_v7();
    // Notification cannot confirm an order whose contact it never learned:
    // it retries, then gives up.
    let confirmed = payment_succeeded(order_id);
    let body = serde_json::to_string(&confirmed).unwrap();
    app.bus
        .inject("notification", "payment.succeeded.v1", &body)
        .await
        .unwrap();
    app.dead_lettered("notification", 1).await;
    let letter = &app
        .list("/api/v1/admin/dead-letters?service=notification")
        .await[0];
    assert_eq!(letter["attempts"], 2);
    assert!(letter["error"]
        .as_str()
        .unwrap()
        .contains("gave up after 2 attempts"));
    assert_eq!(letter["event_type"], "PaymentSucceeded");

    // The cause goes away: the contact arrives.
    let created = serde_json::to_string(&order_created(order_id)).unwrap();
    app.bus
        .inject("notification", "order.created.v1", &created)
        .await
        .unwrap();
    app.eventually(|| async {
        app.list(&format!("/api/v1/notifications?order_id={order_id}"))
            .await
            .len()
            == 1
    })
    .await;

    let dry: Value = app
        .client
        .post(app.url("/api/v1/admin/dead-letters/replay?service=notification&dry_run=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["count"], 1);
    assert_eq!(
        app.list("/api/v1/admin/dead-letters").await.len(),
        1,
        "a dry run moves nothing"
    );
    let r = app
        .client
        .post(app.url("/api/v1/admin/dead-letters/replay?service=notification"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    app.eventually(|| async {
        app.list(&format!("/api/v1/notifications?order_id={order_id}"))
            .await
            .len()
            == 2
    })
    .await;
    assert!(app.list("/api/v1/admin/dead-letters").await.is_empty());
    // The same event once more (a second replay): the inbox absorbs it.
    app.bus
        .inject("notification", "payment.succeeded.v1", &body)
        .await
        .unwrap();
    app.settled().await;
    assert_eq!(
        app.list(&format!("/api/v1/notifications?order_id={order_id}"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn dead_letters_are_shown_filtered_and_purged() {
    let app = spawn_app_with(|_| {}).await;
    app.bus
        .inject("inventory", "order.created.v1", "not json")
        .await
        .unwrap();
    app.bus
        .inject("payment", "payment.requested.v1", "{}")
        .await
        .unwrap();
    app.eventually(|| async { app.list("/api/v1/admin/dead-letters").await.len() == 2 })
        .await;

    let inventory = app
        .list("/api/v1/admin/dead-letters?service=inventory")
        .await;
    assert_eq!(inventory.len(), 1);
    let id = inventory[0]["event_id"].as_str().unwrap();
    let shown = app
        .get_json(&format!("/api/v1/admin/dead-letters/inventory/{id}"))
        .await;
    assert_eq!(shown["body"], "not json");
    assert!(app
        .list("/api/v1/admin/dead-letters?older_than_secs=3600")
        .await
        .is_empty());

    let refused = app
        .client
        .post(app.url("/api/v1/admin/dead-letters/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "purging everything needs all=true");
    let r = app
        .client
        .post(app.url("/api/v1/admin/dead-letters/purge?service=inventory"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 1);
    let left = app.list("/api/v1/admin/dead-letters").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["service"], "payment");
}

#[tokio::test]
async fn the_dlq_command_lists_and_purges_on_a_data_directory() {
    let app = spawn_app_with(|_| {}).await;
    app.bus
        .inject("shipping", "shipping.requested.v1", "garbage")
        .await
        .unwrap();
    app.eventually(|| async { app.list("/api/v1/admin/dead-letters").await.len() == 1 })
        .await;
    let dir = app.stop().await;
    let dlq = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("dlq")
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    let (ok, listed) = dlq(&["list", "--json"]);
    assert!(ok);
    let letters: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["service"], "shipping");
    let (ok, _) = dlq(&["purge"]);
    assert!(!ok, "purge without a selection needs --all");
    let (ok, out) = dlq(&["purge", "--service", "shipping", "--dry-run"]);
    assert!(ok && out.contains("1 would be purged"), "{out}");
    let (ok, out) = dlq(&["purge", "--service", "shipping"]);
    assert!(ok && out.contains("1 purged"), "{out}");
    let (_, listed) = dlq(&["list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&listed).unwrap().len(),
        0
    );
}

/// The purge guard cannot be walked around with an age: 0 and ages that
/// used to wrap around to negative are refused, and nothing is purged.
#[tokio::test]
async fn a_purge_by_an_age_of_zero_or_an_overflowing_age_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let body = serde_json::to_string(&payment_succeeded(Uuid::now_v7())).unwrap();
    app.bus
        .inject("inventory", "payment.succeeded.v1", &body)
        .await
        .unwrap();
    app.dead_lettered("inventory", 1).await;

    for age in [
        "0",
        "18446744073709551615",
        "9223372036854775808",
        "315360001",
    ] {
        let r = app
            .client
            .post(app.url(&format!(
                "/api/v1/admin/dead-letters/purge?older_than_secs={age}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "older_than_secs={age}");
        let listed = app
            .get(&format!("/api/v1/admin/dead-letters?older_than_secs={age}"))
            .await;
        assert_eq!(listed.status(), 400, "list older_than_secs={age}");
    }
    let dir = app.data_dir.display().to_string();
    for age in ["0", "18446744073709551615"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["dlq", "purge", "--older-than-secs", age, "--data-dir", &dir])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "agora dlq purge --older-than-secs {age}"
        );
    }
    assert_eq!(app.list("/api/v1/admin/dead-letters").await.len(), 1);
}

/// The embedded dead-letter table keeps at most its maximum per service.
#[tokio::test]
async fn the_dead_letters_of_a_service_are_kept_up_to_their_maximum() {
    let app = spawn_app_with(|c| c.dead_letter_max = 3).await;
    for _ in 0..5 {
        app.bus
            .inject("inventory", "order.created.v1", "{ not an event")
            .await
            .unwrap();
        // One at a time, so that the oldest are the first injected.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    app.drained("inventory").await;
    let letters = app
        .list("/api/v1/admin/dead-letters?service=inventory")
        .await;
    assert_eq!(letters.len(), 3, "{letters:?}");
}
