//! The event contract between services.
//!
//! Every event travels in an [`Envelope`] whose attribute names follow
//! CloudEvents 1.0 (`id`, `type`, `source`, `subject`, `time`, ...) with the
//! extensions `eventversion`, `correlationid`, `causationid` and `traceparent`.
//! The payload (`data`) is one of the typed events below. Each has a routing
//! key `<entity>.<action>.v<N>` and a JSON Schema committed under
//! `schemas/events/`; `tests/it/schemas.rs` fails when the two drift apart.
//! Consumers decode payloads strictly (unknown fields, wrong types and wrong
//! versions are refused), which is the schema check at the consuming edge.
//!
//! An envelope's `dataschema` is the absolute URI of its payload's schema as
//! served by the embedded app and the gateway: the [public URL](public_url)
//! followed by the schema's path in the repository.

use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The CloudEvents version of every envelope.
pub const SPECVERSION: &str = "1.0";

/// A typed domain event.
pub trait DomainEvent: Serialize + DeserializeOwned + JsonSchema + Send + Sync {
    /// CloudEvents `type`: the event's name in the contract (`OrderCreated`).
    const TYPE: &'static str;
    const VERSION: u32;
    /// `<entity>.<action>.v<N>`: what queues bind to.
    const ROUTING_KEY: &'static str;
    /// The service that emits it.
    const SOURCE: &'static str;
    /// CloudEvents `subject`: the order (or product) the event is about.
    fn subject(&self) -> Uuid;
}

/// CloudEvents envelope, JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub specversion: String,
    /// UUID v7: unique and time-ordered.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: String,
    pub datacontenttype: String,
    /// Absolute URI of the JSON Schema of `data`: the public URL and
    /// `/schemas/events/<routing key>.json`. (Events written by earlier
    /// releases hold the relative path `schemas/events/<routing key>.json`.)
    pub dataschema: String,
    /// Version of the `data` schema.
    pub eventversion: u32,
    /// Shared by every event of one business flow (one order's saga).
    pub correlationid: String,
    /// The id of the event that caused this one; absent for a root event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// W3C trace context, carried across services.
    pub traceparent: String,
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} v{expected_version}, got {got} v{got_version}")]
    WrongType {
        expected: &'static str,
        expected_version: u32,
        got: String,
        got_version: u32,
    },
    #[error("payload does not match the {0} schema: {1}")]
    Schema(&'static str, serde_json::Error),
}

impl Envelope {
    /// The first event of a flow: a fresh correlation id, and the trace of
    /// the current span (the request's), or a fresh one.
    pub fn root<E: DomainEvent>(event: &E) -> Envelope {
        Self::build(event, Uuid::now_v7().to_string(), None)
    }

    /// An event emitted while handling `cause`: same correlation and trace.
    pub fn caused_by<E: DomainEvent>(event: &E, cause: &Envelope) -> Envelope {
        Self::build(event, cause.correlationid.clone(), Some(cause))
    }

    fn build<E: DomainEvent>(
        event: &E,
        correlationid: String,
        cause: Option<&Envelope>,
    ) -> Envelope {
        let mut envelope = Envelope {
            specversion: SPECVERSION.into(),
            id: Uuid::now_v7(),
            event_type: E::TYPE.into(),
            source: source_uri(E::SOURCE),
            subject: event.subject().to_string(),
            time: crate::clock::now_rfc3339(),
            datacontenttype: "application/json".into(),
            dataschema: schema_url(E::ROUTING_KEY),
            eventversion: E::VERSION,
            correlationid,
            causationid: cause.map(|c| c.id.to_string()),
            traceparent: String::new(),
            data: serde_json::to_value(event).expect("events serialise"),
        };
        envelope.traceparent = crate::telemetry::publish_traceparent(&envelope, cause);
        envelope
    }

    /// Decodes the payload as `E`, refusing another type, another version or
    /// a payload that does not match `E`'s schema.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        if self.event_type != E::TYPE || self.eventversion != E::VERSION {
            return Err(DecodeError::WrongType {
                expected: E::TYPE,
                expected_version: E::VERSION,
                got: self.event_type.clone(),
                got_version: self.eventversion,
            });
        }
        E::deserialize(&self.data).map_err(|e| DecodeError::Schema(E::TYPE, e))
    }

    /// A context attribute by its CloudEvents name, as text; `None` for an
    /// absent `causationid` or a name that is no attribute.
    pub fn attribute(&self, name: &str) -> Option<String> {
        let text = |s: &String| Some(s.clone());
        match name {
            "specversion" => text(&self.specversion),
            "id" => Some(self.id.to_string()),
            "type" => text(&self.event_type),
            "source" => text(&self.source),
            "subject" => text(&self.subject),
            "time" => text(&self.time),
            "datacontenttype" => text(&self.datacontenttype),
            "dataschema" => text(&self.dataschema),
            "eventversion" => Some(self.eventversion.to_string()),
            "correlationid" => text(&self.correlationid),
            "causationid" => self.causationid.clone(),
            "traceparent" => text(&self.traceparent),
            _ => None,
        }
    }

    /// Whether this envelope carries an `E`.
    pub fn is<E: DomainEvent>(&self) -> bool {
        self.event_type == E::TYPE
    }

    /// The trace this event is part of (from its `traceparent`).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.split('-').nth(1)
    }

    /// The routing key derived from type and version.
    pub fn routing_key(&self) -> Option<&'static str> {
        routing_key_of(&self.event_type, self.eventversion)
    }
}

/// `json` (an envelope) with the secret fields of its event masked
/// ([`crate::secrets::mask`]), or `None` when it holds no secret in clear:
/// what is kept and shown of an event once its secrets have served. A body
/// that is not an envelope is returned as it is.
pub fn redacted(json: &str) -> Option<String> {
    let mut envelope: serde_json::Value = serde_json::from_str(json).ok()?;
    let event_type = envelope.get("type")?.as_str()?.to_owned();
    let data = envelope.get_mut("data")?.as_object_mut()?;
    let mut changed = false;
    for field in secret_fields(&event_type) {
        if let Some(serde_json::Value::String(secret)) = data.get_mut(*field) {
            if !crate::secrets::is_masked(secret) {
                *secret = crate::secrets::mask(secret);
                changed = true;
            }
        }
    }
    changed.then(|| envelope.to_string())
}

/// `envelope` serialised as it is kept once published, its secret fields
/// masked, and the secrets alone (a JSON object, field to value) to put
/// back for the one publish that needs them (`None` when it carries
/// none). The fields are masked in the serialised text, where serde wrote
/// them as `"field":"value"`: no second serialisation, no parse.
pub fn split_secrets(envelope: &Envelope) -> (String, Option<String>) {
    let mut json = serde_json::to_string(envelope).expect("envelopes serialise");
    let mut secrets = serde_json::Map::new();
    for field in secret_fields(&envelope.event_type) {
        let Some(serde_json::Value::String(clear)) = envelope.data.get(*field) else {
            continue;
        };
        if crate::secrets::is_masked(clear) {
            continue;
        }
        let masked = crate::secrets::mask(clear);
        if let Some(replaced) = replace_field(&json, field, clear, &masked) {
            json = replaced;
            secrets.insert((*field).to_owned(), clear.clone().into());
        }
    }
    let secrets = (!secrets.is_empty()).then(|| serde_json::Value::Object(secrets).to_string());
    (json, secrets)
}

/// `json` with the string member `"field":"from"` turned into
/// `"field":"to"`, if it holds it.
fn replace_field(json: &str, field: &str, from: &str, to: &str) -> Option<String> {
    let member = |value: &str| {
        format!(
            "\"{field}\":{}",
            serde_json::to_string(value).expect("strings serialise")
        )
    };
    let needle = member(from);
    let at = json.find(&needle)?;
    let mut out = String::with_capacity(json.len());
    out.push_str(&json[..at]);
    out.push_str(&member(to));
    out.push_str(&json[at + needle.len()..]);
    Some(out)
}

/// The envelope `masked` (JSON, from [`split_secrets`]) with its
/// `secrets` put back.
pub fn with_secrets(masked: &str, secrets: &str) -> Result<String, serde_json::Error> {
    let secrets: serde_json::Map<String, serde_json::Value> = serde_json::from_str(secrets)?;
    let mut json = masked.to_owned();
    for (field, clear) in &secrets {
        let Some(clear) = clear.as_str() else {
            continue;
        };
        let mask = crate::secrets::mask(clear);
        json = match replace_field(&json, field, &mask, clear) {
            Some(restored) => restored,
            // Not where it was written: put it back through a parse.
            None => {
                let mut envelope: serde_json::Value = serde_json::from_str(&json)?;
                if let Some(data) = envelope.get_mut("data").and_then(|d| d.as_object_mut()) {
                    data.insert(field.clone(), clear.into());
                }
                envelope.to_string()
            }
        };
    }
    Ok(json)
}

/// Where an event's JSON Schema lives in the repository, and where it is
/// served under the public URL.
pub fn schema_path(routing_key: &str) -> String {
    format!("schemas/events/{routing_key}.json")
}

/// Where the envelope's JSON Schema lives in the repository, and where it
/// is served under the public URL.
pub const ENVELOPE_SCHEMA_PATH: &str = "schemas/envelope.json";

/// The envelope's JSON Schema.
pub fn envelope_schema() -> Schema {
    schemars::schema_for!(Envelope)
}

/// A schema as its file reads, committed and served: pretty-printed, with
/// a final newline.
pub fn schema_file(schema: &Schema) -> String {
    serde_json::to_string_pretty(schema).expect("schemas serialise") + "\n"
}

/// CloudEvents `source` of the events `service` emits.
pub fn source_uri(service: &str) -> String {
    format!("/agora/{service}")
}

/// Where the embedded app and the gateway listen by default (`--listen`),
/// and so where the schemas are served unless told otherwise.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

static PUBLIC_URL: OnceLock<String> = OnceLock::new();

/// Sets the base URL under which clients reach the schemas (the embedded
/// app's or the gateway's address, as clients see it), once, when the
/// process starts and before any event is built.
///
/// It is a setting of the process rather than an argument of
/// [`Envelope::root`] and [`Envelope::caused_by`]: every service builds
/// its events in its own code, in many places, and none of them has a
/// use for the URL but to write it into `dataschema`. One process serves
/// one deployment, so one value is right for all of them. It refuses a
/// second, different value, and anything but an absolute `http(s)` URL
/// without query or fragment.
pub fn set_public_url(url: &str) -> Result<(), String> {
    let url = checked_public_url(url)?;
    let set = PUBLIC_URL.get_or_init(|| url.clone());
    match *set == url {
        true => Ok(()),
        false => Err(format!("the public URL is {set} already")),
    }
}

/// `url` without a trailing slash, if it can be a public URL.
fn checked_public_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("public URL `{url}`: {e}"))?;
    let plain = parsed.query().is_none() && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() || !plain {
        return Err(format!(
            "public URL `{url}`: expected http(s)://host[:port][/path]"
        ));
    }
    Ok(url.to_owned())
}

/// The public URL ([`set_public_url`]), [`DEFAULT_PUBLIC_URL`] if none was
/// set.
pub fn public_url() -> &'static str {
    PUBLIC_URL.get().map_or(DEFAULT_PUBLIC_URL, String::as_str)
}

/// The absolute URI of an event's JSON Schema: its `dataschema`.
pub fn schema_url(routing_key: &str) -> String {
    format!("{}/{}", public_url(), schema_path(routing_key))
}

/// What the contract says of one event type.
#[derive(Clone, Copy)]
pub struct EventType {
    /// CloudEvents `type`.
    pub name: &'static str,
    pub version: u32,
    pub routing_key: &'static str,
    /// The service that emits it.
    pub source: &'static str,
    root_schema: fn() -> Schema,
    subschema: fn(&mut SchemaGenerator) -> Schema,
}

impl EventType {
    /// The JSON Schema of its payload, standing alone (as in `schemas/`).
    pub fn schema(&self) -> Schema {
        (self.root_schema)()
    }

    /// Its payload's schema made by `generator`: a reference into the
    /// generator's definitions, where the types events share (an address,
    /// money) are defined once for all of them.
    pub fn subschema_in(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.subschema)(generator)
    }
}

fn root_schema<T: JsonSchema>() -> Schema {
    schemars::schema_for!(T)
}

/// Money in integer minor units (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    // The patterns are the API's rule for each field as sent (1 to N
    // characters once trimmed, none of them a control character, a
    // bidirectional override or a line separator; see `validate::text`).
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,198}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub name: String,
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,198}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = "^[\\s\\u0085]*([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,198}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*)?$"
    )]
    pub line2: Option<String>,
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub city: String,
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,18}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    #[schema(pattern = "^[\\s\\u0085]*[A-Z]{2}[\\s\\u0085]*$")]
    pub country: String,
}

/// A product and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// A line of an order, priced by the catalog when the order was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricedItem {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    /// Minor units, in the order's currency.
    pub unit_price: i64,
}

/// A product was added to the catalog with its opening stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductCreated {
    pub product_id: Uuid,
    pub sku: String,
    pub initial_stock: u32,
}

/// A cart was checked out: the order service creates `order_id` from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCheckedOut {
    pub order_id: Uuid,
    pub customer_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub items: Vec<LineItem>,
    pub shipping_address: Address,
    pub payment_token: String,
}

/// A checked-out cart could not become an order (`order_id` is REJECTED):
/// the cart takes its lines back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRejected {
    pub order_id: Uuid,
    pub customer_id: String,
    pub items: Vec<LineItem>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub customer_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub items: Vec<PricedItem>,
    pub total: Money,
    pub shipping_address: Address,
}

/// Every item of the order is reserved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    pub order_id: Uuid,
    pub items: Vec<LineItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shortage {
    pub product_id: Uuid,
    pub requested: u32,
    pub available: i64,
}

/// At least one item could not be reserved; nothing is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRejected {
    pub order_id: Uuid,
    pub reason: String,
    pub shortages: Vec<Shortage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequested {
    pub order_id: Uuid,
    pub customer_id: String,
    pub amount: Money,
    pub payment_token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentSucceeded {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    pub order_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingRequested {
    pub order_id: Uuid,
    /// Whose order it is (absent from events of earlier releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub shipping_address: Address,
    pub items: Vec<LineItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingCreated {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCompleted {
    pub order_id: Uuid,
}

/// The order ends without completing; whoever holds something for it
/// (stock, a payment, a shipment) gives it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    /// For operators and the services: may hold the customer's own words.
    pub reason: String,
    /// Why, as a code: what the customer is told is chosen by it, never
    /// taken from `reason`. (Absent in events written before it existed.)
    #[serde(default)]
    pub code: CancelCode,
}

/// Why an order was cancelled, in words fixed by the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelCode {
    /// The customer asked.
    CustomerRequest,
    /// The stock was not there.
    OutOfStock,
    /// The payment was declined.
    PaymentDeclined,
    /// A step of the saga took too long.
    TimedOut,
    /// The stock reservation outlived its time to live.
    ReservationExpired,
    /// An operator sent the compensation again (the customer was told
    /// already).
    CompensationRetried,
    /// Anything else.
    #[default]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReleased {
    pub order_id: Uuid,
    pub items: Vec<LineItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
}

/// Every event type: routing key and the JSON Schema of its payload.
pub fn event_schemas() -> Vec<(&'static str, Schema)> {
    EVENT_TYPES
        .iter()
        .map(|e| (e.routing_key, e.schema()))
        .collect()
}

/// The event type published with `routing_key`.
pub fn event_type(routing_key: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|e| e.routing_key == routing_key)
}

/// The routing keys of the events `source` emits.
pub fn routing_keys_emitted_by(source: &str) -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .filter(|e| e.source == source)
        .map(|e| e.routing_key)
        .collect()
}

macro_rules! events {
    ($($ty:ident => $source:literal, $key:literal, $version:literal, $subject:ident $(, secret $secret:ident)*;)*) => {
        $(
            impl DomainEvent for $ty {
                const TYPE: &'static str = stringify!($ty);
                const VERSION: u32 = $version;
                const ROUTING_KEY: &'static str = $key;
                const SOURCE: &'static str = $source;
                fn subject(&self) -> Uuid {
                    self.$subject
                }
            }
        )*

        /// Every event type of the contract.
        pub const EVENT_TYPES: &[EventType] = &[$(EventType {
            name: stringify!($ty),
            version: $version,
            routing_key: $key,
            source: $source,
            root_schema: root_schema::<$ty>,
            subschema: SchemaGenerator::subschema_for::<$ty>,
        }),*];

        /// The fields of an event type's payload that hold secrets (a
        /// payment token): kept in clear only while a step needs them.
        pub fn secret_fields(event_type: &str) -> &'static [&'static str] {
            match event_type {
                $(stringify!($ty) => &[$(stringify!($secret)),*],)*
                _ => &[],
            }
        }

        /// The routing keys of the events that carry secrets.
        pub fn routing_keys_with_secrets() -> Vec<&'static str> {
            [$(($key, &[$(stringify!($secret)),*] as &[&str])),*]
                .into_iter()
                .filter(|(_, secrets)| !secrets.is_empty())
                .map(|(key, _)| key)
                .collect()
        }

        /// The payload field an event type's subject is (`order_id` for the
        /// saga's events): what logs and spans call it.
        pub fn subject_field(event_type: &str) -> Option<&'static str> {
            match event_type {
                $(stringify!($ty) => Some(stringify!($subject)),)*
                _ => None,
            }
        }

        /// The event type a routing key carries, or `unknown`: a metric's
        /// label, from a bounded set.
        pub fn type_of(routing_key: &str) -> &'static str {
            match routing_key {
                $($key => stringify!($ty),)*
                _ => "unknown",
            }
        }

        /// The routing key of an event type and version, if it exists.
        pub fn routing_key_of(event_type: &str, version: u32) -> Option<&'static str> {
            match (event_type, version) {
                $((stringify!($ty), $version) => Some($key),)*
                _ => None,
            }
        }
    };
}

events! {
    ProductCreated => "catalog", "product.created.v1", 1, product_id;
    CartCheckedOut => "cart", "cart.checked_out.v1", 1, order_id, secret payment_token;
    CheckoutRejected => "order", "cart.checkout_rejected.v1", 1, order_id;
    OrderCreated => "order", "order.created.v1", 1, order_id;
    StockReserved => "inventory", "stock.reserved.v1", 1, order_id;
    StockRejected => "inventory", "stock.rejected.v1", 1, order_id;
    PaymentRequested => "order", "payment.requested.v1", 1, order_id, secret payment_token;
    PaymentSucceeded => "payment", "payment.succeeded.v1", 1, order_id;
    PaymentFailed => "payment", "payment.failed.v1", 1, order_id;
    ShippingRequested => "order", "shipping.requested.v1", 1, order_id;
    ShippingCreated => "shipping", "shipping.created.v1", 1, order_id;
    OrderCompleted => "order", "order.completed.v1", 1, order_id;
    OrderCancelled => "order", "order.cancelled.v1", 1, order_id;
    StockReleased => "inventory", "stock.released.v1", 1, order_id;
    PaymentRefunded => "payment", "payment.refunded.v1", 1, order_id;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed() -> OrderCompleted {
        OrderCompleted {
            order_id: Uuid::now_v7(),
        }
    }

    #[test]
    fn a_caused_event_keeps_the_correlation_and_trace_and_names_its_cause() {
        let root = Envelope::root(&completed());
        let next = Envelope::caused_by(&completed(), &root);
        assert_eq!(next.correlationid, root.correlationid);
        assert_eq!(next.causationid, Some(root.id.to_string()));
        assert_eq!(
            next.traceparent.split('-').nth(1),
            root.traceparent.split('-').nth(1)
        );
        assert_ne!(next.id, root.id);
        assert_eq!(next.id.get_version_num(), 7);
    }

    #[test]
    fn decode_refuses_another_type_version_or_shape() {
        let mut env = Envelope::root(&completed());
        assert!(env.decode::<OrderCompleted>().is_ok());
        assert!(env.decode::<OrderCancelled>().is_err());

        env.eventversion = 2;
        assert!(matches!(
            env.decode::<OrderCompleted>(),
            Err(DecodeError::WrongType { .. })
        ));

        env.eventversion = 1;
        env.data["unexpected"] = serde_json::json!(1);
        assert!(matches!(
            env.decode::<OrderCompleted>(),
            Err(DecodeError::Schema(..))
        ));
    }

    #[test]
    fn secrets_are_masked_in_redacted_envelopes_and_nothing_else_changes() {
        let requested = Envelope::root(&PaymentRequested {
            order_id: Uuid::now_v7(),
            customer_id: "c".into(),
            amount: Money {
                amount: 100,
                currency: "EUR".into(),
            },
            payment_token: "tok_live_4242".into(),
        });
        let json = serde_json::to_string(&requested).unwrap();
        let masked = redacted(&json).expect("a payment token to mask");
        assert!(!masked.contains("tok_live_4242"));
        let back: Envelope = serde_json::from_str(&masked).unwrap();
        assert_eq!(back.data["payment_token"], "****4242");
        assert_eq!(back.data["customer_id"], "c");
        assert_eq!(back.id, requested.id);
        assert_eq!(redacted(&masked), None, "masked once only");
        let (kept, secrets) = split_secrets(&requested);
        let secrets = secrets.expect("a secret to keep apart");
        let kept_envelope: Envelope = serde_json::from_str(&kept).unwrap();
        assert_eq!(kept_envelope.data["payment_token"], "****4242");
        assert!(!kept.contains("tok_live_4242"));
        assert!(!secrets.contains("customer_id"));
        let whole: Envelope =
            serde_json::from_str(&with_secrets(&kept, &secrets).unwrap()).unwrap();
        assert_eq!(whole, requested);
        // Put back through a parse where the text is not as serde wrote it.
        let spaced = kept.replace("\"payment_token\":", "\"payment_token\": ");
        let whole: Envelope =
            serde_json::from_str(&with_secrets(&spaced, &secrets).unwrap()).unwrap();
        assert_eq!(whole, requested);
        let (plain, none) = split_secrets(&Envelope::root(&completed()));
        assert!(none.is_none() && plain.contains("OrderCompleted"));
        let plain = serde_json::to_string(&Envelope::root(&completed())).unwrap();
        assert_eq!(redacted(&plain), None);
        assert_eq!(redacted("not json"), None);
    }

    #[test]
    fn a_public_url_is_an_absolute_http_url_and_dataschema_is_under_it() {
        assert_eq!(
            checked_public_url("https://shop.example.com/agora/").unwrap(),
            "https://shop.example.com/agora"
        );
        assert!(checked_public_url(DEFAULT_PUBLIC_URL).is_ok());
        for wrong in [
            "",
            "schemas",
            "/agora",
            "ftp://h",
            "http://h/?q=1",
            "http://h/#f",
        ] {
            assert!(checked_public_url(wrong).is_err(), "{wrong}");
        }
        let envelope = Envelope::root(&completed());
        let absolute = reqwest::Url::parse(&envelope.dataschema).unwrap();
        assert_eq!(
            envelope.dataschema,
            format!("{}/schemas/events/order.completed.v1.json", public_url())
        );
        assert!(absolute.has_host());
        assert_eq!(envelope.source, "/agora/order");
    }

    #[test]
    fn routing_keys_follow_entity_action_version() {
        assert_eq!(routing_key_of("OrderCreated", 1), Some("order.created.v1"));
        assert_eq!(routing_key_of("OrderCreated", 9), None);
        for (key, _) in event_schemas() {
            let parts: Vec<_> = key.split('.').collect();
            assert_eq!(parts.len(), 3, "{key}");
            assert!(parts[2].starts_with('v'), "{key}");
        }
    }
}
