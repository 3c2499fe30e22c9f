//! The public REST API through the real router: answers, and the errors that
//! bad input gets (RFC 9457 problem+json, per-field detail, nothing written).

use crate::common::{order_body, spawn_app, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn order_count(app: &TestApp) -> usize {
    app.get_json("/api/v1/orders?limit=500").await["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status(), 200);
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["status"], "ready");
    assert!(ready["checks"].as_array().unwrap().len() >= 8);
    // Anyone learns that it is ready; only operators what was checked.
    let anonymous = app.anonymous().get_json("/ready").await;
    assert_eq!(anonymous, json!({ "status": "ready" }));
}

#[tokio::test]
async fn the_demo_catalog_is_seeded_with_stock() {
    let app = spawn_app().await;
    let products = app.get_json("/api/v1/products?limit=100").await["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(products.len() >= 10);
    let first: Uuid = products[0]["id"].as_str().unwrap().parse().unwrap();
    app.eventually(|| async {
        app.get(&format!("/api/v1/inventory/{first}"))
            .await
            .status()
            == 200
    })
    .await;
    assert_eq!(app.stock(first).await["available"], 100);
}

#[tokio::test]
async fn a_created_product_is_served_and_its_sku_is_unique() {
    let app = spawn_app().await;
    let body = json!({ "name": "Kettle", "sku": "KT-1", "price": { "amount": 2_500, "currency": "EUR" }, "initial_stock": 5 });
    let r = app.post_json("/api/v1/products", &body).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(app.get_json(&location).await["sku"], "KT-1");

    problem(app.post_json("/api/v1/products", &body).await, 409).await;
    let bad = json!({ "name": "", "sku": "bad sku", "price": { "amount": -1, "currency": "EUR" } });
    let p = problem(app.post_json("/api/v1/products", &bad).await, 422).await;
    assert_eq!(fields(&p), ["name", "sku", "price.amount"]);
}

#[tokio::test]
async fn orders_take_prices_from_the_catalog_not_the_client() {
    let app = spawn_app().await;
    let product = app.create_product(1_999, 10).await;
    let mut body = order_body(product, 2, "tok_visa");
    body["items"][0]["unit_price"] = json!(1);
    body["total"] = json!({ "amount": 1, "currency": "EUR" });

    let r = app.post_json("/api/v1/orders", &body).await;

    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/api/v1/orders/"));
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total"]["amount"], 3_998);
    assert_eq!(order["items"][0]["unit_price"], 1_999);
    assert_eq!(order["timeline"][0]["to"], "PENDING", "{order}");
}

#[tokio::test]
async fn invalid_orders_are_refused_field_by_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let good = order_body(product, 1, "tok_visa");
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        let mut target = &mut body;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = match part.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*part],
            };
        }
        target[parts[parts.len() - 1]] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("items", json!([])), "items"),
        (with("items.0.quantity", json!(0)), "items[0].quantity"),
        (with("items.0.quantity", json!(-2)), "items[0].quantity"),
        (
            with("items.0.quantity", json!(1_000_000)),
            "items[0].quantity",
        ),
        (
            with("items.0.product_id", json!(Uuid::now_v7())),
            "items[0].product_id",
        ),
        (with("email", json!("not-an-email")), "email"),
        (
            with("shipping_address.city", json!("")),
            "shipping_address.city",
        ),
        (
            with("shipping_address.country", json!("Germany")),
            "shipping_address.country",
        ),
        (with("customer_id", json!("someone-else")), "customer_id"),
        (with("payment_token", json!("")), "payment_token"),
        (with("phone", json!("12")), "phone"),
    ];
    for (body, field) in cases {
        let p = problem(app.post_json("/api/v1/orders", &body).await, 422).await;
        assert!(fields(&p).contains(&field.to_owned()), "{field}: {p}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("shipping_address");
    let p = problem(app.post_json("/api/v1/orders", &missing).await, 422).await;
    assert_eq!(fields(&p), ["shipping_address"]);
    let p = problem(
        app.post_json("/api/v1/orders", &with("items.0.quantity", json!("two")))
            .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["items[0].quantity"]);

    assert_eq!(order_count(&app).await, 0);
    assert_eq!(app.stock(product).await["available"], 10);
}

#[tokio::test]
async fn an_order_beyond_the_available_stock_is_refused_at_the_door() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 3).await;

    let p = problem(
        app.post_json("/api/v1/orders", &order_body(product, 4, "tok_visa"))
            .await,
        409,
    )
    .await;

    assert_eq!(fields(&p), ["items[0].quantity"]);
    assert!(p["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("only 3 in stock"));
    assert_eq!(order_count(&app).await, 0);
    assert_eq!(app.stock(product).await["available"], 3);
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let app = spawn_app().await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/orders"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    problem(post_raw("{ nope", "application/json").await.unwrap(), 400).await;
    problem(post_raw("{}", "text/plain").await.unwrap(), 415).await;
    let huge = format!("{{\"customer_id\": \"{}\"}}", "x".repeat(100 * 1024));
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
    assert_eq!(order_count(&app).await, 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = spawn_app().await;
    let unknown = Uuid::now_v7();
    for path in [
        format!("/api/v1/orders/{unknown}"),
        format!("/api/v1/products/{unknown}"),
        format!("/api/v1/inventory/{unknown}"),
        "/api/v1/nothing-here".to_owned(),
    ] {
        problem(app.get(&path).await, 404).await;
    }
    problem(
        app.post_json(&format!("/api/v1/orders/{unknown}/cancel"), &json!({}))
            .await,
        404,
    )
    .await;
    for path in [
        "/api/v1/orders/42",
        "/api/v1/products/x",
        "/api/v1/inventory/%20",
        "/api/v1/payments?order_id=nope",
    ] {
        problem(app.get(path).await, 400).await;
    }
    problem(
        app.post_json("/api/v1/orders/42/cancel", &json!({})).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn stock_adjustments_never_go_below_zero() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 5).await;
    let path = format!("/api/v1/inventory/{product}/adjust");
    let adjust = |delta: i64| {
        let body = json!({ "delta": delta, "reason": "count" });
        let request = app.client.post(app.url(&path)).json(&body);
        request.send()
    };

    let r = adjust(10).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["available"], 15);
    problem(adjust(-16).await.unwrap(), 409).await;
    assert_eq!(adjust(-15).await.unwrap().status(), 200);
    let stock = app.stock(product).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["adjusted"].as_i64()),
        (Some(0), Some(-5))
    );
    let p = problem(
        app.post_json(
            &format!("/api/v1/inventory/{product}/adjust"),
            &json!({ "delta": 0, "reason": "" }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["delta", "reason"]);
    problem(
        app.post_json(
            &format!("/api/v1/inventory/{}/adjust", Uuid::now_v7()),
            &json!({ "delta": 1, "reason": "x" }),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn orders_are_listed_per_customer_and_paged() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    for customer in ["alice", "alice", "alice", "bob"] {
        let body = order_body(product, 1, "tok_visa");
        app.customer(customer).await.place_order(&body).await;
    }
    let alice = app.customer_id("alice").await;
    let page = app
        .get_json(&format!("/api/v1/orders?customer_id={alice}&limit=2"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let rest = app
        .get_json(&format!(
            "/api/v1/orders?customer_id={alice}&limit=2&offset=2"
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["customer_id"] == alice.as_str()));
    // Alice herself sees her own three, whatever she asks for.
    let own = app
        .customer("alice")
        .await
        .get_json(&format!(
            "/api/v1/orders?customer_id={}",
            app.customer_id("bob").await
        ))
        .await;
    assert_eq!(own["items"].as_array().unwrap().len(), 3);
    problem(app.get("/api/v1/orders?status=WHATEVER").await, 400).await;
}

#[tokio::test]
async fn cart_errors() {
    let app = spawn_app().await;
    let shopper = app.customer("c1").await;
    let checkout = json!({ "email": "ada@example.com", "shipping_address": crate::common::address(), "payment_token": "tok_visa" });
    let p = problem(
        shopper
            .post_json("/api/v1/carts/me/checkout", &checkout)
            .await,
        409,
    )
    .await;
    assert_eq!(fields(&p), ["items"]);
    let p = problem(
        shopper
            .post_json(
                "/api/v1/carts/me/items",
                &json!({ "product_id": Uuid::now_v7(), "quantity": 1 }),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["product_id"]);
    let product = app.create_product(1_000, 10).await;
    let p = problem(
        shopper
            .post_json(
                "/api/v1/carts/me/items",
                &json!({ "product_id": product, "quantity": 0 }),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(fields(&p), ["quantity"]);
    let r = shopper
        .client
        .delete(shopper.url(&format!("/api/v1/carts/me/items/{product}")))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

#[tokio::test]
async fn every_text_field_refuses_control_characters_and_nothing_is_written() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    crate::common::bad_input::every_text_field_is_checked(&app, product).await;
    crate::common::bad_input::text_is_stored_trimmed(&app, product).await;
}

#[tokio::test]
async fn every_list_is_paged_with_a_bounded_offset_and_a_cursor() {
    let app = spawn_app().await;
    crate::common::paging::every_list_is_paged(&app).await;
}

#[tokio::test]
async fn the_dead_letter_list_is_paged() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.bus
            .inject("inventory", "order.created.v1", "{ not an event")
            .await
            .unwrap();
    }
    // One event dead-lettered by two services: two letters, one event id.
    let shared = Uuid::now_v7().to_string();
    for service in ["inventory", "payment"] {
        app.bus
            .deliver(service, &shared, "order.cancelled.v1", "{ not an event")
            .await
            .unwrap();
    }
    app.dead_lettered("inventory", 4).await;
    app.dead_lettered("payment", 1).await;

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .list(&format!("/api/v1/admin/dead-letters?limit=2{after}"))
            .await;
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|l| {
            format!(
                "{}/{}",
                l["service"].as_str().unwrap(),
                l["event_id"].as_str().unwrap()
            )
        }));
        if page.len() < 2 {
            break;
        }
        after = format!("&after={}", seen.last().unwrap());
        if seen.len() == 2 {
            // The letter the cursor names goes away: the cursor still holds.
            let (service, id) = seen[1].split_once('/').unwrap();
            let purge = app.url(&format!(
                "/api/v1/admin/dead-letters/purge?service={service}&event_id={id}"
            ));
            assert_eq!(app.client.post(purge).send().await.unwrap().status(), 200);
        }
    }
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (5, 5), "{seen:?}");
    assert_eq!(
        app.get("/api/v1/admin/dead-letters?after=nope")
            .await
            .status(),
        400
    );
}

/// `q` finds products by a part of the name or SKU, in any case, and a
/// pattern character in it is taken as itself.
#[tokio::test]
async fn products_are_found_by_part_of_their_name_or_sku() {
    let app = spawn_app().await;
    let tag = Uuid::now_v7().simple().to_string()[20..].to_owned();
    for (name, sku) in [
        (format!("Blue {tag} lamp"), format!("LAMP-{tag}-1")),
        (format!("Red {tag} chair"), format!("CH_{tag}-2")),
    ] {
        let body = json!({ "name": name, "sku": sku.to_uppercase(), "price": { "amount": 100, "currency": "EUR" }, "initial_stock": 1 });
        assert_eq!(app.post_json("/api/v1/products", &body).await.status(), 201);
    }
    let names = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let lamp = app
        .get_json(&format!("/api/v1/products?q=BLUE%20{tag}"))
        .await;
    let both = app.get_json(&format!("/api/v1/products?q={tag}")).await;
    let by_sku = app.get_json(&format!("/api/v1/products?q=ch_{tag}")).await;
    let wildcard = app.get_json("/api/v1/products?q=%25_%25").await;

    assert_eq!(names(lamp), [format!("Blue {tag} lamp")]);
    assert_eq!(names(both).len(), 2);
    assert_eq!(names(by_sku), [format!("Red {tag} chair")]);
    assert!(names(wildcard).is_empty(), "% and _ are not wildcards in q");
    let long = "x".repeat(101);
    let r = app.get(&format!("/api/v1/products?q={long}")).await;
    assert_eq!(fields(&problem(r, 422).await), ["q"]);
}
