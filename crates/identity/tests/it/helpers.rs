//! One identity service on port 0 over a fresh database, behind the same
//! token verification every process puts in front of its routes.

use std::net::SocketAddr;
use std::time::Duration;

use agora_identity::{api, domain, ensure_signing_key, Identity, MIGRATIONS};
use agora_platform::auth::{authenticate, Role};
use agora_platform::service::Peer;
use agora_testing::{backends, TestDb};
use serde_json::{json, Value};

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub identity: Identity,
    t: Option<TestDb>,
    task: tokio::task::JoinHandle<()>,
}

/// An answer: status, the headers the tests look at, the JSON body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn serve() -> Server {
    serve_with_ttl(Duration::from_secs(900)).await
}

pub async fn serve_with_ttl(access_ttl: Duration) -> Server {
    let t = backends(&[MIGRATIONS]).await.remove(0);
    ensure_signing_key(&t.db).await.unwrap();
    let identity = Identity::new(t.db.clone(), access_ttl);
    let verifier = agora_identity::verifier(Peer::Local(&t.db), access_ttl);
    let router = api::router(identity.clone())
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        base,
        client: reqwest::Client::new(),
        identity,
        t: Some(t),
        task,
    }
}

impl Server {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn patch(&self, path: &str, body: Value, token: &str) -> Answer {
        let request = self
            .client
            .patch(format!("{}{path}", self.base))
            .json(&body)
            .bearer_auth(token);
        self.send(request).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Value {
        self.post(
            "/api/v1/auth/register",
            json!({ "email": email, "password": password, "name": "Ann" }),
            None,
        )
        .await
        .expect(201)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/api/v1/auth/token",
            json!({ "email": email, "password": password }),
            None,
        )
        .await
    }

    /// Registers a customer and signs it in: (account, tokens).
    pub async fn customer(&self) -> (Value, Value) {
        let email = format!("c-{}@example.com", uuid::Uuid::now_v7().simple());
        let account = self.register(&email, "a long password").await;
        let tokens = self.sign_in(&email, "a long password").await.expect(200);
        (account, tokens)
    }

    /// An account of `role`, made as `agora users create` makes it, signed
    /// in: its access token.
    pub async fn with_role(&self, role: Role) -> String {
        let email = format!(
            "{}-{}@example.com",
            role.as_str(),
            uuid::Uuid::now_v7().simple()
        );
        let new = domain::NewAccount {
            email: domain::Email::parse(&email).unwrap(),
            password: domain::Password::parse("a long password").unwrap(),
            name: "Staff".into(),
            role,
        };
        self.identity.ensure_account(&new).await.unwrap();
        let tokens = self.sign_in(&email, "a long password").await.expect(200);
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        if let Some(t) = self.t.take() {
            t.cleanup().await;
        }
    }

    pub fn db(&self) -> &agora_platform::Db {
        &self.t.as_ref().expect("running").db
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    agora_platform::clock::now_secs()
}
