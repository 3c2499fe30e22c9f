//! The AsyncAPI document of the events: generated from the code, committed
//! as `asyncapi.json`, an AsyncAPI 3.0 document whose references all
//! resolve, saying who sends and who receives each event as the services
//! are wired; served with the JSON Schemas (the files of `schemas/`, byte
//! for byte) by the embedded app and the gateway, to anyone.
//! `AGORA_BLESS=1 cargo test -p agora --test it asyncapi` rewrites the file.

use std::collections::BTreeSet;

use agora_platform::events::{schema_path, ENVELOPE_SCHEMA_PATH, EVENT_TYPES};
use serde_json::Value;

use crate::common::cluster::Cluster;
use crate::common::{spawn_app, Api};

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn generated() -> Value {
    agora::asyncapi::document()
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = agora::asyncapi::file();
    let path = repo_file("asyncapi.json");
    if std::env::var("AGORA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "asyncapi.json drifted from the code (AGORA_BLESS=1 cargo test -p agora --test it asyncapi rewrites it)"
    );
}

/// What `reference` (`#/a/b~1c`) points at in `doc`, if anything.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn it_is_an_asyncapi_3_document_whose_references_all_resolve() {
    let doc = generated();
    assert_eq!(doc["asyncapi"], "3.0.0");
    for field in ["title", "version"] {
        assert!(doc["info"][field].is_string(), "info.{field}");
    }
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    let dangling: Vec<_> = refs.iter().filter(|r| resolve(&doc, r).is_none()).collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");

    let channels = doc["channels"].as_object().unwrap();
    for (id, channel) in channels {
        assert!(channel["address"].is_string(), "channel {id}: no address");
        for (name, message) in channel["messages"].as_object().unwrap() {
            let target = message["$ref"].as_str().expect("a message reference");
            assert!(
                target.starts_with("#/components/messages/"),
                "channel {id} message {name}: {target}"
            );
        }
    }
    for (id, op) in doc["operations"].as_object().unwrap() {
        assert!(
            ["send", "receive"].contains(&op["action"].as_str().unwrap()),
            "{id}"
        );
        let channel = op["channel"]["$ref"].as_str().expect("a channel reference");
        assert!(channel.starts_with("#/channels/"), "{id}: {channel}");
        // An operation's messages are its channel's (AsyncAPI 3.0 requires it).
        for message in op["messages"].as_array().unwrap() {
            let target = message["$ref"].as_str().unwrap();
            assert!(
                target.starts_with(&format!("{channel}/messages/")),
                "{id}: {target} is not a message of {channel}"
            );
        }
    }
    for (name, message) in doc["components"]["messages"].as_object().unwrap() {
        assert!(message["payload"].is_object(), "{name}: no payload");
        assert!(message["headers"].is_object(), "{name}: no headers");
    }
}

/// The channels, operations and messages say what the code does: one
/// channel per routing key, sent by the event's emitter, received by the
/// services whose queue is bound to it, as CloudEvents JSON, with the
/// envelope's schema and the payload's.
#[test]
fn it_says_what_travels_who_sends_it_and_who_receives_it() {
    let doc = generated();
    let channels: BTreeSet<&str> = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    let keys: BTreeSet<&str> = EVENT_TYPES.iter().map(|e| e.routing_key).collect();
    assert_eq!(channels, keys);
    assert_eq!(doc["defaultContentType"], "application/cloudevents+json");

    for event in EVENT_TYPES {
        let channel = format!("#/channels/{}", event.routing_key);
        let on_channel = |action: &str| -> BTreeSet<String> {
            doc["operations"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, op)| op["action"] == action && op["channel"]["$ref"] == channel)
                .map(|(id, _)| id.split('-').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            on_channel("send"),
            BTreeSet::from([event.source.to_owned()]),
            "{}",
            event.name
        );
        let bound: BTreeSet<String> = agora::services::ALL
            .iter()
            .filter(|s| s.consumes().contains(&event.routing_key))
            .map(|s| s.name().to_owned())
            .collect();
        assert!(!bound.is_empty(), "nobody receives {}", event.name);
        assert_eq!(on_channel("receive"), bound, "{}", event.name);

        let message = &doc["components"]["messages"][event.name];
        assert_eq!(message["contentType"], "application/cloudevents+json");
        let payload = &message["payload"]["allOf"];
        let envelope = resolve(&doc, payload[0]["$ref"].as_str().unwrap()).unwrap();
        assert!(envelope["properties"]["dataschema"].is_object());
        let fixed = &payload[1]["properties"];
        assert_eq!(fixed["type"]["const"], event.name);
        assert_eq!(fixed["eventversion"]["const"], event.version);
        assert_eq!(fixed["source"]["const"], format!("/agora/{}", event.source));
        assert_eq!(
            message["headers"]["properties"]["cloudEvents:type"]["const"],
            event.name
        );
        // The payload is the type the committed schema describes.
        let data = resolve(&doc, fixed["data"]["$ref"].as_str().unwrap()).unwrap();
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_file(&schema_path(event.routing_key))).unwrap(),
        )
        .unwrap();
        let fields = |schema: &Value| -> BTreeSet<String> {
            schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(fields(data), fields(&committed), "{}", event.name);
        assert_eq!(data["required"], committed["required"], "{}", event.name);
    }
}

/// Anyone (no token) gets the document and every schema, the schemas as
/// the committed files read.
async fn served_to_anyone(api: &Api) {
    let anonymous = api.anonymous();
    let served: Value = anonymous.get_json("/api/asyncapi.json").await;
    assert_eq!(
        served,
        generated(),
        "the served document is the generated one"
    );
    let mut files = vec![ENVELOPE_SCHEMA_PATH.to_owned()];
    files.extend(EVENT_TYPES.iter().map(|e| schema_path(e.routing_key)));
    for file in files {
        let r = anonymous.get(&format!("/{file}")).await;
        assert_eq!(r.status(), 200, "{file}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "application/schema+json", "{file}");
        let body = r.text().await.unwrap();
        let committed = std::fs::read_to_string(repo_file(&file)).unwrap();
        assert!(body == committed, "/{file} is not the committed file");
    }
    let unknown = anonymous.get("/schemas/events/order.created.v9.json").await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn served_by_the_embedded_app() {
    let app = spawn_app().await;
    served_to_anyone(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn served_by_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    served_to_anyone(&cluster).await;
    cluster.stop().await;
}
