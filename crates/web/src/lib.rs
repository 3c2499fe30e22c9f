//! The web UI of Agora, served by the same binary as the API: a storefront
//! for shoppers at `/` and a console for operators at `/console`.
//!
//! Pages are server-rendered HTML (maud) that work without JavaScript; the
//! vendored htmx and its Server-Sent Events extension (`assets/vendor`,
//! with their licences) make the order page and the dashboard live. No
//! asset comes from another origin, and the Content-Security-Policy allows
//! no inline script or style.
//!
//! The UI is a client of the public API like any other ([`client`]): it
//! calls the API in-process with the visitor's own token, so the API's
//! validation, roles, ownership and idempotency are the only ones, and the
//! embedded app and the gateway of the distributed mode serve the same
//! pages from whatever API router they have.

mod assets;
mod console;
mod session;
mod shop;
mod view;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use futures_util::future::BoxFuture;

pub use agora_platform::client::{Answer, Api, Caller};

/// Runs `agora audit`'s checks as the given caller and answers its report
/// (`{products, orders, violations: [{rule, subject, detail}]}`): the audit
/// lives with the command line, the console only shows it.
pub type Audit =
    Arc<dyn Fn(Caller) -> BoxFuture<'static, anyhow::Result<serde_json::Value>> + Send + Sync>;

#[derive(Clone)]
struct Web {
    api: Api,
    audit: Audit,
    samples: Arc<Mutex<console::Samples>>,
}

/// The storefront, the console and their assets, over `api` (the API
/// router behind its token verification).
pub fn router(api: Router, audit: Audit) -> Router {
    let web = Web {
        api: Api::new(api),
        audit,
        samples: Arc::default(),
    };
    Router::new()
        .merge(shop::router())
        .merge(console::router())
        .merge(assets::router())
        .with_state(web)
        .layer(axum::middleware::map_response(protect))
}

/// The headers every page and asset is sent with.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
