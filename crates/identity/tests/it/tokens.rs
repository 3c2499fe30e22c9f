//! Access tokens as every process verifies them, refresh tokens and their
//! families, and key rotation.

use agora_identity::{rotate_key, store, SigningKey};
use agora_platform::auth::{Claims, Role, AUDIENCE, ISSUER};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use crate::helpers::{now, serve, Server};

/// Claims as the service makes them, for the account behind `token`.
fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn current_key(s: &Server) -> SigningKey {
    store::current_key(s.db()).await.unwrap().unwrap()
}

#[track_caller]
fn refused(answer: crate::helpers::Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
}

agora_testing::each_backend! {
    async fn expired_future_forged_and_unsigned_tokens_are_refused() {
        let s = serve().await;
        let (_, tokens) = s.customer().await;
        let good = tokens["access_token"].as_str().unwrap();
        let claims = claims_of(good);
        let key = current_key(&s).await;

        let expired = key
            .sign_claims(&Claims { iat: now() - 3600, nbf: now() - 3600, exp: now() - 60, ..claims.clone() })
            .unwrap();
        refused(s.get("/api/v1/me", Some(&expired)).await, "expired");

        let future = key
            .sign_claims(&Claims { nbf: now() + 3600, exp: now() + 7200, ..claims.clone() })
            .unwrap();
        refused(s.get("/api/v1/me", Some(&future)).await, "not yet valid");

        let mut impostor = SigningKey::generate().unwrap();
        impostor.kid = key.kid.clone();
        let forged = impostor.sign_claims(&claims).unwrap();
        refused(s.get("/api/v1/me", Some(&forged)).await, "wrong signature");

        let unknown = SigningKey::generate().unwrap().sign_claims(&claims).unwrap();
        refused(s.get("/api/v1/me", Some(&unknown)).await, "unknown kid");

        let other_audience = key
            .sign_claims(&Claims { aud: "someone-else".into(), ..claims.clone() })
            .unwrap();
        refused(s.get("/api/v1/me", Some(&other_audience)).await, "another audience");
        let other_issuer = key
            .sign_claims(&Claims { iss: "someone-else".into(), ..claims.clone() })
            .unwrap();
        refused(s.get("/api/v1/me", Some(&other_issuer)).await, "another issuer");

        let (_, payload) = good.split_once('.').unwrap();
        let payload = payload.split('.').next().unwrap();
        let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key.kid));
        refused(s.get("/api/v1/me", Some(&format!("{none}.{payload}."))).await, "alg none");

        // HS256 keyed with the public key: the classic algorithm confusion.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header { kid: Some(key.kid.clone()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) },
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.public_key.as_bytes()),
        )
        .unwrap();
        refused(s.get("/api/v1/me", Some(&hs)).await, "HS256");

        let mut tampered = claims.clone();
        tampered.role = Role::Admin;
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[1] = &body;
        refused(s.get("/api/v1/me", Some(&parts.join("."))).await, "tampered role");

        refused(s.get("/api/v1/me", Some("not.a.token")).await, "garbage");
        assert_eq!(s.get("/api/v1/me", Some(good)).await.status, 200, "the real one still works");
        s.stop().await;
    }

    async fn a_customer_token_does_not_open_an_admin_route() {
        let s = serve().await;
        let (_, tokens) = s.customer().await;
        let token = tokens["access_token"].as_str().unwrap();
        assert_eq!(claims_of(token).role, Role::Customer);
        assert_eq!(claims_of(token).iss, ISSUER);
        assert_eq!(claims_of(token).aud, AUDIENCE);
        let answer = s.get("/api/v1/admin/users", Some(token)).await;
        assert_eq!(answer.status, 403);
        s.stop().await;
    }

    async fn a_refresh_token_is_good_once_and_a_reused_one_revokes_its_family() {
        let s = serve().await;
        let (_, first) = s.customer().await;
        let r1 = first["refresh_token"].as_str().unwrap();

        let second = s
            .post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }), None)
            .await
            .expect(200);
        let r2 = second["refresh_token"].as_str().unwrap();
        assert_ne!(r1, r2, "each refresh hands out the next token");
        let access = second["access_token"].as_str().unwrap();
        assert_eq!(s.get("/api/v1/me", Some(access)).await.status, 200);

        let reused = s.post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }), None).await;
        assert_eq!(reused.status, 401, "a used token is refused");
        let after = s.post("/api/v1/auth/refresh", json!({ "refresh_token": r2 }), None).await;
        assert_eq!(after.status, 401, "and its reuse revoked the whole family");

        let unknown = s.post("/api/v1/auth/refresh", json!({ "refresh_token": "made-up" }), None).await;
        assert_eq!(unknown.status, 401);
        s.stop().await;
    }

    async fn signing_out_ends_the_session() {
        let s = serve().await;
        let (_, tokens) = s.customer().await;
        let refresh = tokens["refresh_token"].as_str().unwrap();
        s.post("/api/v1/auth/logout", json!({ "refresh_token": refresh }), None)
            .await
            .expect(204);
        let after = s.post("/api/v1/auth/refresh", json!({ "refresh_token": refresh }), None).await;
        assert_eq!(after.status, 401);
        s.stop().await;
    }

    async fn after_a_rotation_both_keys_verify_and_the_new_one_signs() {
        let s = serve().await;
        let (_, before) = s.customer().await;
        let old_token = before["access_token"].as_str().unwrap().to_owned();
        let old_kid = current_key(&s).await.kid;

        let new_kid = rotate_key(s.db()).await.unwrap();
        assert_ne!(new_kid, old_kid);

        let jwks = s.get("/.well-known/jwks.json", None).await.expect(200);
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        assert!(jwks["keys"][0].get("d").is_none(), "no private part is published");
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

        assert_eq!(s.get("/api/v1/me", Some(&old_token)).await.status, 200, "the old key still verifies");
        let (_, after) = s.customer().await;
        let new_token = after["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()), "the new key signs");
        assert_eq!(s.get("/api/v1/me", Some(new_token)).await.status, 200, "and verifies");
        s.stop().await;
    }

    async fn a_key_superseded_longer_ago_than_a_token_lives_is_no_longer_published() {
        let s = crate::helpers::serve_with_ttl(std::time::Duration::from_secs(1)).await;
        let old_kid = current_key(&s).await.kid;
        rotate_key(s.db()).await.unwrap();
        // Superseded now: published for the 1 s a token lives, plus leeway.
        let published = |jwks: serde_json::Value| {
            jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == old_kid.as_str())
        };
        assert!(published(s.get("/.well-known/jwks.json", None).await.expect(200)));
        let wait = 2 + agora_platform::auth::LEEWAY_SECS;
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        assert!(!published(s.get("/.well-known/jwks.json", None).await.expect(200)));
        s.stop().await;
    }
}
