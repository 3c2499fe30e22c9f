//! The AsyncAPI 3.0 document of the events, and the JSON Schemas that
//! events name in `dataschema`, served by the embedded app and the gateway
//! (public, like `/api/openapi.json`): a consumer written with any stack
//! learns from them what travels on the broker and checks what it reads,
//! without the Rust types.
//!
//! The document is generated from what the code itself goes by, so that it
//! cannot say something else: the event types of `platform::events` (name,
//! version, routing key, emitting service, payload type), the services'
//! subscriptions (`Service::consumes`, as the queues are bound), the
//! exchange and queue names of `platform::amqp` and how its publisher sends
//! (content type, headers, persistence). Each channel is a routing key;
//! each event has a send operation by its emitter and a receive operation
//! per consuming service; each message is the CloudEvents envelope with the
//! event's payload as its `data`. `asyncapi.json` at the repository's root
//! is this document as committed; a test fails when the two differ.
//!
//! The schemas are served as generated, byte for byte the files in
//! `schemas/`: `/schemas/envelope.json` and
//! `/schemas/events/<routing key>.json`.

use agora_platform::amqp::{self, AmqpConfig};
use agora_platform::events::{
    self, envelope_schema, schema_file, schema_path, source_uri, Envelope, EventType,
    ENVELOPE_SCHEMA_PATH, EVENT_TYPES,
};
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, MethodRouter};
use axum::Router;
use schemars::generate::SchemaSettings;
use schemars::Schema;
use serde_json::{json, Map, Value};

use crate::services;

/// The version of the AMQP bindings the document uses.
const AMQP_BINDING: &str = "0.3.0";

/// Where the payload schemas and the types they share are defined in the
/// document (AsyncAPI's Schema Object is a superset of JSON Schema draft 07).
const SCHEMAS: &str = "/components/schemas";

/// The whole document.
pub fn document() -> Value {
    let names = AmqpConfig::new(crate::service::DEFAULT_AMQP_URL);
    let mut generator = SchemaSettings::draft07()
        .with(|s| s.definitions_path = SCHEMAS.into())
        .into_generator();
    let envelope = generator.subschema_for::<Envelope>();
    let (mut channels, mut operations, mut messages) = (Map::new(), Map::new(), Map::new());
    for event in EVENT_TYPES {
        let data = event.subschema_in(&mut generator);
        messages.insert(event.name.into(), message(event, &envelope, data));
        channels.insert(event.routing_key.into(), channel(event, &names));
        let consumers = services::consumers_of(event.routing_key);
        let sends = send(event, !consumers.is_empty());
        operations.insert(format!("{}-sends-{}", event.source, event.name), sends);
        for consumer in consumers {
            let receives = receive(event, consumer, &names);
            operations.insert(format!("{consumer}-receives-{}", event.name), receives);
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Agora events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The events Agora's services exchange. Each channel is a routing key \
                 (`<entity>.<action>.v<N>`) on the topic exchange `{exchange}`; each message is \
                 a CloudEvents 1.0 envelope in structured mode (the body is the envelope as \
                 JSON), whose `data` is the event's payload and whose `dataschema` is the \
                 absolute URI of that payload's JSON Schema, served by the embedded app and the \
                 gateway at `/{events}` (the envelope's at `/{envelope}`). Names on the broker \
                 carry a prefix (`AGORA_AMQP_PREFIX`, `agora.` by default). The embedded app \
                 carries the same messages on its own durable bus.",
                exchange = names.exchange(),
                events = schema_path("<routing key>"),
                envelope = ENVELOPE_SCHEMA_PATH,
            ),
        },
        "defaultContentType": amqp::CONTENT_TYPE,
        "servers": { "rabbitmq": server() },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": generator.take_definitions(true),
            "messages": messages,
        },
    })
}

/// The document as committed and served: pretty-printed, with a final
/// newline.
pub fn file() -> String {
    serde_json::to_string_pretty(&document()).expect("documents serialise") + "\n"
}

/// The broker, at the distributed mode's default address.
fn server() -> Value {
    let url = reqwest::Url::parse(crate::service::DEFAULT_AMQP_URL).expect("the default URL");
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(5672)
    );
    json!({
        "host": host,
        "protocol": "amqp",
        "protocolVersion": "0.9.1",
        "description": "The distributed mode's RabbitMQ (`AMQP_URL`; this is its default address).",
    })
}

fn reference(pointer: String) -> Value {
    json!({ "$ref": format!("#{pointer}") })
}

/// `/channels/<id>`: a JSON pointer's token, `/` and `~` escaped.
fn channel_pointer(event: &EventType) -> String {
    let id = event.routing_key.replace('~', "~0").replace('/', "~1");
    format!("/channels/{id}")
}

/// A routing key on the events exchange, carrying its one message.
fn channel(event: &EventType, names: &AmqpConfig) -> Value {
    json!({
        "address": event.routing_key,
        "title": event.routing_key,
        "description": format!(
            "`{}` v{}, emitted by {}, published to `{}` with routing key `{}`.",
            event.name, event.version, event.source, names.exchange(), event.routing_key
        ),
        "messages": { event.name: reference(format!("/components/messages/{}", event.name)) },
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": names.exchange(),
                    "type": "topic",
                    "durable": true,
                    "autoDelete": false,
                },
                "bindingVersion": AMQP_BINDING,
            },
        },
    })
}

/// The channel's message, as an operation names it.
fn channel_message(event: &EventType) -> Value {
    reference(format!(
        "{}/messages/{}",
        channel_pointer(event),
        event.name
    ))
}

/// The emitter publishes it persistent, and `mandatory` when some queue is
/// bound to it (one that reaches no queue stays in the outbox).
fn send(event: &EventType, mandatory: bool) -> Value {
    json!({
        "action": "send",
        "title": format!("{} sends {}", event.source, event.name),
        "summary": "Written to the emitter's outbox with the change it records; published once \
                    committed, and marked published once the broker confirmed it.",
        "channel": reference(channel_pointer(event)),
        "messages": [channel_message(event)],
        "bindings": {
            "amqp": {
                "deliveryMode": amqp::DELIVERY_MODE,
                "mandatory": mandatory,
                "bindingVersion": AMQP_BINDING,
            },
        },
    })
}

/// A consuming service reads it from its own queue.
fn receive(event: &EventType, consumer: &str, names: &AmqpConfig) -> Value {
    json!({
        "action": "receive",
        "title": format!("{consumer} receives {}", event.name),
        "summary": format!(
            "From the queue `{queue}`, bound to `{exchange}` with this routing key; \
             acknowledged once the consumer's transaction (with its idempotent inbox) \
             committed; retried with backoff, then moved to `{dlq}`.",
            queue = names.queue(consumer),
            exchange = names.exchange(),
            dlq = names.dead_letter_queue(consumer),
        ),
        "channel": reference(channel_pointer(event)),
        "messages": [channel_message(event)],
        "bindings": { "amqp": { "ack": true, "bindingVersion": AMQP_BINDING } },
    })
}

/// The attributes whose value the event type fixes.
fn fixed_attributes(event: &EventType) -> [(&'static str, Value); 3] {
    [
        ("specversion", events::SPECVERSION.into()),
        ("type", event.name.into()),
        ("source", source_uri(event.source).into()),
    ]
}

/// The envelope, with `data` the event's payload.
fn message(event: &EventType, envelope: &Schema, data: Schema) -> Value {
    let mut fixed: Map<String, Value> = fixed_attributes(event)
        .into_iter()
        .map(|(name, value)| (name.into(), json!({ "const": value })))
        .collect();
    fixed.insert("eventversion".into(), json!({ "const": event.version }));
    fixed.insert(
        "dataschema".into(),
        json!({
            "type": "string",
            "format": "uri",
            "description": format!("`<public URL>/{}`", schema_path(event.routing_key)),
        }),
    );
    fixed.insert("data".into(), data.to_value());
    let mut message = json!({
        "name": event.name,
        "title": format!("{} v{}", event.name, event.version),
        "contentType": amqp::CONTENT_TYPE,
        "headers": headers(event),
        "payload": {
            "allOf": [envelope, { "type": "object", "properties": fixed }],
        },
        "correlationId": {
            "description": "Shared by every event of one business flow (one order's saga).",
            "location": "$message.payload#/correlationid",
        },
        "bindings": { "amqp": { "messageType": event.name, "bindingVersion": AMQP_BINDING } },
    });
    // What the payload type's doc comment says of it.
    if let Some(summary) = event.schema().get("description") {
        message["summary"] = summary.clone();
    }
    message
}

/// The envelope's attributes the publisher repeats as headers.
fn headers(event: &EventType) -> Value {
    let fixed = fixed_attributes(event);
    let properties: Map<String, Value> = amqp::HEADER_ATTRIBUTES
        .iter()
        .map(|name| {
            let value = fixed.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            let schema = match value {
                Some(value) => json!({ "type": "string", "const": value }),
                None => json!({ "type": "string" }),
            };
            (amqp::header_name(name), schema)
        })
        .collect();
    let required: Vec<String> = properties.keys().cloned().collect();
    json!({ "type": "object", "properties": properties, "required": required })
}

/// `/api/asyncapi.json`, `/schemas/envelope.json` and
/// `/schemas/events/<routing key>.json`, each made once.
pub fn router() -> Router {
    let mut router = Router::new()
        .route("/api/asyncapi.json", served("application/json", file()))
        .route(
            &format!("/{ENVELOPE_SCHEMA_PATH}"),
            served("application/schema+json", schema_file(&envelope_schema())),
        );
    for event in EVENT_TYPES {
        let path = format!("/{}", schema_path(event.routing_key));
        let schema = served("application/schema+json", schema_file(&event.schema()));
        router = router.route(&path, schema);
    }
    router
}

fn served(content_type: &'static str, body: String) -> MethodRouter {
    let body = axum::body::Bytes::from(body);
    get(move || async move { ([(CONTENT_TYPE, content_type)], body) })
}
