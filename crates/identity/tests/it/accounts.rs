//! Registration, signing in, `/me`, brute force and the admin's accounts.

use agora_platform::auth::Role;
use serde_json::json;

use crate::helpers::serve;

agora_testing::each_backend! {
    async fn a_registered_customer_signs_in_and_reads_its_account() {
        let s = serve().await;
        let account = s.register("Ann@Example.com", "a long password").await;
        assert_eq!(account["email"], "ann@example.com");
        assert_eq!(account["role"], "customer");
        assert!(account.get("password_hash").is_none());

        let answer = s.sign_in("ann@example.com", "a long password").await;
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        let tokens = answer.expect(200);
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        let token = tokens["access_token"].as_str().unwrap();

        let me = s.get("/api/v1/me", Some(token)).await.expect(200);
        assert_eq!(me["id"], account["id"], "the customer id is the account's id");
        s.stop().await;
    }

    async fn an_email_has_one_account_whatever_its_case() {
        let s = serve().await;
        s.register("bob@example.com", "a long password").await;
        let again = s
            .post(
                "/api/v1/auth/register",
                json!({ "email": "BOB@example.com", "password": "another password", "name": "Bob" }),
                None,
            )
            .await;
        assert_eq!(again.status, 409);
        s.stop().await;
    }

    async fn registration_names_every_wrong_field_and_cannot_choose_a_role() {
        let s = serve().await;
        let bad = s
            .post(
                "/api/v1/auth/register",
                json!({ "email": "nope", "password": "short", "name": "" }),
                None,
            )
            .await
            .expect(422);
        let fields: Vec<&str> = bad["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["email", "password", "name"]);
        let admin = s
            .post(
                "/api/v1/auth/register",
                json!({ "email": "eve@example.com", "password": "a long password", "name": "Eve", "role": "admin" }),
                None,
            )
            .await
            .expect(422);
        assert_eq!(admin["errors"][0]["field"], "role", "{admin}");
        assert_eq!(s.sign_in("eve@example.com", "a long password").await.status, 401);
        s.stop().await;
    }

    async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
        let s = serve().await;
        s.register("cat@example.com", "a long password").await;
        let wrong = s.sign_in("cat@example.com", "not the password").await;
        let unknown = s.sign_in("nobody@example.com", "not the password").await;
        assert_eq!((wrong.status, unknown.status), (401, 401));
        assert_eq!(wrong.body, unknown.body, "nothing tells which emails have accounts");
        s.stop().await;
    }

    async fn me_without_a_token_asks_for_one() {
        let s = serve().await;
        let answer = s.get("/api/v1/me", None).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
        s.stop().await;
    }

    async fn the_failed_sign_in_past_the_limit_is_refused_with_retry_after() {
        let s = serve().await;
        s.register("dan@example.com", "a long password").await;
        for _ in 0..agora_identity::LOGIN_FAILURES_PER_ACCOUNT {
            assert_eq!(s.sign_in("dan@example.com", "a wrong password").await.status, 401);
        }
        let refused = s.sign_in("dan@example.com", "a long password").await;
        assert_eq!(refused.status, 429, "even the right password waits: {}", refused.body);
        let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!(retry_after > 0 && retry_after <= agora_identity::LOGIN_WINDOW.as_secs());
        s.stop().await;
    }

    async fn one_client_trying_many_accounts_is_refused_too() {
        let s = serve().await;
        for i in 0..agora_identity::LOGIN_FAILURES_PER_CLIENT {
            let email = format!("guess-{i}@example.com");
            assert_eq!(s.sign_in(&email, "a wrong password").await.status, 401);
        }
        assert_eq!(s.sign_in("guess-x@example.com", "a wrong password").await.status, 429);
        s.stop().await;
    }

    async fn accounts_are_an_admins_alone() {
        let s = serve().await;
        let (_, tokens) = s.customer().await;
        let customer = tokens["access_token"].as_str().unwrap();
        let operator = s.with_role(Role::Operator).await;
        let admin = s.with_role(Role::Admin).await;
        assert_eq!(s.get("/api/v1/admin/users", None).await.status, 401);
        assert_eq!(s.get("/api/v1/admin/users", Some(customer)).await.status, 403);
        assert_eq!(s.get("/api/v1/admin/users", Some(&operator)).await.status, 403);
        let page = s.get("/api/v1/admin/users", Some(&admin)).await.expect(200);
        assert_eq!(page["items"].as_array().unwrap().len(), 3);

        let made = s
            .post(
                "/api/v1/admin/users",
                json!({ "email": "ops@example.com", "password": "a long password", "name": "Ops", "role": "operator" }),
                Some(&admin),
            )
            .await
            .expect(201);
        assert_eq!(made["role"], "operator");
        let signed_in = s.sign_in("ops@example.com", "a long password").await.expect(200);
        let refresh = signed_in["refresh_token"].as_str().unwrap();

        let id = made["id"].as_str().unwrap();
        let disabled = s
            .patch(&format!("/api/v1/admin/users/{id}"), json!({ "disabled": true }), &admin)
            .await
            .expect(200);
        assert_eq!(disabled["disabled"], true);
        assert_eq!(s.sign_in("ops@example.com", "a long password").await.status, 401);
        assert_eq!(
            s.post("/api/v1/auth/refresh", json!({ "refresh_token": refresh }), None).await.status,
            401,
            "disabling ends the sessions it had"
        );
        s.stop().await;
    }

    async fn an_admin_cannot_lock_itself_out() {
        let s = serve().await;
        let admin = s.with_role(Role::Admin).await;
        let me = s.get("/api/v1/me", Some(&admin)).await.expect(200);
        let id = me["id"].as_str().unwrap();
        let answer = s
            .patch(&format!("/api/v1/admin/users/{id}"), json!({ "role": "customer" }), &admin)
            .await;
        assert_eq!(answer.status, 409);
        s.stop().await;
    }
}
