//! Who may call what: every route of the public API × {anonymous, customer
//! A, customer B, operator, admin} → the status each gets, on the embedded
//! app and through the gateway in front of separate service processes.
//!
//! The table is checked against the routes the code declares (every
//! `.route(…)` of every router the processes serve): a route added
//! without a row here fails the test, and so does a row for a route that
//! no longer exists.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::cluster::Cluster;
use crate::common::{address, order_body, spawn_app, Api};

/// The routers every process kind serves, as written. The contract's
/// documents (`openapi.rs` and `asyncapi.rs`: `/api/openapi.json`, `/docs`,
/// `/api/asyncapi.json`, `/schemas/…`) are public files, not operations:
/// they are not among them, and their own tests fetch them without a token.
const SOURCES: [&str; 12] = [
    include_str!("../../../catalog/src/api.rs"),
    include_str!("../../../inventory/src/api.rs"),
    include_str!("../../../cart/src/api.rs"),
    include_str!("../../../order/src/api.rs"),
    include_str!("../../../payment/src/api.rs"),
    include_str!("../../../shipping/src/api.rs"),
    include_str!("../../../notification/src/api.rs"),
    include_str!("../../../identity/src/api.rs"),
    include_str!("../../src/admin.rs"),
    include_str!("../../src/host/mod.rs"),
    include_str!("../../src/host/health.rs"),
    include_str!("../../src/host/status.rs"),
];

/// Every (method, path template) a `.route("…", get(…).post(…))` declares.
pub(crate) fn declared_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for source in SOURCES {
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("a closed .route(");
            let args = &call[..end];
            let open = args.find('"').expect("a path literal");
            let close = open + 1 + args[open + 1..].find('"').unwrap();
            let path = &args[open + 1..close];
            let handlers = &args[close..];
            for method in ["get", "post", "put", "patch", "delete"] {
                let found = handlers
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric());
                if found {
                    routes.insert((method.to_uppercase(), path.to_owned()));
                }
            }
            rest = &call[end..];
        }
    }
    routes
}

/// What the rows act on.
struct Fixture {
    product: Uuid,
    /// Customer A's completed order.
    order: Uuid,
    customer_a: String,
}

/// One row: a request, and the status each caller gets, in the order
/// anonymous, customer A, customer B, operator, admin.
struct Row {
    method: &'static str,
    template: &'static str,
    path: String,
    body: fn(&Fixture) -> Option<Value>,
    expect: [u16; 5],
}

fn none(_: &Fixture) -> Option<Value> {
    None
}

fn fresh_email() -> String {
    format!("a-{}@example.test", Uuid::now_v7().simple())
}

fn table(f: &Fixture) -> Vec<Row> {
    let (p, o, a) = (f.product, f.order, &f.customer_a);
    let row = |method, template, path: String, body, expect| Row {
        method,
        template,
        path,
        body,
        expect,
    };
    vec![
        row("GET", "/health", "/health".into(), none, [200; 5]),
        row("GET", "/ready", "/ready".into(), none, [200; 5]),
        // Catalog and stock: public; products and stock changes: admins.
        row(
            "GET",
            "/api/v1/products",
            "/api/v1/products".into(),
            none,
            [200; 5],
        ),
        row(
            "GET",
            "/api/v1/products/{id}",
            format!("/api/v1/products/{p}"),
            none,
            [200; 5],
        ),
        row(
            "POST",
            "/api/v1/products",
            "/api/v1/products".into(),
            |_| {
                Some(
                    json!({ "name": "Row", "sku": format!("ROW-{}", Uuid::now_v7().simple()).to_uppercase(),
                              "price": { "amount": 100, "currency": "EUR" }, "initial_stock": 1 }),
                )
            },
            [401, 403, 403, 403, 201],
        ),
        row(
            "GET",
            "/api/v1/inventory",
            "/api/v1/inventory".into(),
            none,
            [200; 5],
        ),
        row(
            "GET",
            "/api/v1/inventory/{product_id}",
            format!("/api/v1/inventory/{p}"),
            none,
            [200; 5],
        ),
        row(
            "GET",
            "/api/v1/inventory/reservations",
            "/api/v1/inventory/reservations".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "POST",
            "/api/v1/inventory/{product_id}/adjust",
            format!("/api/v1/inventory/{p}/adjust"),
            |_| Some(json!({ "delta": 1, "reason": "recount" })),
            [401, 403, 403, 403, 200],
        ),
        // Carts: the caller's own, named `me` or by its id; anyone else's
        // is not found, for operators too.
        row(
            "GET",
            "/api/v1/carts/{customer_id}",
            "/api/v1/carts/me".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/carts/{customer_id}",
            format!("/api/v1/carts/{a}"),
            none,
            [401, 200, 404, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/carts/{customer_id}/items",
            format!("/api/v1/carts/{a}/items"),
            |f| Some(json!({ "product_id": f.product, "quantity": 1 })),
            [401, 200, 404, 404, 404],
        ),
        row(
            "PUT",
            "/api/v1/carts/{customer_id}/items/{product_id}",
            format!("/api/v1/carts/{a}/items/{p}"),
            |_| Some(json!({ "quantity": 2 })),
            [401, 200, 404, 404, 404],
        ),
        row(
            "DELETE",
            "/api/v1/carts/{customer_id}/items/{product_id}",
            format!("/api/v1/carts/{a}/items/{p}"),
            none,
            [401, 200, 404, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/carts/{customer_id}/checkout",
            format!("/api/v1/carts/{a}/checkout"),
            |_| {
                Some(
                    json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" }),
                )
            },
            // A's cart is empty again: refused (409: the cart's state), for
            // its owner alone.
            [401, 409, 404, 404, 404],
        ),
        // Orders: anyone signed in orders for itself and sees its own;
        // operators see and act on every one.
        row(
            "POST",
            "/api/v1/orders",
            "/api/v1/orders".into(),
            |f| Some(order_body(f.product, 1, "tok_visa")),
            [401, 201, 201, 201, 201],
        ),
        row(
            "GET",
            "/api/v1/orders",
            "/api/v1/orders".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/orders/stats",
            "/api/v1/orders/stats".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/orders/{id}",
            format!("/api/v1/orders/{o}"),
            none,
            [401, 200, 404, 200, 200],
        ),
        row(
            "POST",
            "/api/v1/orders/{id}/cancel",
            format!("/api/v1/orders/{o}/cancel"),
            none,
            // Completed: too late to cancel, for whoever may try.
            [401, 409, 404, 409, 409],
        ),
        row(
            "POST",
            "/api/v1/orders/{id}/retry-compensation",
            format!("/api/v1/orders/{o}/retry-compensation"),
            none,
            [401, 403, 403, 409, 409],
        ),
        row(
            "POST",
            "/api/v1/orders/{id}/force-cancel",
            format!("/api/v1/orders/{o}/force-cancel"),
            none,
            [401, 403, 403, 409, 409],
        ),
        row(
            "GET",
            "/api/v1/payments",
            "/api/v1/payments".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/shipments",
            "/api/v1/shipments".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/notifications",
            "/api/v1/notifications".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        // Operations.
        row(
            "GET",
            "/api/v1/admin/queues",
            "/api/v1/admin/queues".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        // What each service's host tells operators (the gateway joins them).
        row(
            "GET",
            "/api/v1/admin/outbox",
            "/api/v1/admin/outbox".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/admin/events",
            format!("/api/v1/admin/events?subject={o}"),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/admin/breakers",
            "/api/v1/admin/breakers".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/admin/dead-letters",
            "/api/v1/admin/dead-letters".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/admin/dead-letters/{service}/{event_id}",
            format!("/api/v1/admin/dead-letters/inventory/{}", Uuid::now_v7()),
            none,
            [401, 403, 403, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/admin/dead-letters/replay",
            "/api/v1/admin/dead-letters/replay?service=inventory&dry_run=true".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        row(
            "POST",
            "/api/v1/admin/dead-letters/purge",
            "/api/v1/admin/dead-letters/purge?service=inventory&dry_run=true".into(),
            none,
            [401, 403, 403, 200, 200],
        ),
        // Identity: signing up and in is for anyone; accounts for admins.
        row(
            "POST",
            "/api/v1/auth/register",
            "/api/v1/auth/register".into(),
            |_| {
                Some(
                    json!({ "email": fresh_email(), "password": "a long password", "name": "Row" }),
                )
            },
            [201; 5],
        ),
        row(
            "POST",
            "/api/v1/auth/token",
            "/api/v1/auth/token".into(),
            |_| {
                Some(json!({ "email": "shopper@example.com", "password": "demo-shopper-password" }))
            },
            [200; 5],
        ),
        row(
            "POST",
            "/api/v1/auth/refresh",
            "/api/v1/auth/refresh".into(),
            |_| Some(json!({ "refresh_token": "not-a-refresh-token" })),
            [401; 5],
        ),
        row(
            "POST",
            "/api/v1/auth/logout",
            "/api/v1/auth/logout".into(),
            |_| Some(json!({ "refresh_token": "not-a-refresh-token" })),
            [204; 5],
        ),
        row(
            "GET",
            "/api/v1/me",
            "/api/v1/me".into(),
            none,
            [401, 200, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/v1/admin/users",
            "/api/v1/admin/users".into(),
            none,
            [401, 403, 403, 403, 200],
        ),
        row(
            "POST",
            "/api/v1/admin/users",
            "/api/v1/admin/users".into(),
            |_| {
                Some(
                    json!({ "email": fresh_email(), "password": "a long password", "name": "Row", "role": "operator" }),
                )
            },
            [401, 403, 403, 403, 201],
        ),
        row(
            "GET",
            "/api/v1/admin/users/{id}",
            format!("/api/v1/admin/users/{a}"),
            none,
            [401, 403, 403, 403, 200],
        ),
        row(
            "PATCH",
            "/api/v1/admin/users/{id}",
            format!("/api/v1/admin/users/{a}"),
            |_| Some(json!({ "disabled": false })),
            [401, 403, 403, 403, 200],
        ),
        row(
            "GET",
            "/.well-known/jwks.json",
            "/.well-known/jwks.json".into(),
            none,
            [200; 5],
        ),
    ]
}

const CALLERS: [&str; 5] = ["anonymous", "customer A", "customer B", "operator", "admin"];

/// Runs every row as every caller; `admin` is the admin's API.
async fn every_route_answers_each_role_as_the_table_says(admin: &Api) {
    let product = admin.create_product(1_000, 1_000).await;
    let a = admin.customer("A").await;
    let order = a.place_order(&order_body(product, 1, "tok_visa")).await;
    assert_eq!(admin.terminal(order).await["status"], "COMPLETED");
    let fixture = Fixture {
        product,
        order,
        customer_a: admin.customer_id("A").await,
    };
    let operator = admin
        .signed_in(("operator@example.com", "demo-operator-password"))
        .await;
    let callers = [
        admin.anonymous(),
        a,
        admin.customer("B").await,
        operator,
        admin.clone(),
    ];

    let rows = table(&fixture);
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    let declared = declared_routes();
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    let gone: Vec<_> = covered.difference(&declared).collect();
    assert!(
        gone.is_empty(),
        "rows for routes that do not exist: {gone:?}"
    );

    let mut wrong = Vec::new();
    for row in &rows {
        for (i, caller) in callers.iter().enumerate() {
            let method = reqwest::Method::from_bytes(row.method.as_bytes()).unwrap();
            let mut request = caller.client.request(method, caller.url(&row.path));
            if let Some(body) = (row.body)(&fixture) {
                request = request.json(&body);
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            if status == 401 {
                assert!(
                    r.headers().contains_key("www-authenticate")
                        || row.template.starts_with("/api/v1/auth/"),
                    "{} {} as {}: a 401 without WWW-Authenticate",
                    row.method,
                    row.path,
                    CALLERS[i]
                );
            }
            if status != row.expect[i] {
                let body = r.text().await.unwrap_or_default();
                wrong.push(format!(
                    "{} {} as {}: {status}, expected {} ({body})",
                    row.method, row.path, CALLERS[i], row.expect[i]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What a customer may see of the lists is its own: B sees nothing of A's
/// order, A sees it, an operator sees it.
async fn listings_hold_only_what_the_caller_may_see(admin: &Api) {
    let product = admin.create_product(1_000, 100).await;
    let (a, b) = (
        admin.customer("lister-A").await,
        admin.customer("lister-B").await,
    );
    let order = a.place_order(&order_body(product, 1, "tok_visa")).await;
    admin.terminal(order).await;
    admin
        .eventually(|| async {
            admin
                .list(&format!("/api/v1/notifications?order_id={order}"))
                .await
                .len()
                >= 3
        })
        .await;
    let holds = |list: Value| list.to_string().contains(&order.to_string());
    for path in [
        "/api/v1/orders?limit=500".to_owned(),
        format!("/api/v1/payments?order_id={order}"),
        format!("/api/v1/shipments?order_id={order}"),
        format!("/api/v1/notifications?order_id={order}"),
    ] {
        assert!(holds(a.get_json(&path).await), "A's own {path}");
        assert!(!holds(b.get_json(&path).await), "B sees A's {path}");
        assert!(holds(admin.get_json(&path).await), "an admin sees {path}");
    }
    // A customer's order listing is its own, whatever it filters by.
    let id_a = admin.customer_id("lister-A").await;
    let asked = b
        .get_json(&format!("/api/v1/orders?customer_id={id_a}"))
        .await;
    assert!(!holds(asked));
    // A body that names another customer is refused, naming the field.
    let mut body = order_body(product, 1, "tok_visa");
    body["customer_id"] = json!(id_a);
    let r = b.post_json("/api/v1/orders", &body).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "customer_id");
}

#[tokio::test]
async fn every_route_and_role_on_the_embedded_app() {
    let app = spawn_app().await;
    every_route_answers_each_role_as_the_table_says(&app).await;
    listings_hold_only_what_the_caller_may_see(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn every_route_and_role_through_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    every_route_answers_each_role_as_the_table_says(&cluster).await;
    listings_hold_only_what_the_caller_may_see(&cluster).await;
    cluster.stop().await;
}

/// A service reached on its own port, not through the gateway, answers
/// the same: it verifies tokens and roles itself.
#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn a_service_on_its_own_port_is_as_protected_as_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    let product = cluster.create_product(1_000, 10).await;
    let a = cluster.customer("A").await;
    let order = a.place_order(&order_body(product, 1, "tok_visa")).await;
    let b = cluster.customer("B").await;
    let direct = |api: &Api, service: &str| api.moved_to(&cluster.instance_url(service));

    let r = direct(&a.anonymous(), "order")
        .get(&format!("/api/v1/orders/{order}"))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = direct(&b, "order")
        .get(&format!("/api/v1/orders/{order}"))
        .await;
    assert_eq!(r.status(), 404, "another customer's order");
    let r = direct(&a, "order")
        .get(&format!("/api/v1/orders/{order}"))
        .await;
    assert_eq!(r.status(), 200);
    let r = direct(&a, "catalog")
        .post_json("/api/v1/products", &json!({ "name": "X", "sku": "DIRECT-1", "price": { "amount": 1, "currency": "EUR" }, "initial_stock": 1 }))
        .await;
    assert_eq!(r.status(), 403, "a customer makes no products, on any port");
    let r = direct(&a, "order")
        .post_json(&format!("/api/v1/orders/{order}/force-cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), 403);
    cluster.stop().await;
}
