//! Accounts and tokens in both modes: the embedded app and every process
//! of the distributed one verify tokens themselves; the CLI makes accounts
//! and rotates keys on the identity storage; demo accounts stay on
//! loopback.

use std::time::Duration;

use agora::{Application, Config};
use agora_identity::SigningKey;
use serde_json::{json, Value};

use crate::common::cluster::Cluster;
use crate::common::{fresh_dir, spawn_app, Api};

/// Signs in: the access token.
async fn sign_in(api: &Api, email: &str, password: &str) -> String {
    let r = api
        .post_json(
            "/api/v1/auth/token",
            &json!({ "email": email, "password": password }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn me(api: &Api, token: &str) -> reqwest::Response {
    api.client
        .get(api.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A token signed with a key no process knows, under a known key's id.
fn forged(token: &str) -> String {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let mut impostor = SigningKey::generate().unwrap();
    impostor.kid = kid;
    let now = agora_platform::clock::now_secs();
    impostor
        .sign(
            uuid::Uuid::now_v7(),
            agora_platform::auth::Role::Admin,
            now,
            900,
        )
        .unwrap()
}

#[tokio::test]
async fn the_demo_accounts_sign_in_and_a_forged_token_is_refused() {
    let app = spawn_app().await;
    for (email, password, _, role) in agora_identity::DEMO_ACCOUNTS {
        let token = sign_in(&app, email, password).await;
        let r = me(&app, &token).await;
        assert_eq!(r.status(), 200);
        let account: Value = r.json().await.unwrap();
        assert_eq!(account["role"], role.as_str());
    }
    let token = sign_in(&app, "shopper@example.com", "demo-shopper-password").await;
    let r = me(&app, &forged(&token)).await;
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v1/products"))
        .bearer_auth(forged(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a bad token is refused on any route");
    app.stop().await;
}

#[tokio::test]
async fn demo_accounts_are_not_served_beyond_loopback() {
    let dir = fresh_dir();
    let config = Config::new("0.0.0.0:0", dir.to_path_buf());
    let refused = Application::build(config).await.err().expect("refused");
    assert!(
        refused.to_string().contains("--allow-demo-accounts"),
        "{refused}"
    );
}

/// Runs `agora` with `args` to completion: its standard output.
async fn agora(args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"));
    command.args(args).env("RUST_LOG", "warn");
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "agora {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_makes_an_admin_and_rotates_the_signing_key() {
    let dir = fresh_dir();
    let data = dir.to_str().unwrap();
    let made = agora(
        &[
            "users",
            "create",
            "--email",
            "root@example.com",
            "--role",
            "admin",
            "--data-dir",
            data,
        ],
        &[("AGORA_PASSWORD", "a long admin password")],
    )
    .await;
    assert!(made.trim().ends_with("root@example.com admin"), "{made}");

    let (mut child, base) = crate::common::start_binary(&dir, &[]).await;
    let api = Api::at(&base);
    let token = sign_in(&api, "root@example.com", "a long admin password").await;
    let old_kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();

    let new_kid = agora(&["keys", "rotate", "--data-dir", data], &[]).await;
    let new_kid = new_kid.trim();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        me(&api, &token).await.status(),
        200,
        "the old key still verifies"
    );
    let fresh = sign_in(&api, "root@example.com", "a long admin password").await;
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new_kid)
    );
    assert_eq!(
        me(&api, &fresh).await.status(),
        200,
        "the running app knows the new key"
    );
    let users: Value = api
        .client
        .get(api.url("/api/v1/admin/users"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(
        !emails.iter().any(|e| agora_identity::DEMO_ACCOUNTS
            .iter()
            .any(|(demo, ..)| demo == e)),
        "no demo accounts with --no-seed: {emails:?}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn every_process_of_the_distributed_mode_verifies_tokens_itself() {
    let cluster = Cluster::start(&[]).await;
    let token = sign_in(&cluster, "shopper@example.com", "demo-shopper-password").await;
    assert_eq!(
        me(&cluster, &token).await.status(),
        200,
        "through the gateway"
    );

    let forged = forged(&token);
    assert_eq!(
        me(&cluster, &forged).await.status(),
        401,
        "the gateway refuses it"
    );
    // Straight to the order service's own port: it fetched identity's keys
    // and refuses the forgery as well, and accepts the real token.
    let order = Api::at(&cluster.instance_url("order"));
    let direct = |token: String| {
        let order = &order;
        async move {
            order
                .client
                .get(order.url("/api/v1/orders?limit=1"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(direct(forged).await, 401);
    assert_eq!(direct(token).await, 200);

    // `agora users create` on the identity service's own database.
    let database_url = cluster.database_url("identity");
    let made = agora(
        &[
            "users",
            "create",
            "--email",
            "ops@example.test",
            "--role",
            "operator",
            "--database-url",
            &database_url,
        ],
        &[("AGORA_PASSWORD", "a long operator password")],
    )
    .await;
    assert!(made.trim().ends_with("ops@example.test operator"), "{made}");
    let operator = sign_in(&cluster, "ops@example.test", "a long operator password").await;
    let all = cluster
        .client
        .get(cluster.url("/api/v1/inventory/reservations"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.status(),
        200,
        "an operator's route, through the gateway"
    );
    cluster.stop().await;
}

/// Fails to sign in as `count` different unknown accounts, from `client` as
/// `via` says it forwards for (when given).
async fn fail_sign_ins(api: &Api, count: u32, forwarded_for: Option<&str>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let email = format!("nobody-{}@example.test", uuid::Uuid::now_v7().simple());
        let mut request = api
            .client
            .post(api.url("/api/v1/auth/token"))
            .json(&json!({ "email": email, "password": "not the password" }));
        if let Some(client) = forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    statuses
}

/// Behind a trusted proxy, failed sign-ins count against the client the
/// proxy forwards for: one guessing client is held back, the others are
/// not (and nobody else's header is believed).
#[tokio::test]
async fn failed_sign_ins_count_against_the_client_a_trusted_proxy_names() {
    let app = crate::common::spawn_app_with(|c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let api = app.anonymous();
    let limit = agora_identity::LOGIN_FAILURES_PER_CLIENT;
    let guesser = Some("203.0.113.1");
    assert!(fail_sign_ins(&api, limit, guesser)
        .await
        .iter()
        .all(|s| *s == 401));

    assert_eq!(fail_sign_ins(&api, 1, guesser).await, [429]);
    assert_eq!(
        fail_sign_ins(&api, 1, Some("203.0.113.2")).await,
        [401],
        "another client"
    );
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn the_gateway_names_the_client_and_ignores_what_the_client_claims() {
    let cluster = Cluster::start(&[]).await;
    let through_gateway = cluster.anonymous();
    let limit = agora_identity::LOGIN_FAILURES_PER_CLIENT;
    // A client that claims to forward for someone else: the gateway puts
    // its real address (127.0.0.1 here) in the header instead.
    let claimed = Some("203.0.113.7");
    assert!(fail_sign_ins(&through_gateway, limit, claimed)
        .await
        .iter()
        .all(|s| *s == 401));
    assert_eq!(
        fail_sign_ins(&through_gateway, 1, Some("203.0.113.8")).await,
        [429]
    );

    // The claimed address was never counted: identity, trusting this
    // machine as the gateway, still lets it try.
    let identity = Api::at(&cluster.instance_url("identity"));
    assert_eq!(fail_sign_ins(&identity, 1, claimed).await, [401]);
    cluster.stop().await;
}
