//! How the CLIs that talk to a running instance over HTTP (`agora audit`,
//! `agora orders`, `agora loadgen`) authenticate: a bearer token given
//! (`--token`, `AGORA_TOKEN`), or a sign-in with `--email` (`AGORA_EMAIL`)
//! and the password in `AGORA_PASSWORD` (never a flag, which `ps` would
//! show). With neither, they sign in as the demo admin, which exists only
//! where the demo data was seeded: on a loopback listener.

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Credentials {
    /// An access token to send as `Authorization: Bearer`.
    #[arg(long, env = "AGORA_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Sign in with this email; the password comes from AGORA_PASSWORD.
    #[arg(long, env = "AGORA_EMAIL", global = true)]
    pub email: Option<String>,
}

impl Credentials {
    /// The access token: the one given, or one from signing in at `base`.
    pub async fn token(&self, base: &str) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let (email, password) = match &self.email {
            Some(email) => (
                email.clone(),
                std::env::var("AGORA_PASSWORD")
                    .context("--email is given: put the password in AGORA_PASSWORD")?,
            ),
            None => {
                let (email, password, ..) = agora_identity::DEMO_ACCOUNTS[2];
                (email.to_owned(), password.to_owned())
            }
        };
        sign_in(&reqwest::Client::new(), base, &email, &password).await
    }

    /// A client that sends the token with every request.
    pub async fn client(&self, base: &str) -> anyhow::Result<reqwest::Client> {
        authorized(reqwest::Client::builder(), &self.token(base).await?)
    }
}

/// Signs in at `base`: the access token.
pub async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let response = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "signing in as {email} at {base}: {}",
        response.text().await.unwrap_or_default()
    );
    let tokens: Value = response.json().await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("no access_token in the answer")?
        .to_owned())
}

/// `builder`'s client, sending `token` as a bearer token on every request.
pub fn authorized(builder: reqwest::ClientBuilder, token: &str) -> anyhow::Result<reqwest::Client> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    Ok(builder.default_headers(headers).build()?)
}
