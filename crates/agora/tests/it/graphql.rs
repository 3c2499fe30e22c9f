//! GraphQL at `/graphql`: the REST API's own use cases behind another
//! surface. Queries, mutations (validation, idempotency, ownership and
//! roles as in REST), subscriptions over `graphql-transport-ws`, the
//! loader that keeps a page of products with their stock at a constant
//! number of storage reads, the depth and complexity limits, GraphiQL from
//! the binary, and the committed schema (`schema.graphql`; `AGORA_BLESS=1
//! cargo test -p agora --test it graphql` rewrites it). On the embedded app
//! and through the gateway.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::common::cluster::Cluster;
use crate::common::{address, spawn_app, Api, TestApp};

/// One GraphQL answer: its HTTP status, `data` and `errors`.
struct Answer {
    status: u16,
    data: Value,
    errors: Vec<Value>,
}

impl Answer {
    /// The data of an answer without errors.
    #[track_caller]
    fn ok(self) -> Value {
        assert_eq!(self.status, 200);
        assert!(self.errors.is_empty(), "{:?}", self.errors);
        self.data
    }

    /// The one error's `extensions.code`, the field left `null`.
    #[track_caller]
    fn refused(&self) -> &Value {
        assert_eq!(self.status, 200);
        assert_eq!(self.errors.len(), 1, "{:?}", self.errors);
        &self.errors[0]
    }

    #[track_caller]
    fn code(&self) -> &str {
        self.refused()["extensions"]["code"].as_str().unwrap()
    }
}

async fn graphql(api: &Api, query: &str, variables: Value) -> Answer {
    let r = api
        .post_json(
            "/graphql",
            &json!({ "query": query, "variables": variables }),
        )
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    Answer {
        status,
        data: body["data"].clone(),
        errors: body["errors"].as_array().cloned().unwrap_or_default(),
    }
}

const PAGE: &str = "query Page($first: Int!, $after: ID) {
  products(first: $first, after: $after) {
    items { id sku name price { amount currency } stock { available reserved sold } }
    next
  }
}";

const PLACE: &str = "mutation Place($input: PlaceOrderInput!, $key: String) {
  placeOrder(input: $input, idempotencyKey: $key) { id status total { amount currency } items { productId quantity } }
}";

fn order_input(product: Uuid, quantity: i64, token: &str) -> Value {
    let a = address();
    json!({
        "email": "ada@example.com",
        "items": [{ "productId": product, "quantity": quantity }],
        "shippingAddress": {
            "name": a["name"], "line1": a["line1"], "city": a["city"],
            "postalCode": a["postal_code"], "country": a["country"]
        },
        "paymentToken": token,
    })
}

/// Every storage read the app's services have run.
fn reads(app: &TestApp) -> u64 {
    app.dbs.iter().map(|s| s.db.reads()).sum()
}

/// What one request costs the storage: the fewest reads of a few runs
/// (the background work reads too, now and then).
async fn reads_of<F, Fut>(app: &TestApp, request: F) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut fewest = u64::MAX;
    for _ in 0..5 {
        let before = reads(app);
        request().await;
        fewest = fewest.min(reads(app) - before);
    }
    fewest
}

#[tokio::test]
async fn a_page_of_products_with_their_stock_costs_the_same_reads_whatever_its_size() {
    let app = spawn_app().await;
    for _ in 0..50 {
        app.new_product(1_000, "EUR", 7).await;
    }
    app.eventually(|| async { app.list("/api/v1/inventory?limit=100").await.len() >= 62 })
        .await;
    let anonymous = app.anonymous();

    let page_of = |first: i64| {
        let anonymous = anonymous.clone();
        move || {
            let anonymous = anonymous.clone();
            async move {
                graphql(&anonymous, PAGE, json!({ "first": first }))
                    .await
                    .ok();
            }
        }
    };
    let five = reads_of(&app, page_of(5)).await;
    let fifty = reads_of(&app, page_of(50)).await;
    let rest = reads_of(&app, || async {
        assert_eq!(
            anonymous.get("/api/v1/products?limit=50").await.status(),
            200
        );
    })
    .await;
    let page = graphql(&anonymous, PAGE, json!({ "first": 50 })).await.ok();

    assert_eq!(five, fifty, "the reads grow with the page");
    // The products, then the stock of all of them at once; REST's listing
    // alone is the first of the two.
    assert_eq!(fifty, 2);
    assert_eq!(rest, 1);
    let items = page["products"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for item in items {
        let rest = app
            .stock(item["id"].as_str().unwrap().parse().unwrap())
            .await;
        assert_eq!(item["stock"]["available"], rest["available"]);
        assert_eq!(item["stock"]["sold"], rest["sold"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_product_has_its_price_and_live_stock_and_an_unknown_one_is_null() {
    let app = spawn_app().await;
    let product = app.create_product(2_500, 9).await;
    let query = "query($id: ID!) { product(id: $id) { sku price { amount currency } stock { available reserved sold } } }";

    let known = graphql(&app.anonymous(), query, json!({ "id": product }))
        .await
        .ok();
    let unknown = graphql(&app.anonymous(), query, json!({ "id": Uuid::now_v7() }))
        .await
        .ok();
    let malformed = graphql(&app.anonymous(), query, json!({ "id": "not-an-id" })).await;

    assert_eq!(
        known["product"]["price"],
        json!({ "amount": 2500, "currency": "EUR" })
    );
    assert_eq!(
        known["product"]["stock"],
        json!({ "available": 9, "reserved": 0, "sold": 0 })
    );
    assert_eq!(unknown["product"], Value::Null);
    assert_eq!(malformed.code(), "BAD_USER_INPUT");
    assert_eq!(malformed.refused()["extensions"]["status"], 400);
    app.stop().await;
}

#[tokio::test]
async fn an_order_placed_through_graphql_is_the_same_order_rest_shows() {
    let app = spawn_app().await;
    let product = app.create_product(1_200, 10).await;
    let ada = app.customer("ada").await;
    let input = order_input(product, 2, "tok_visa");

    let placed = graphql(&ada, PLACE, json!({ "input": input, "key": "gq-1" }))
        .await
        .ok();
    let again = graphql(&ada, PLACE, json!({ "input": input, "key": "gq-1" }))
        .await
        .ok();
    let other_body = graphql(
        &ada,
        PLACE,
        json!({ "input": order_input(product, 3, "tok_visa"), "key": "gq-1" }),
    )
    .await;

    let id: Uuid = placed["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(again["placeOrder"]["id"], placed["placeOrder"]["id"]);
    assert_eq!(other_body.refused()["extensions"]["status"], 422);
    assert_eq!(placed["placeOrder"]["total"]["amount"], 2_400);
    assert_eq!(ada.own_orders().await, vec![id]);
    app.terminal(id).await;
    let query = "query($id: ID!) { order(id: $id) {
        status items { sku quantity unitPrice } timeline { from to cause }
        payment { status amount { amount } } shipment { carrier trackingNumber }
        notifications { channel kind } } }";
    let seen = graphql(&ada, query, json!({ "id": id })).await.ok();
    let rest = ada.order(id).await;
    let order = &seen["order"];
    assert_eq!(order["status"], "COMPLETED");
    assert_eq!(
        order["timeline"].as_array().unwrap().len(),
        rest["timeline"].as_array().unwrap().len()
    );
    assert_eq!(order["payment"]["status"], "CAPTURED");
    assert_eq!(order["payment"]["amount"]["amount"], 2_400);
    assert!(!order["shipment"]["trackingNumber"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(order["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "ORDER_SHIPPED"));
    // A shipped order cannot be cancelled, as in REST.
    let cancel =
        "mutation($id: ID!) { cancelOrder(id: $id, reason: \"changed my mind\") { status } }";
    let late = graphql(&ada, cancel, json!({ "id": id })).await;
    assert_eq!(late.code(), "CONFLICT");
    // Another customer does not see it; an operator does, with filters.
    let bob = app.customer("bob").await;
    let hidden = graphql(&bob, query, json!({ "id": id })).await.ok();
    assert_eq!(hidden["order"], Value::Null);
    let list = "query($s: OrderStatus) { orders(status: $s, first: 100) { items { id status } } }";
    let bobs = graphql(&bob, list, json!({})).await.ok();
    assert_eq!(bobs["orders"]["items"], json!([]));
    let operator = app
        .signed_in(("operator@example.com", "demo-operator-password"))
        .await;
    let completed = graphql(&operator, list, json!({ "s": "COMPLETED" }))
        .await
        .ok();
    assert!(completed["orders"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == id.to_string()));
    let pending = graphql(&operator, list, json!({ "s": "PENDING" }))
        .await
        .ok();
    assert!(!pending["orders"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == id.to_string()));
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_per_field_as_rest_refuses_it_and_changes_nothing() {
    let app = spawn_app().await;
    let product = app.create_product(1_200, 10).await;
    let ada = app.customer("ada").await;
    let mut input = order_input(product, 0, "tok_visa");
    input["email"] = json!("not an email");

    let refused = graphql(&ada, PLACE, json!({ "input": input })).await;
    let wrong_type = graphql(&ada, PLACE, json!({ "input": { "email": 5 } })).await;
    // What no HTTP client could send as a header is the REST refusal of a
    // malformed key; an Int beyond 32 bits is the caller's too.
    let bad_key = graphql(
        &ada,
        PLACE,
        json!({ "input": order_input(product, 1, "tok_visa"), "key": "k\u{7}" }),
    )
    .await;
    let too_big = graphql(
        &ada,
        "{ products(first: 10, offset: 2147483648) { limit } }",
        json!({}),
    )
    .await;

    let error = refused.refused();
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(error["extensions"]["status"], 422);
    let fields: Vec<&str> = error["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"email"), "{fields:?}");
    assert!(fields.iter().any(|f| f.contains("quantity")), "{fields:?}");
    assert_eq!(refused.data, Value::Null);
    // GraphQL's own validation refuses a mistyped variable before anything runs.
    assert!(!wrong_type.errors.is_empty());
    for refused in [&bad_key, &too_big] {
        assert_eq!(refused.code(), "BAD_USER_INPUT");
        assert_eq!(refused.refused()["extensions"]["status"], 400);
    }
    assert!(ada.own_orders().await.is_empty());
    assert_eq!(app.stock(product).await["available"], 10);
    app.stop().await;
}

#[tokio::test]
async fn roles_and_tokens_apply_as_in_rest() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 5).await;
    let create = "mutation($input: NewProductInput!) { createProduct(input: $input) { id sku } }";
    let adjust = "mutation($id: ID!) { adjustStock(productId: $id, delta: 3, reason: \"recount\") { available adjusted } }";
    let new_product = json!({ "input": {
        "name": "Desk lamp", "sku": "LAMP-GQ-1", "price": { "amount": 4500, "currency": "EUR" }, "initialStock": 4 } });
    let ada = app.customer("ada").await;

    let anonymous = graphql(
        &app.anonymous(),
        PLACE,
        json!({ "input": order_input(product, 1, "tok_visa") }),
    )
    .await;
    let customer = graphql(&ada, create, new_product.clone()).await;
    let admin = graphql(&app, create, new_product).await.ok();
    let adjusted = graphql(&app, adjust, json!({ "id": product })).await.ok();
    let forged = app
        .with_token("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
        .post_json("/graphql", &json!({ "query": "{ cart { customerId } }" }))
        .await;

    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    assert_eq!(customer.code(), "FORBIDDEN");
    assert_eq!(admin["createProduct"]["sku"], "LAMP-GQ-1");
    assert_eq!(
        adjusted["adjustStock"],
        json!({ "available": 8, "adjusted": 3 })
    );
    assert_eq!(forged.status(), 401);
    assert_eq!(forged.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

#[tokio::test]
async fn the_cart_is_filled_emptied_and_checked_out() {
    let app = spawn_app().await;
    let keyboard = app.create_product(8_900, 10).await;
    let mouse = app.create_product(3_900, 10).await;
    let ada = app.customer("ada").await;
    let add = "mutation($p: ID!, $q: Int!) { addToCart(productId: $p, quantity: $q) { items { productId quantity } total { amount } } }";
    let remove = "mutation($p: ID!) { removeFromCart(productId: $p) { items { productId } total { amount } } }";
    let checkout = "mutation($input: CheckoutInput!) { checkout(input: $input) { orderId } }";
    let a = address();
    let shipping = json!({ "name": a["name"], "line1": a["line1"], "city": a["city"], "postalCode": a["postal_code"], "country": a["country"] });

    graphql(&ada, add, json!({ "p": keyboard, "q": 1 }))
        .await
        .ok();
    let both = graphql(&ada, add, json!({ "p": mouse, "q": 2 })).await.ok();
    let one = graphql(&ada, remove, json!({ "p": mouse })).await.ok();
    let too_many = graphql(&ada, add, json!({ "p": mouse, "q": 5_000 })).await;
    let out = graphql(
        &ada,
        checkout,
        json!({ "input": { "email": "ada@example.com", "shippingAddress": shipping, "paymentToken": "tok_visa" } }),
    )
    .await
    .ok();

    assert_eq!(both["addToCart"]["total"]["amount"], 8_900 + 2 * 3_900);
    assert_eq!(one["removeFromCart"]["total"]["amount"], 8_900);
    assert_eq!(too_many.code(), "BAD_USER_INPUT");
    let order: Uuid = out["checkout"]["orderId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let done = app.terminal(order).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["items"].as_array().unwrap().len(), 1);
    let cart = graphql(&ada, "{ cart { items { productId } } }", json!({}))
        .await
        .ok();
    assert_eq!(cart["cart"]["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn queries_too_deep_or_too_costly_are_refused_and_introspection_is_on() {
    let app = spawn_app().await;
    // The standard introspection query's deepest path is 15 (nine ofType).
    let nested = |of_types: usize| {
        let open = "{ ofType ".repeat(of_types);
        let close = " }".repeat(of_types);
        format!(
            "{{ __schema {{ types {{ fields {{ args {{ type {open}{{ name }}{close} }} }} }} }} }}"
        )
    };
    let introspection = graphql(&app, &nested(9), json!({})).await;
    let deep = nested(10);
    let deep = deep.as_str();
    let page = "products(first: 500) { items { id sku name description createdAt price { amount currency } stock { available reserved sold initial adjusted } } }";
    let costly = format!("{{ a: {page} b: {page} c: {page} }}");

    let too_deep = graphql(&app, deep, json!({})).await;
    let too_costly = graphql(&app, &costly, json!({})).await;
    let one_page = graphql(&app, &format!("{{ {page} }}"), json!({}))
        .await
        .ok();
    let schema = graphql(
        &app,
        "{ __schema { mutationType { fields { name } } subscriptionType { fields { name } } } }",
        json!({}),
    )
    .await
    .ok();

    // The standard introspection query's depth is accepted.
    introspection.ok();
    assert!(
        too_deep.errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{:?}",
        too_deep.errors
    );
    assert!(
        too_costly.errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{:?}",
        too_costly.errors
    );
    assert_eq!(one_page["products"]["items"].as_array().unwrap().len(), 12);
    let names = |kind: &str| -> Vec<String> {
        schema["__schema"][kind]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for mutation in [
        "placeOrder",
        "cancelOrder",
        "addToCart",
        "removeFromCart",
        "checkout",
        "createProduct",
        "adjustStock",
    ] {
        assert!(
            names("mutationType").contains(&mutation.to_owned()),
            "{mutation}"
        );
    }
    assert_eq!(names("subscriptionType"), ["orderStatus", "stockLevel"]);
    app.stop().await;
}

/// A `graphql-transport-ws` client: connected, acknowledged, subscribed.
struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    async fn open(api: &Api, query: &str, variables: Value) -> Result<Subscription, String> {
        let url = format!("{}/graphql", api.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = match &api.token {
            Some(token) => {
                json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })
            }
            None => json!({ "type": "connection_init", "payload": {} }),
        };
        socket.send(Message::text(init.to_string())).await.unwrap();
        let mut subscription = Subscription { socket };
        match subscription.next().await {
            Some(ack) if ack["type"] == "connection_ack" => {}
            other => return Err(format!("{other:?}")),
        }
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        subscription
            .socket
            .send(Message::text(subscribe.to_string()))
            .await
            .unwrap();
        Ok(subscription)
    }

    /// The next message, or `None` once the server closed the socket.
    async fn next(&mut self) -> Option<Value> {
        let wait = std::time::Duration::from_secs(30);
        loop {
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .expect("a message within 30 s");
            match message {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The payloads of `next` messages until `complete`.
    async fn until_complete(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(message) = self.next().await {
            match message["type"].as_str() {
                Some("next") => seen.push(message["payload"].clone()),
                Some("complete") => return seen,
                _ => panic!("{message}"),
            }
        }
        panic!("closed before complete: {seen:?}");
    }
}

const FOLLOW: &str = "subscription($id: ID!) { orderStatus(id: $id) { status from cause final } }";

/// A customer follows an order from its creation to its end; the changes
/// are the timeline's, in order, and the stream ends with the last.
async fn an_order_is_followed_to_its_end(api: &Api) {
    let product = api.create_product(1_500, 10).await;
    let ada = api.customer("ada").await;
    let placed = graphql(
        &ada,
        PLACE,
        json!({ "input": order_input(product, 1, "tok_visa") }),
    )
    .await
    .ok();
    let id = placed["placeOrder"]["id"].as_str().unwrap().to_owned();

    let mut follow = Subscription::open(&ada, FOLLOW, json!({ "id": id }))
        .await
        .unwrap();
    let changes = follow.until_complete().await;

    let statuses: Vec<&str> = changes
        .iter()
        .map(|c| c["data"]["orderStatus"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PENDING", "RESERVED", "PAID", "COMPLETED"]);
    let finals: Vec<bool> = changes
        .iter()
        .map(|c| c["data"]["orderStatus"]["final"].as_bool().unwrap())
        .collect();
    assert_eq!(finals, [false, false, false, true]);
    // Another customer's order cannot be followed.
    let bob = api.customer("bob").await;
    let mut refused = Subscription::open(&bob, FOLLOW, json!({ "id": id }))
        .await
        .unwrap();
    let answers = refused.until_complete().await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["data"], Value::Null);
    assert_eq!(answers[0]["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

/// Stock levels are pushed as they change.
async fn stock_levels_are_pushed(api: &Api) {
    let product = api.create_product(1_000, 10).await;
    let query = "subscription($id: ID!) { stockLevel(productId: $id) { available adjusted } }";
    let mut levels = Subscription::open(&api.anonymous(), query, json!({ "id": product }))
        .await
        .unwrap();

    let now = levels.next().await.unwrap();
    let r = api
        .post_json(
            &format!("/api/v1/inventory/{product}/adjust"),
            &json!({ "delta": 5, "reason": "delivery" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let after = levels.next().await.unwrap();

    assert_eq!(
        now["payload"]["data"]["stockLevel"],
        json!({ "available": 10, "adjusted": 0 })
    );
    assert_eq!(
        after["payload"]["data"]["stockLevel"],
        json!({ "available": 15, "adjusted": 5 })
    );
}

#[tokio::test]
async fn subscriptions_push_an_orders_changes_and_stock_levels() {
    let app = spawn_app().await;
    an_order_is_followed_to_its_end(&app).await;
    stock_levels_are_pushed(&app).await;
    // A forged token is refused at connection_init.
    let forged = app.with_token("eyJhbGciOiJFZERTQSJ9.e30.AAAA");
    assert!(
        Subscription::open(&forged, FOLLOW, json!({ "id": Uuid::now_v7() }))
            .await
            .is_err()
    );
    app.stop().await;
}

/// GraphiQL is served from the binary: the page and its scripts load
/// nothing from another origin, under a policy without inline code.
async fn graphiql_is_served_from_the_binary(api: &Api) {
    let page = api
        .client
        .get(api.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let sources: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .chain(html.split("href=\"").skip(1))
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(sources.len() >= 5, "{sources:?}");
    for source in &sources {
        assert!(source.starts_with('/'), "{source} is not of this origin");
        if source.starts_with("/graphql/assets/") {
            let r = api.get(source).await;
            assert_eq!(r.status(), 200, "{source}");
            let text = r.text().await.unwrap();
            for foreign in ["//unpkg.com", "//cdn.", "//fonts.googleapis", "//esm.sh"] {
                assert!(!text.contains(foreign), "{source} loads {foreign}");
            }
        }
    }
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code"
    );
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let generated = agora_graphql::sdl();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql");
    if std::env::var("AGORA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql drifted from the code (AGORA_BLESS=1 cargo test -p agora --test it graphql rewrites it)"
    );
}

#[tokio::test]
async fn graphiql_on_the_embedded_app() {
    let app = spawn_app().await;
    graphiql_is_served_from_the_binary(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn graphql_through_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    let page = graphql(&cluster.anonymous(), PAGE, json!({ "first": 50 }))
        .await
        .ok();
    assert!(page["products"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["stock"]["available"].is_i64()));
    an_order_is_followed_to_its_end(&cluster).await;
    stock_levels_are_pushed(&cluster).await;
    graphiql_is_served_from_the_binary(&cluster).await;
    cluster.stop().await;
}
