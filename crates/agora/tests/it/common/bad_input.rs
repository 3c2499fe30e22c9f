//! The answers bad text gets, whichever mode and storage serve them: a 422
//! naming the field, the same on SQLite and PostgreSQL, and nothing
//! written. (A NUL character used to reach PostgreSQL, which refused it,
//! and came back as a 503 "storage is unavailable".)

use serde_json::{json, Value};
use uuid::Uuid;

use super::{address, order_body, Api};

/// Characters no text field takes: NUL, another control character, a
/// right-to-left override.
const BAD: [&str; 3] = ["bad\u{0}text", "bad\u{7}text", "bad\u{202E}text"];

/// `body` with the string at `pointer` replaced by `value`.
fn with(body: &Value, pointer: &str, value: &str) -> Value {
    let mut body = body.clone();
    *body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the body")) = json!(value);
    body
}

#[track_caller]
fn assert_names(problem: &Value, field: &str) {
    let named: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(named, [field], "{problem}");
}

/// POSTs `body` and expects a 422 that names `field` alone.
async fn refused(api: &Api, path: &str, body: &Value, field: &str) {
    let r = api.post_json(path, body).await;
    let status = r.status().as_u16();
    let problem: Value = r.json().await.unwrap();
    assert_eq!(status, 422, "POST {path} with bad {field}: {problem}");
    assert_names(&problem, field);
}

pub async fn every_text_field_is_checked(api: &Api, product: Uuid) {
    // Catalog.
    let sku = format!("NUL-{}", Uuid::now_v7().simple()).to_uppercase();
    let new_product = json!({ "name": "Lamp", "sku": sku, "description": "Warm light", "price": { "amount": 100, "currency": "EUR" }, "initial_stock": 1 });
    for (pointer, field) in [
        ("/name", "name"),
        ("/sku", "sku"),
        ("/description", "description"),
    ] {
        for bad in BAD {
            refused(
                api,
                "/api/v1/products",
                &with(&new_product, pointer, bad),
                field,
            )
            .await;
        }
    }
    let listed = api.get_json("/api/v1/products?limit=500").await;
    assert!(
        !listed.to_string().contains(&sku),
        "a refused product was stored"
    );

    // Orders: every text of the body, line2 included, placed by a customer
    // who names itself (a bad customer id is not its own: refused too).
    let customer = format!("nul-{}", Uuid::now_v7().simple());
    let shopper = api.customer(&customer).await;
    let mut order = order_body(product, 1, "tok_visa");
    order["customer_id"] = json!(api.customer_id(&customer).await);
    order["shipping_address"]["line2"] = json!("Floor 2");
    for (pointer, field) in [
        ("/customer_id", "customer_id"),
        ("/email", "email"),
        ("/phone", "phone"),
        ("/payment_token", "payment_token"),
        ("/shipping_address/name", "shipping_address.name"),
        ("/shipping_address/line1", "shipping_address.line1"),
        ("/shipping_address/line2", "shipping_address.line2"),
        ("/shipping_address/city", "shipping_address.city"),
        (
            "/shipping_address/postal_code",
            "shipping_address.postal_code",
        ),
        ("/shipping_address/country", "shipping_address.country"),
    ] {
        for bad in BAD {
            refused(
                &shopper,
                "/api/v1/orders",
                &with(&order, pointer, bad),
                field,
            )
            .await;
        }
    }
    assert!(api.orders_of(&customer).await.is_empty());
    // The same limits as a query: a bad filter is a 400, not an outage.
    let r = api.get("/api/v1/orders?customer_id=a%00b").await;
    assert_eq!(r.status(), 400);

    // Cart checkout takes the same fields as an order.
    let item = json!({ "product_id": product, "quantity": 1 });
    let cart = "/api/v1/carts/me";
    assert_eq!(
        shopper
            .post_json(&format!("{cart}/items"), &item)
            .await
            .status(),
        200
    );
    let checkout = json!({ "email": "ada@example.com", "phone": "+4930123456", "shipping_address": address(), "payment_token": "tok_visa" });
    for (pointer, field) in [
        ("/email", "email"),
        ("/payment_token", "payment_token"),
        ("/shipping_address/city", "shipping_address.city"),
    ] {
        refused(
            &shopper,
            &format!("{cart}/checkout"),
            &with(&checkout, pointer, BAD[0]),
            field,
        )
        .await;
    }
    let still = shopper.get_json(cart).await;
    assert_eq!(still["items"].as_array().unwrap().len(), 1, "{still}");
    // A cart named by anything but the caller's own id is nobody's.
    let r = shopper.get("/api/v1/carts/a%00b").await;
    assert_eq!(r.status(), 404);

    // Inventory and cancellation reasons.
    let adjust = json!({ "delta": 1, "reason": "recount" });
    for bad in BAD {
        refused(
            api,
            &format!("/api/v1/inventory/{product}/adjust"),
            &with(&adjust, "/reason", bad),
            "reason",
        )
        .await;
    }
    let placed = api.place_order(&order_body(product, 1, "tok_visa")).await;
    for bad in BAD {
        refused(
            api,
            &format!("/api/v1/orders/{placed}/cancel"),
            &json!({ "reason": bad }),
            "reason",
        )
        .await;
    }
}

/// Untrimmed text is stored trimmed; an optional blank line is absent.
pub async fn text_is_stored_trimmed(api: &Api, product: Uuid) {
    let shopper = api.customer("trimmed").await;
    let id = api.customer_id("trimmed").await;
    let mut body = order_body(product, 1, "tok_visa");
    body["customer_id"] = json!(format!("  {id} "));
    body["email"] = json!(" ada@example.com ");
    body["shipping_address"]["name"] = json!("  Ada Lovelace  ");
    body["shipping_address"]["line2"] = json!("   ");
    let r = shopper.post_json("/api/v1/orders", &body).await;
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["customer_id"], id.as_str());
    assert_eq!(order["email"], "ada@example.com");
    assert_eq!(order["shipping_address"]["name"], "Ada Lovelace");
    assert!(order["shipping_address"].get("line2").is_none(), "{order}");
}
