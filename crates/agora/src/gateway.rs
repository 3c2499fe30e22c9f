//! `agora gateway`: the one public entry point of the distributed mode. It
//! serves the same API as the embedded mode by routing each path to the
//! service that owns it, round-robin over that service's instances.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_platform::amqp::{AmqpConfig, Broker};
use agora_platform::http::{ApiError, MAX_BODY_BYTES};
use agora_platform::server::Limits;
use agora_platform::transport::Transport;
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

use crate::host::health::{self, Check, Probe};
use crate::limits::LimitArgs;
use crate::services::{self, ServiceUrls};

#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    #[arg(long, env = "AGORA_LISTEN", default_value = crate::settings::DEFAULT_LISTEN)]
    pub listen: String,
    /// Where each service's instances are (see `agora services`).
    #[command(flatten)]
    pub urls: ServiceUrls,
    /// The broker, for the dead-letter admin endpoints (off without it).
    #[arg(long, env = "AMQP_URL")]
    pub amqp_url: Option<String>,
    /// A file holding the broker password, put into --amqp-url.
    #[arg(long, env = "AMQP_PASSWORD_FILE")]
    pub amqp_password_file: Option<std::path::PathBuf>,
    #[arg(long, env = "AGORA_AMQP_PREFIX", default_value = "agora.")]
    pub amqp_prefix: String,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The instances of one service.
struct Upstream {
    service: &'static str,
    /// The path prefixes this service owns.
    paths: &'static [&'static str],
    instances: Vec<String>,
    next: AtomicUsize,
}

#[derive(Clone)]
struct Gateway {
    upstreams: Arc<Vec<Upstream>>,
    client: reqwest::Client,
}

/// Request and response headers passed through.
const FORWARDED: [HeaderName; 9] = [
    header::AUTHORIZATION,
    header::WWW_AUTHENTICATE,
    header::CACHE_CONTROL,
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::LOCATION,
    header::RETRY_AFTER,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("idempotent-replayed"),
];

pub struct GatewayApp {
    listener: TcpListener,
    router: Router,
    limits: Limits,
}

impl GatewayApp {
    pub async fn build(args: GatewayArgs) -> anyhow::Result<GatewayApp> {
        args.urls.check()?;
        let upstreams = services::ALL
            .iter()
            .map(|service| {
                Ok(Upstream {
                    service: service.name(),
                    paths: service.paths(),
                    instances: args.urls.of(service.name())?,
                    next: AtomicUsize::new(0),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let gateway = Gateway {
            upstreams: Arc::new(upstreams),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .pool_max_idle_per_host(256)
                .build()?,
        };
        let probe: Arc<dyn Probe> = Arc::new(gateway.clone());
        let labels = gateway.clone();
        let mut joined = Router::new();
        for path in crate::host::status::JOINED {
            joined = joined.route(path, axum::routing::get(join));
        }
        let mut router = Router::new()
            .merge(joined)
            .fallback(proxy)
            .with_state(gateway)
            .merge(health::router(probe))
            .merge(agora_platform::metrics::router(Vec::new()));
        if let Some(url) = &args.amqp_url {
            let url =
                crate::secrets::url_with_password_file(url, args.amqp_password_file.as_deref())?;
            let mut config = AmqpConfig::new(&url);
            config.prefix = args.amqp_prefix.clone();
            let broker = Broker::new(config);
            let queues = broker.clone().dead_letters(services::consumer_names());
            router = router
                .merge(crate::admin::dead_letter_router(queues))
                .merge(crate::host::queue_router(
                    broker,
                    services::consumer_names(),
                ));
        }
        let limits = args.limits.limits();
        // It verifies every token itself before passing a request on; the
        // service verifies it again.
        let identity = args.urls.first_of(agora_identity::NAME)?;
        let verifier = agora_identity::verifier(
            agora_platform::service::Peer::Remote(&identity),
            Duration::ZERO,
        );
        let router = crate::host::edge(router, &limits, verifier, true)
            .layer(axum::middleware::from_fn_with_state(labels, label_route));
        let listener = TcpListener::bind(&args.listen).await?;
        Ok(GatewayApp {
            listener,
            router,
            limits,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::host::serve(self.listener, self.router, &self.limits, stop).await
    }
}

impl Gateway {
    /// The service whose path prefix is the longest that `path` is in.
    fn route(&self, path: &str) -> Option<&Upstream> {
        self.owner(path).map(|(upstream, _)| upstream)
    }

    /// [`Gateway::route`], with the prefix it matched.
    fn owner(&self, path: &str) -> Option<(&Upstream, &'static str)> {
        let within = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        self.upstreams
            .iter()
            .flat_map(|u| u.paths.iter().map(move |p| (u, p.len(), *p)))
            .filter(|(_, _, prefix)| within(prefix))
            .max_by_key(|(_, len, _)| *len)
            .map(|(u, _, prefix)| (u, prefix))
    }
}

/// The proxy has no route template: a request it forwards is named, in
/// its span and metrics, by the path prefix the service owns
/// (`POST /api/v1/orders`). Outside the edge's layers, so that they see it.
async fn label_route(
    State(gateway): State<Gateway>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some((_, prefix)) = gateway.owner(request.uri().path()) {
        request
            .extensions_mut()
            .insert(agora_platform::metrics::RouteLabel(prefix));
    }
    next.run(request).await
}

async fn proxy(State(gateway): State<Gateway>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let Some(upstream) = gateway.route(request.uri().path()) else {
        return ApiError::not_found("no such resource").into_response();
    };
    let method = request.method().clone();
    let headers = request.headers().clone();
    // The services behind count the client, not the gateway: it says who
    // the client is, replacing whatever the client claimed.
    let client = request
        .extensions()
        .get::<agora_platform::server::Client>()
        .and_then(|c| c.0);
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    // Round-robin; an instance that refuses the connection never saw the
    // request, so the next one may take it.
    let n = upstream.instances.len();
    let start = upstream.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..n {
        let base = &upstream.instances[(start + i) % n];
        let mut outgoing = gateway
            .client
            .request(method.clone(), format!("{base}{path_and_query}"))
            .body(body.clone());
        for name in &FORWARDED {
            if let Some(value) = headers.get(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        if let Some(client) = client {
            outgoing = outgoing.header("x-forwarded-for", client.to_string());
        }
        // The service's request span continues the gateway's.
        outgoing = outgoing.headers(agora_platform::telemetry::outgoing_headers());
        match outgoing.send().await {
            Ok(answer) => {
                let response = answered(answer.status(), answer.headers());
                return match answer.bytes().await {
                    Ok(bytes) => response
                        .body(Body::from(bytes))
                        .unwrap_or_else(|e| ApiError::internal(e).into_response()),
                    Err(e) => {
                        tracing::warn!(service = upstream.service, instance = %base, error = %e, "an upstream answer broke off");
                        ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            format!("the {} service answered badly", upstream.service),
                        )
                        .into_response()
                    }
                };
            }
            Err(e) if e.is_connect() => {
                tracing::warn!(service = upstream.service, instance = %base, error = %e, "an upstream instance refused the connection");
            }
            Err(e) => {
                tracing::warn!(service = upstream.service, instance = %base, error = %e, "an upstream instance did not answer");
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the {} service did not answer", upstream.service),
                )
                .into_response();
            }
        }
    }
    ApiError::unavailable(format!(
        "the {} service is unavailable; try again",
        upstream.service
    ))
    .into_response()
}

/// An upstream's answer as the gateway's: its status and the headers
/// passed through.
fn answered(status: StatusCode, headers: &axum::http::HeaderMap) -> axum::http::response::Builder {
    FORWARDED
        .iter()
        .filter_map(|name| headers.get(name).map(|value| (name, value)))
        .fold(
            Response::builder().status(status),
            |response, (name, value)| response.header(name, value),
        )
}

/// A host's operator lists ([`crate::host::status`]), asked of every
/// service (its first instance that answers: the instances of a service
/// share its storage) and joined. A refusal (no token, a customer's, bad
/// parameters) is every service's, and is passed on as the first one said it.
async fn join(State(gateway): State<Gateway>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let mut joined: Vec<serde_json::Value> = Vec::new();
    for upstream in gateway.upstreams.iter() {
        let mut reached = false;
        for base in &upstream.instances {
            let mut outgoing = gateway
                .client
                .get(format!("{base}{path_and_query}"))
                .headers(agora_platform::telemetry::outgoing_headers());
            if let Some(value) = &authorization {
                outgoing = outgoing.header(header::AUTHORIZATION, value);
            }
            let Ok(answer) = outgoing.send().await else {
                continue;
            };
            let status = answer.status();
            let headers = answer.headers().clone();
            let Ok(bytes) = answer.bytes().await else {
                continue;
            };
            if !status.is_success() {
                return answered(status, &headers)
                    .body(Body::from(bytes))
                    .unwrap_or_else(|e| ApiError::internal(e).into_response());
            }
            match serde_json::from_slice::<Vec<serde_json::Value>>(&bytes) {
                Ok(list) => joined.extend(list),
                Err(e) => return ApiError::internal(e).into_response(),
            }
            reached = true;
            break;
        }
        if !reached {
            return ApiError::unavailable(format!(
                "the {} service is unavailable; try again",
                upstream.service
            ))
            .into_response();
        }
    }
    axum::Json(joined).into_response()
}

/// Ready when every instance of every service is ready.
#[async_trait]
impl Probe for Gateway {
    async fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for upstream in self.upstreams.iter() {
            let n = upstream.instances.len();
            for (i, base) in upstream.instances.iter().enumerate() {
                let answer = self
                    .client
                    .get(format!("{base}/ready"))
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await;
                let result = match answer {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("{base} answered {}", r.status())),
                    Err(e) => Err(format!("{base}: {e}")),
                };
                // Named by service and place, never by its internal address.
                let name = format!("{} (instance {} of {n})", upstream.service, i + 1);
                checks.push(Check::new(name, result));
            }
        }
        checks
    }
}
