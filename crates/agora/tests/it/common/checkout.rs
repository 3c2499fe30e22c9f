//! Checkouts that cannot become orders, whichever mode serves them: the
//! cart refuses what the order service would refuse, and what still slips
//! through ends in a REJECTED order and a restored cart, never in a dead
//! letter and a lost cart.

use serde_json::{json, Value};
use uuid::Uuid;

use super::{address, Api};

/// A checked-out cart of the customer `customer` (an account id) as the
/// cart service would emit it, for a consumer to receive as if the catalog
/// had changed after the cart checked it.
pub fn checked_out(customer: &str, products: &[Uuid]) -> (Uuid, String) {
    use agora_platform::events::{Address, CartCheckedOut, Envelope, LineItem};
    let order_id = Uuid::now_v7();
    let event = CartCheckedOut {
        order_id,
        customer_id: customer.to_owned(),
        email: "ada@example.com".into(),
        phone: None,
        items: products
            .iter()
            .map(|p| LineItem {
                product_id: *p,
                quantity: 1,
            })
            .collect(),
        shipping_address: serde_json::from_value::<Address>(address()).unwrap(),
        payment_token: "tok_visa".into(),
    };
    (
        order_id,
        serde_json::to_string(&Envelope::root(&event)).unwrap(),
    )
}

/// A cart keeps itself checkable: a product in another currency is refused
/// when added, and the cart is as it was.
pub async fn a_cart_refuses_a_product_in_another_currency(api: &Api) {
    let (eur, usd) = (
        api.create_product_in(1_000, "EUR", 5).await,
        api.create_product_in(1_000, "USD", 5).await,
    );
    let shopper = api
        .customer(&format!("fx-{}", Uuid::now_v7().simple()))
        .await;
    let api = &shopper;
    let cart = "/api/v1/carts/me";
    let add = |p: Uuid| json!({ "product_id": p, "quantity": 1 });
    assert_eq!(
        api.post_json(&format!("{cart}/items"), &add(eur))
            .await
            .status(),
        200
    );
    let r = api.post_json(&format!("{cart}/items"), &add(usd)).await;
    assert_eq!(r.status(), 409, "the cart's currency stands in the way");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "items", "{problem}");
    assert!(problem["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("one currency"));
    let shown = api.get_json(cart).await;
    assert_eq!(shown["items"].as_array().unwrap().len(), 1);
    assert_eq!(shown["total"]["currency"], "EUR");
}

/// `order_id` came from a checked-out cart of the customer called
/// `customer` holding `eur` and `usd`, which the order service refused: the
/// order is REJECTED with the reason, the cart has both lines back, nothing
/// was dead-lettered.
pub async fn the_refused_checkout_is_rejected_and_the_cart_restored(
    api: &Api,
    order_id: Uuid,
    customer: &str,
    lines: usize,
) {
    let path = format!("/api/v1/orders/{order_id}");
    api.eventually(|| async { api.get(&path).await.status() == 200 })
        .await;
    let order = api.terminal(order_id).await;
    assert_eq!(order["status"], "REJECTED", "{order}");
    let reason = order["reason"].as_str().unwrap();
    assert!(reason.contains("one currency"), "{reason}");
    let letters = api.get_json("/api/v1/admin/dead-letters").await;
    let shopper = api.customer(customer).await;
    let api = &shopper;
    let cart = "/api/v1/carts/me";
    api.eventually(|| async {
        api.get_json(cart).await["items"].as_array().unwrap().len() == lines
    })
    .await;
    let shown = api.get_json(cart).await;
    assert_eq!(shown["total"], Value::Null, "{shown}");
    assert_eq!(shown["problems"][0]["field"], "items", "{shown}");
    // The cart says why it cannot be checked out, and the checkout refuses.
    let checkout = json!({ "email": "ada@example.com", "shipping_address": address(), "payment_token": "tok_visa" });
    let r = api.post_json(&format!("{cart}/checkout"), &checkout).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        api.get_json(cart).await["items"].as_array().unwrap().len(),
        lines
    );
    assert_eq!(letters, json!([]), "{letters}");
}
