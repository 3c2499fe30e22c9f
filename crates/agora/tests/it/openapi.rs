//! The OpenAPI document: generated from the code, committed as
//! `openapi.json`, describing every route the processes serve and no
//! other, served with Swagger UI by the embedded app and the gateway, and
//! the UI loading nothing from another origin.
//! `AGORA_BLESS=1 cargo test -p agora --test it openapi` rewrites the file.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::access::declared_routes;
use crate::common::cluster::Cluster;
use crate::common::{spawn_app, Api};

fn committed_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

fn generated() -> Value {
    serde_json::to_value(agora::openapi::document()).unwrap()
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = serde_json::to_string_pretty(&generated()).unwrap() + "\n";
    let path = committed_path();
    if std::env::var("AGORA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json drifted from the code (AGORA_BLESS=1 cargo test -p agora --test it openapi rewrites it)"
    );
}

/// (METHOD, /path/{param}) of every operation the document has.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_served_route_is_described_and_nothing_else() {
    let doc = generated();
    let documented = documented(&doc);
    let declared = declared_routes();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "served but not in the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in the document but not served: {extra:?}"
    );
}

#[test]
fn every_operation_says_its_role_and_answers_problems_for_refusals() {
    let doc = generated();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = format!("{} {path}", method.to_uppercase());
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{id} has no success"
            );
            for (status, response) in responses {
                let refusal = status.starts_with('4') || status.starts_with('5');
                // `/ready`'s 503 is its readiness report, not a refusal.
                if refusal && !(path == "/ready" && status == "503") {
                    let text = response.to_string();
                    assert!(
                        text.contains("problem+json") || text.contains("#/components/responses/"),
                        "{id} {status} is not a problem+json: {text}"
                    );
                }
            }
            let roles: Vec<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["bearer"].as_array())
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            if !roles.is_empty() {
                assert!(
                    responses.contains_key("401"),
                    "{id} needs a token and says no 401"
                );
            }
        }
    }
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("an operation id");
            assert!(ids.insert(id.to_owned()), "operation id {id} twice");
        }
    }
    let schemes = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(schemes["scheme"], "bearer");
}

async fn served_and_browsable(api: &Api) {
    let served: Value = api.get_json("/api/openapi.json").await;
    assert_eq!(
        served,
        generated(),
        "the served document is the generated one"
    );
    let page = api.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The page and its scripts load nothing from another origin.
    let mut assets = vec![html.clone()];
    for asset in [
        "swagger-initializer.js",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "index.css",
    ] {
        let r = api.get(&format!("/docs/{asset}")).await;
        assert_eq!(r.status(), 200, "{asset}");
        assets.push(r.text().await.unwrap());
    }
    // (The bundle holds the default validator's address as text; the
    // configuration checked below turns it off.)
    for foreign in ["//unpkg.com", "//cdn.", "//fonts.googleapis"] {
        for text in &assets {
            assert!(!text.contains(foreign), "{foreign} is loaded");
        }
    }
    let initializer = &assets[1];
    assert!(
        !initializer.contains("http://") && !initializer.contains("https://"),
        "{initializer}"
    );
    let config: String = initializer.split_whitespace().collect();
    assert!(
        config.contains("\"validatorUrl\":\"none\""),
        "{initializer}"
    );
    assert!(initializer.contains("/api/openapi.json"));
}

#[tokio::test]
async fn served_by_the_embedded_app() {
    let app = spawn_app().await;
    served_and_browsable(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn served_by_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    served_and_browsable(&cluster).await;
    cluster.stop().await;
}
