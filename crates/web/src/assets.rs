//! The static files, compiled into the binary: the stylesheet, the icon and
//! the vendored scripts (see `assets/vendor/README.md` for where each came
//! from).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Web;

const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/htmx.min.js"),
    ),
    (
        "sse.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/sse.js"),
    ),
];

pub fn router() -> Router<Web> {
    Router::new().route("/static/{file}", get(file)).route(
        "/favicon.ico",
        get(|| async { file(Path("favicon.svg".to_owned())).await }),
    )
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
