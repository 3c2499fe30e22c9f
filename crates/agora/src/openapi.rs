//! The OpenAPI 3.1 document of the whole API, joined from each service's
//! own (`Service::openapi`, its `api.rs`) and the host's and gateway's
//! operator routes: served at `/api/openapi.json`, with Swagger UI at
//! `/docs` (its assets are inside the binary), by the embedded app and by
//! the gateway alike. `openapi.json` at the repository's root is this
//! document as committed; a test fails when the two differ, and when a
//! route is served but not described.

use axum::Router;
use utoipa::openapi::{InfoBuilder, OpenApi as Document, OpenApiBuilder};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::services;

/// The whole API's document.
pub fn document() -> Document {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Agora")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "An event-driven shop: catalog, inventory, cart, orders (a saga), payment, \
                     shipping, notification and identity. Every error is application/problem+json. \
                     Sign in with POST /api/v1/auth/token and send the access token as \
                     `Authorization: Bearer …`; each operation's security names the least role it needs.",
                ))
                .build(),
        )
        .build();
    doc.merge(agora_platform::openapi::Shared::openapi());
    for service in services::ALL {
        doc.merge(service.openapi());
    }
    doc.merge(crate::admin::ApiDoc::openapi());
    doc.merge(crate::host::ApiDoc::openapi());
    doc.merge(crate::host::health::ApiDoc::openapi());
    doc.merge(crate::host::status::ApiDoc::openapi());
    unique_operation_ids(&mut doc);
    json_bodies_may_be_refused(&mut doc);
    doc
}

/// Every operation that reads a JSON body does it through one extractor,
/// which refuses a body without its content type (415) or beyond 64 KiB
/// (413): said once, here, for all of them.
fn json_bodies_may_be_refused(doc: &mut Document) {
    use utoipa::openapi::{Ref, RefOr};
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.post, &mut item.put, &mut item.patch];
        for op in operations.into_iter().flatten() {
            if op.request_body.is_none() {
                continue;
            }
            for (status, name) in [("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")] {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
}

/// Each service names its handlers as it likes (`list`, `show`): in the
/// joined document, an operation's id is its tag's and its own
/// (`catalog-list`), unique as OpenAPI requires.
fn unique_operation_ids(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
            if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
                *id = format!("{tag}-{id}").replace('_', "-");
            }
        }
    }
}

/// `/api/openapi.json` and Swagger UI at `/docs`. The UI sends the
/// document to no validator (by default it would, to another origin), and
/// keeps the bearer token given to "Authorize" across reloads.
pub fn router() -> Router {
    let config = Config::default()
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(true);
    Router::from(
        SwaggerUi::new("/docs")
            .url("/api/openapi.json", document())
            .config(config),
    )
}
