//! The HTTP listener every process kind serves from (the embedded app, each
//! `agora service`, the gateway), and the limits every public API needs:
//!
//! - a **header-read timeout**: a client that opens a connection and sends
//!   its request head slowly (slowloris) is dropped;
//! - a **request timeout**: a request that takes longer is answered 503;
//! - a **cap on concurrent requests**: past it, a request is answered at
//!   once with 503 and `Retry-After` instead of queueing without bound;
//! - a **per-client rate limit** and **cap on a client's requests in
//!   flight** (by the peer's IP address, an IPv6 one by its /64, or by
//!   the address a trusted proxy forwards for): past either, 429 with
//!   `Retry-After`. Behind a proxy that is not trusted every client is
//!   the proxy, so there they cap everyone together.
//!
//! `axum::serve` offers none of the connection settings (it builds hyper's
//! connection with its defaults, and hyper applies a header-read timeout
//! only with a timer, which it is not given), so [`serve`] drives hyper
//! itself. The request limits are one middleware ([`limit`]) rather than
//! tower's `ConcurrencyLimit` and `TimeoutLayer`: applied with
//! `Router::layer`, a tower layer wraps each route separately (a cap per
//! route, not per process), and their refusals are plain text, not the
//! problem+json every other refusal is.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::http::ApiError;

/// The limits of one listener. Every default is documented in the README;
/// none of them is reached by `agora loadgen` runs.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a client may take to send a request's head.
    pub header_read_timeout: Duration,
    /// How long a request may take, body included. Above the longest wait
    /// a client may ask for (`GET /orders/{id}?wait_ms`, 30 s).
    pub request_timeout: Duration,
    /// Requests served at once; past it, 503 at once.
    pub max_concurrent_requests: usize,
    /// Requests one client (IP address) may have in flight at once; past
    /// it, 429 at once, so that no one client can hold every slot.
    pub max_concurrent_per_client: usize,
    /// Requests per second one client (IP address) may make, with bursts
    /// of as many; 0 turns the limit off.
    pub requests_per_second_per_client: u32,
    /// Peers whose `X-Forwarded-For` names the client (the gateway, in
    /// front of a service): a request from one of them counts as its
    /// client's, not as theirs. Anyone else's header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(40),
            max_concurrent_requests: 1024,
            max_concurrent_per_client: 256,
            requests_per_second_per_client: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What [`limit`] needs, shared by every route of a router.
#[derive(Clone)]
struct Edge {
    slots: Arc<Semaphore>,
    per_client_slots: Arc<ClientSlots>,
    request_timeout: Duration,
    per_client: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    trusted_proxies: Arc<[IpAddr]>,
}

/// `router` with the request limits of `limits` on every route.
pub fn limited(router: Router, limits: &Limits) -> Router {
    let per_client = NonZeroU32::new(limits.requests_per_second_per_client).map(|rate| {
        let limiter = Arc::new(RateLimiter::keyed(Quota::per_second(rate)));
        forget_idle_clients(Arc::downgrade(&limiter));
        limiter
    });
    let edge = Edge {
        slots: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
        per_client_slots: Arc::new(ClientSlots {
            max: limits.max_concurrent_per_client.max(1),
            taken: std::sync::Mutex::new(std::collections::HashMap::new()),
        }),
        request_timeout: limits.request_timeout,
        per_client,
        trusted_proxies: limits
            .trusted_proxies
            .iter()
            .map(|ip| ip_key(*ip))
            .collect(),
    };
    router.layer(axum::middleware::from_fn_with_state(edge, limit))
}

/// Drops the state of clients not seen for a while, once a minute, so that
/// many clients cannot grow the limiter without bound; ends with it.
fn forget_idle_clients(limiter: std::sync::Weak<DefaultKeyedRateLimiter<IpAddr>>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
}

/// Requests in flight per client, under a cap.
struct ClientSlots {
    max: usize,
    taken: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One client's request in flight; gives its slot back when dropped.
struct ClientSlot {
    slots: Arc<ClientSlots>,
    client: IpAddr,
}

impl ClientSlots {
    fn take(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let mut taken = self.taken.lock().expect("client slots lock");
        let n = taken.entry(client).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().expect("client slots lock");
        if let Some(n) = taken.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                taken.remove(&self.client);
            }
        }
    }
}

/// The key a client is limited by: its address, or for IPv6 its /64 (one
/// host usually holds a whole /64, and could otherwise take a new address
/// for every request).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The client of a request from `peer`: the peer itself, or, when the peer
/// is one of the `trusted` proxies, the address its `X-Forwarded-For` ends
/// with (the one it added). Keyed as the limits count clients.
pub fn client_of(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = ip_key(peer);
    if trusted.contains(&peer) {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        if let Some(client) = forwarded {
            return ip_key(client);
        }
    }
    peer
}

async fn limit(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| client_of(peer.ip(), request.headers(), &edge.trusted_proxies));
    request.extensions_mut().insert(Client(client));
    if let (Some(limiter), Some(client)) = (&edge.per_client, client) {
        if let Err(not_until) = limiter.check_key(&client) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            let mut refusal = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this client; slow down",
            );
            refusal.retry_after = Some(wait.as_secs().max(1) as u32);
            return refusal.into_response();
        }
    }
    let _client_slot = match client {
        Some(client) => match edge.per_client_slots.take(client) {
            Some(slot) => Some(slot),
            None => {
                let mut refusal = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests in flight from this client; wait for some to end",
                );
                refusal.retry_after = Some(1);
                return refusal.into_response();
            }
        },
        None => None,
    };
    let Ok(_slot) = edge.slots.clone().try_acquire_owned() else {
        return ApiError::unavailable(
            "the server is at its limit of requests in flight; try again",
        )
        .into_response();
    };
    match tokio::time::timeout(edge.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_ms = edge.request_timeout.as_millis() as u64,
                "a request took too long"
            );
            ApiError::unavailable("the request took too long; try again").into_response()
        }
    }
}

/// How long a stopping server lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` resolves, then stops
/// accepting, lets the requests in flight finish (10 s at most) and
/// returns. Each connection reads its request heads within
/// `limits.header_read_timeout`, and each request carries the peer's
/// address (`ConnectInfo<SocketAddr>`) for the per-client limit.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // hyper-util's `GracefulShutdown` cannot watch a connection that may be
    // upgraded (GraphQL's subscriptions are WebSockets): the same, by hand.
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let request = request.map(Body::new);
                let router = router.clone();
                async move {
                    let response = match router.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(response)
                }
            });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let drain = draining.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = drain.cancelled() => {
                    // The request in flight is answered, then it closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    draining.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 10 s; stopping anyway");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_one_key_for_its_whole_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (a, b) = (ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::9"));
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(ip("2001:db8:1:3::1")));
        assert_eq!(ip_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_it_forwards_for() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9".parse().unwrap(),
        );
        let gateway = ip("10.0.0.2");
        assert_eq!(
            client_of(gateway, &headers, &[gateway]),
            ip("203.0.113.9"),
            "the entry the proxy added: the last"
        );
        assert_eq!(
            client_of(ip("10.0.0.3"), &headers, &[gateway]),
            ip("10.0.0.3"),
            "anyone else's header is ignored"
        );
        assert_eq!(
            client_of(gateway, &axum::http::HeaderMap::new(), &[gateway]),
            gateway
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client_of(gateway, &headers, &[gateway]), gateway);
    }

    #[test]
    fn a_client_holds_at_most_its_slots_and_gives_them_back() {
        let slots = Arc::new(ClientSlots {
            max: 2,
            taken: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let you: IpAddr = "192.0.2.2".parse().unwrap();
        let (first, _second) = (slots.take(me).unwrap(), slots.take(me).unwrap());
        assert!(slots.take(me).is_none());
        assert!(slots.take(you).is_some(), "another client is not held back");
        drop(first);
        assert!(slots.take(me).is_some());
    }
}

/// The client a request came from, as the limits count it (its address, or
/// its IPv6 /64; behind a trusted proxy, the address it forwards for):
/// `None` where the server does not say (a router under test served
/// without connection info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub Option<IpAddr>);

impl Client {
    /// The key its limits are kept under.
    pub fn key(&self) -> String {
        self.0.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<Client>() {
            return Ok(*client);
        }
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| ip_key(peer.ip())),
        ))
    }
}
