//! The storefront: the catalog with its stock, a product, the cart, the
//! checkout, registration and sign-in, "my orders" and an order followed
//! live. Every page and form works without JavaScript; with it, the order
//! page follows the saga over Server-Sent Events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::session::{Form, NoFields, Visitor};
use crate::view::{self, money, page, page_with, status, text, time, Field, Part};
use crate::Web;
use agora_platform::client::{Answer, Caller};

pub fn router() -> Router<Web> {
    Router::new()
        .route("/", get(catalog))
        .route("/products/{id}", get(product))
        .route("/cart", get(cart))
        .route("/cart/items", post(add_to_cart))
        .route("/cart/items/{product_id}", post(set_quantity))
        .route("/cart/items/{product_id}/remove", post(remove_from_cart))
        .route("/checkout", get(checkout_form).post(checkout))
        .route("/register", get(register_form).post(register))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/orders", get(my_orders))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/live", get(order_live))
        .route("/orders/{id}/cancel", post(cancel))
}

/// A page the API refused to make: its status, and why, as HTML.
pub fn failed(visitor: Visitor, part: Part, answer: &Answer) -> Response {
    let status = match answer.status {
        s if s.is_client_error() || s.is_server_error() => s,
        _ => StatusCode::BAD_GATEWAY,
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Please sign in",
        s if s.is_server_error() => "Unavailable",
        _ => "Refused",
    };
    let body = html! {
        (view::notice("error", &answer.detail()))
        p { a href="/" { "Back to the shop" } }
    };
    let markup = page(&visitor, part, title, body);
    visitor.page(status, markup)
}

/// Where to go after signing in: a path of this site only.
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

/// Sends an anonymous visitor to sign in first, coming back to `here`.
pub fn sign_in_first(visitor: Visitor, here: &str) -> Response {
    let to = format!("/login?next={}", urlencode(here));
    visitor.redirect(&to)
}

pub use agora_platform::client::urlencode;

// --- the catalog ---------------------------------------------------------

#[derive(Deserialize)]
struct CatalogParams {
    q: Option<String>,
    after: Option<String>,
}

/// A stock level, for a shopper.
fn stock_badge(available: Option<i64>) -> Markup {
    match available {
        Some(n) if n > 10 => html! { span.stock.in-stock { "In stock" } },
        Some(n) if n > 0 => html! { span.stock.low-stock { "Only " (n) " left" } },
        Some(_) => html! { span.stock.out-of-stock { "Out of stock" } },
        None => html! { span.stock { "Stock unknown" } },
    }
}

/// Available units by product id, for `products`.
async fn stock_of(api: &Caller, products: &[Value]) -> HashMap<String, i64> {
    let ids: Vec<&str> = products.iter().map(|p| text(p, "id")).collect();
    if ids.is_empty() {
        return HashMap::new();
    }
    let stock = api
        .list(&format!("/api/v1/inventory?ids={}", ids.join(",")))
        .await
        .unwrap_or_default();
    stock
        .iter()
        .map(|s| {
            (
                text(s, "product_id").to_owned(),
                s["available"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn add_form(visitor: &Visitor, product: &Value, quantity_field: bool) -> Markup {
    let id = text(product, "id");
    let name = text(product, "name");
    html! {
        form.add method="post" action="/cart/items" {
            (view::csrf(visitor))
            input type="hidden" name="product_id" value=(id);
            @if quantity_field {
                div.field {
                    label for="quantity" { "Quantity" }
                    input #quantity type="number" name="quantity" value="1" min="1" max="1000" required;
                }
            } @else {
                input type="hidden" name="quantity" value="1";
            }
            button type="submit" { "Add to cart" span.visually-hidden { ": " (name) } }
        }
    }
}

async fn catalog(
    State(_): State<Web>,
    visitor: Visitor,
    Query(params): Query<CatalogParams>,
) -> Response {
    let q = params.q.unwrap_or_default();
    let mut path = "/api/v1/products?limit=24".to_owned();
    if !q.trim().is_empty() {
        path.push_str(&format!("&q={}", urlencode(q.trim())));
    }
    if let Some(after) = &params.after {
        path.push_str(&format!("&after={}", urlencode(after)));
    }
    let page_of = match visitor.api.fetch(&path).await {
        Ok(page) => page,
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let products = page_of["items"].as_array().cloned().unwrap_or_default();
    let stock = stock_of(&visitor.api, &products).await;
    let next = page_of["next"].as_str().map(|next| {
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("q={}&", urlencode(&q))
        };
        format!("/?{q}after={next}")
    });
    let title = if q.is_empty() {
        "Catalog".to_owned()
    } else {
        format!("Products matching “{q}”")
    };
    let body = html! {
        @if products.is_empty() {
            p { "No product matches." }
        }
        ul.grid {
            @for p in &products {
                li.card.product data-sku=(text(p, "sku")) {
                    h2 { a href=(format!("/products/{}", text(p, "id"))) { (text(p, "name")) } }
                    p.sku { "SKU " (text(p, "sku")) }
                    p.price { (money(&p["price"])) }
                    (stock_badge(stock.get(text(p, "id")).copied()))
                    (add_form(&visitor, p, false))
                }
            }
        }
        @if let Some(next) = next {
            p.pager { a href=(next) { "More products" } }
        }
    };
    let markup = page(&visitor, Part::Shop, &title, body);
    visitor.page(StatusCode::OK, markup)
}

async fn product(visitor: Visitor, Path(id): Path<String>) -> Response {
    let product = match visitor
        .api
        .fetch(&format!("/api/v1/products/{}", urlencode(&id)))
        .await
    {
        Ok(product) => product,
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let stock = stock_of(&visitor.api, std::slice::from_ref(&product)).await;
    let body = html! {
        article.product-page {
            p.price { (money(&product["price"])) }
            (stock_badge(stock.get(text(&product, "id")).copied()))
            p { (text(&product, "description")) }
            p.sku { "SKU " (text(&product, "sku")) }
            (add_form(&visitor, &product, true))
        }
        p { a href="/" { "Back to the catalog" } }
    };
    let markup = page(&visitor, Part::Shop, text(&product, "name"), body);
    visitor.page(StatusCode::OK, markup)
}

// --- the cart ------------------------------------------------------------

#[derive(Deserialize)]
struct AddForm {
    product_id: String,
    quantity: String,
}

#[derive(Deserialize)]
struct QuantityForm {
    quantity: String,
}

async fn add_to_cart(visitor: Visitor, Form(form): Form<AddForm>) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, &format!("/products/{}", form.product_id));
    }
    let answer = visitor
        .api
        .post(
            "/api/v1/carts/me/items",
            &json!({ "product_id": form.product_id, "quantity": view::number(&form.quantity) }),
        )
        .await;
    after_cart_change(visitor, answer).await
}

async fn set_quantity(
    visitor: Visitor,
    Path(product_id): Path<String>,
    Form(form): Form<QuantityForm>,
) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/cart");
    }
    let answer = visitor
        .api
        .put(
            &format!("/api/v1/carts/me/items/{}", urlencode(&product_id)),
            &json!({ "quantity": view::number(&form.quantity) }),
        )
        .await;
    after_cart_change(visitor, answer).await
}

async fn remove_from_cart(
    visitor: Visitor,
    Path(product_id): Path<String>,
    Form(_): Form<NoFields>,
) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/cart");
    }
    let answer = visitor
        .api
        .delete(&format!(
            "/api/v1/carts/me/items/{}",
            urlencode(&product_id)
        ))
        .await;
    after_cart_change(visitor, answer).await
}

/// Back to the cart; a refusal is shown on it, with the cart unchanged.
async fn after_cart_change(visitor: Visitor, answer: Answer) -> Response {
    if answer.ok() {
        return visitor.redirect("/cart");
    }
    let errors = answer.reasons();
    let status = answer.status;
    cart_page(visitor, &errors, status).await
}

async fn cart(visitor: Visitor) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/cart");
    }
    cart_page(visitor, &[], StatusCode::OK).await
}

async fn cart_page(visitor: Visitor, errors: &[String], status: StatusCode) -> Response {
    let cart = match visitor.api.fetch("/api/v1/carts/me").await {
        Ok(cart) => cart,
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let items = cart["items"].as_array().cloned().unwrap_or_default();
    let problems = cart["problems"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @for e in errors { (view::notice("error", e)) }
        @for p in &problems { (view::notice("error", &format!("{}: {}", text(p, "field"), text(p, "message")))) }
        @if items.is_empty() {
            p { "Your cart is empty. " a href="/" { "Browse the catalog" } "." }
        } @else {
            table.cart {
                caption { "Your cart" }
                thead { tr { th scope="col" { "Product" } th scope="col" { "Unit price" } th scope="col" { "Quantity" } th scope="col" { "Line total" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for (i, item) in items.iter().enumerate() {
                        @let pid = text(item, "product_id");
                        @let currency = text(&cart["total"], "currency");
                        tr data-sku=(text(item, "sku")) {
                            th scope="row" { a href=(format!("/products/{pid}")) { (text(item, "name")) } }
                            td { (view::amount_in(item["unit_price"].as_i64().unwrap_or(0), currency)) }
                            td {
                                form.inline method="post" action=(format!("/cart/items/{pid}")) {
                                    (view::csrf(&visitor))
                                    label.visually-hidden for=(format!("qty-{i}")) { "Quantity of " (text(item, "name")) }
                                    input.qty id=(format!("qty-{i}")) type="number" name="quantity" min="1" max="1000" value=(item["quantity"]) required;
                                    button type="submit" { "Update" }
                                }
                            }
                            td { (view::amount_in(item["line_total"].as_i64().unwrap_or(0), currency)) }
                            td {
                                form.inline method="post" action=(format!("/cart/items/{pid}/remove")) {
                                    (view::csrf(&visitor))
                                    button.secondary type="submit" aria-label=(format!("Remove {} from the cart", text(item, "name"))) { "Remove" }
                                }
                            }
                        }
                    }
                }
                tfoot { tr { th scope="row" colspan="3" { "Total" } td #cart-total { (money(&cart["total"])) } td {} } }
            }
            p { a.button href="/checkout" { "Checkout" } }
        }
    };
    let markup = page(&visitor, Part::Shop, "Cart", body);
    visitor.page(status, markup)
}

// --- the checkout --------------------------------------------------------

#[derive(Deserialize, Default)]
struct CheckoutForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    payment_token: String,
}

async fn checkout_form(visitor: Visitor) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/checkout");
    }
    let me = visitor.api.fetch("/api/v1/me").await.unwrap_or_default();
    let form = CheckoutForm {
        email: text(&me, "email").to_owned(),
        name: text(&me, "name").to_owned(),
        payment_token: "tok_visa".into(),
        ..CheckoutForm::default()
    };
    checkout_page(visitor, &form, &[], None, StatusCode::OK).await
}

async fn checkout(visitor: Visitor, Form(form): Form<CheckoutForm>) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/checkout");
    }
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let body = json!({
        "email": form.email.trim(),
        "phone": optional(&form.phone),
        "shipping_address": {
            "name": form.name.trim(),
            "line1": form.line1.trim(),
            "line2": optional(&form.line2),
            "city": form.city.trim(),
            "postal_code": form.postal_code.trim(),
            "country": form.country.trim().to_uppercase(),
        },
        "payment_token": form.payment_token.trim(),
    });
    let answer = visitor.api.post("/api/v1/carts/me/checkout", &body).await;
    if answer.ok() {
        let id = text(&answer.body, "order_id").to_owned();
        return visitor.redirect(&format!("/orders/{id}?placed=1"));
    }
    let errors = answer.field_errors();
    let banner = errors.is_empty().then(|| answer.detail());
    let status = answer.status;
    checkout_page(visitor, &form, &errors, banner, status).await
}

async fn checkout_page(
    visitor: Visitor,
    form: &CheckoutForm,
    errors: &[(String, String)],
    banner: Option<String>,
    status: StatusCode,
) -> Response {
    let cart = match visitor.api.fetch("/api/v1/carts/me").await {
        Ok(cart) => cart,
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let error = |field: &str| view::error_for(errors, field);
    let items = cart["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(banner) = &banner { (view::notice("error", banner)) }
        @if !errors.is_empty() {
            div.notice.error role="alert" {
                p { "Please change what is said below:" }
                ul { @for (f, m) in errors {
                    @let (label, anchor) = checkout_field(f, &items);
                    li { a href=(format!("#{anchor}")) { (label) } ": " (m) }
                } }
            }
        }
        section aria-labelledby="summary" {
            h2 #summary { "Your order" }
            @if items.is_empty() { p { "Your cart is empty. " a href="/" { "Browse the catalog" } "." } }
            ul.lines {
                @for (i, item) in items.iter().enumerate() {
                    @let line_error = error(&format!("items[{i}].quantity")).or(error(&format!("items[{i}].product_id")));
                    li.line.invalid[line_error.is_some()] id=(format!("line-{i}")) {
                        span { (item["quantity"]) " × " (text(item, "name")) }
                        " "
                        span { (view::amount_in(item["line_total"].as_i64().unwrap_or(0), text(&cart["total"], "currency"))) }
                        @if let Some(e) = line_error {
                            p.field-error id=(format!("err-items-{i}")) { (e) " — " a href="/cart" { "change the quantity in your cart" } }
                        }
                    }
                }
            }
            @if let Some(e) = error("items") { p.field-error #err-items { (e) } }
            p { "Total: " strong { (money(&cart["total"])) } }
        }
        form.checkout method="post" action="/checkout" novalidate {
            (view::csrf(&visitor))
            fieldset {
                legend { "Contact" }
                (Field { kind: "email", value: &form.email, error: error("email"), autocomplete: Some("email"), ..Field::new("email", "Email") }.render())
                (Field { kind: "tel", value: &form.phone, error: error("phone"), required: false, autocomplete: Some("tel"), ..Field::new("phone", "Phone, for a text message") }.render())
            }
            fieldset {
                legend { "Shipping address" }
                (Field { value: &form.name, error: error("shipping_address.name"), autocomplete: Some("name"), ..Field::new("name", "Full name") }.render())
                (Field { value: &form.line1, error: error("shipping_address.line1"), autocomplete: Some("address-line1"), ..Field::new("line1", "Address") }.render())
                (Field { value: &form.line2, error: error("shipping_address.line2"), required: false, autocomplete: Some("address-line2"), ..Field::new("line2", "Address, second line") }.render())
                (Field { value: &form.city, error: error("shipping_address.city"), autocomplete: Some("address-level2"), ..Field::new("city", "City") }.render())
                (Field { value: &form.postal_code, error: error("shipping_address.postal_code"), autocomplete: Some("postal-code"), ..Field::new("postal_code", "Postal code") }.render())
                (Field { value: &form.country, error: error("shipping_address.country"), autocomplete: Some("country"), hint: Some("Two letters, e.g. FR or DE"), ..Field::new("country", "Country code") }.render())
            }
            fieldset {
                legend { "Payment" }
                (Field { value: &form.payment_token, error: error("payment_token"), hint: Some("A test card token: tok_visa is paid, tok_decline is declined."), ..Field::new("payment_token", "Card token") }.render())
            }
            button type="submit" { "Place order" }
        }
    };
    let markup = page(&visitor, Part::Shop, "Checkout", body);
    visitor.page(status, markup)
}

/// The checkout's name and place on the page for a field the API names.
fn checkout_field(field: &str, items: &[Value]) -> (String, String) {
    let labelled = |label: &str, id: &str| (label.to_owned(), id.to_owned());
    match field.trim_start_matches("shipping_address.") {
        "email" => labelled("Email", "f-email"),
        "phone" => labelled("Phone", "f-phone"),
        "name" => labelled("Full name", "f-name"),
        "line1" => labelled("Address", "f-line1"),
        "line2" => labelled("Address, second line", "f-line2"),
        "city" => labelled("City", "f-city"),
        "postal_code" => labelled("Postal code", "f-postal_code"),
        "country" => labelled("Country code", "f-country"),
        "payment_token" => labelled("Card token", "f-payment_token"),
        other => {
            let line = other
                .strip_prefix("items[")
                .and_then(|rest| rest.split(']').next())
                .and_then(|i| i.parse::<usize>().ok());
            match line {
                Some(i) => {
                    let name = items
                        .get(i)
                        .map(|item| text(item, "name"))
                        .unwrap_or("A line");
                    (name.to_owned(), format!("line-{i}"))
                }
                None => labelled("Your order", "summary"),
            }
        }
    }
}

// --- registration and sign-in --------------------------------------------

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn register_form(visitor: Visitor, Query(next): Query<Next>) -> Response {
    let form = RegisterForm {
        next: next.next,
        ..RegisterForm::default()
    };
    register_page(visitor, &form, &[], None, StatusCode::OK)
}

async fn register(mut visitor: Visitor, Form(form): Form<RegisterForm>) -> Response {
    let answer = visitor
        .api
        .post(
            "/api/v1/auth/register",
            &json!({ "name": form.name.trim(), "email": form.email.trim(), "password": form.password }),
        )
        .await;
    if !answer.ok() {
        let errors = answer.field_errors();
        let banner = errors.is_empty().then(|| answer.detail());
        let status = answer.status;
        return register_page(visitor, &form, &errors, banner, status);
    }
    let tokens = visitor
        .api
        .post(
            "/api/v1/auth/token",
            &json!({ "email": form.email.trim(), "password": form.password }),
        )
        .await;
    visitor.signed_in(&tokens.body);
    let next = local(form.next.as_deref()).to_owned();
    visitor.redirect(&next)
}

fn register_page(
    visitor: Visitor,
    form: &RegisterForm,
    errors: &[(String, String)],
    banner: Option<String>,
    status: StatusCode,
) -> Response {
    let error = |field: &str| view::error_for(errors, field);
    let body = html! {
        @if let Some(banner) = &banner { (view::notice("error", banner)) }
        form method="post" action="/register" {
            (view::csrf(&visitor))
            @if let Some(next) = &form.next { input type="hidden" name="next" value=(next); }
            (Field { value: &form.name, error: error("name"), autocomplete: Some("name"), ..Field::new("name", "Name") }.render())
            (Field { kind: "email", value: &form.email, error: error("email"), autocomplete: Some("email"), ..Field::new("email", "Email") }.render())
            (Field { kind: "password", error: error("password"), autocomplete: Some("new-password"), hint: Some("At least 12 characters."), ..Field::new("password", "Password") }.render())
            button type="submit" { "Create account" }
        }
        p { "Have an account? " a href="/login" { "Sign in" } }
    };
    let markup = page(&visitor, Part::Shop, "Create an account", body);
    visitor.page(status, markup)
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn login_form(visitor: Visitor, Query(next): Query<Next>) -> Response {
    let form = LoginForm {
        next: next.next,
        ..LoginForm::default()
    };
    login_page(visitor, &form, None, StatusCode::OK)
}

async fn login(mut visitor: Visitor, Form(form): Form<LoginForm>) -> Response {
    let answer = visitor
        .api
        .post(
            "/api/v1/auth/token",
            &json!({ "email": form.email.trim(), "password": form.password }),
        )
        .await;
    if answer.ok() {
        visitor.signed_in(&answer.body);
        let next = local(form.next.as_deref()).to_owned();
        return visitor.redirect(&next);
    }
    let why = match (answer.status, answer.retry_after) {
        (StatusCode::UNAUTHORIZED, _) => "The email or the password is wrong.".to_owned(),
        (StatusCode::TOO_MANY_REQUESTS, Some(secs)) => {
            format!("Too many failed attempts: try again in {secs} seconds.")
        }
        _ => answer.detail(),
    };
    let status = answer.status;
    login_page(visitor, &form, Some(why), status)
}

fn login_page(
    visitor: Visitor,
    form: &LoginForm,
    why: Option<String>,
    status: StatusCode,
) -> Response {
    let body = html! {
        @if let Some(why) = &why { (view::notice("error", why)) }
        form method="post" action="/login" {
            (view::csrf(&visitor))
            @if let Some(next) = &form.next { input type="hidden" name="next" value=(next); }
            (Field { kind: "email", value: &form.email, autocomplete: Some("username"), ..Field::new("email", "Email") }.render())
            (Field { kind: "password", autocomplete: Some("current-password"), ..Field::new("password", "Password") }.render())
            button type="submit" { "Sign in" }
        }
        p { "New here? " a href=(match &form.next { Some(n) => format!("/register?next={}", urlencode(n)), None => "/register".into() }) { "Create an account" } }
    };
    let markup = page(&visitor, Part::Shop, "Sign in", body);
    visitor.page(status, markup)
}

async fn logout(mut visitor: Visitor, Form(_): Form<NoFields>) -> Response {
    visitor.sign_out().await;
    visitor.redirect("/")
}

// --- orders --------------------------------------------------------------

async fn my_orders(visitor: Visitor) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, "/orders");
    }
    let orders = match visitor.api.list("/api/v1/orders?limit=50").await {
        Ok(orders) => orders,
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let body = html! {
        @if orders.is_empty() { p { "No orders yet. " a href="/" { "Browse the catalog" } "." } }
        @else {
            table.orders {
                caption { "Your orders, newest first" }
                thead { tr { th scope="col" { "Order" } th scope="col" { "Placed" } th scope="col" { "Total" } th scope="col" { "State" } } }
                tbody {
                    @for o in &orders {
                        tr {
                            th scope="row" { a href=(format!("/orders/{}", text(o, "id"))) { (short_id(text(o, "id"))) } }
                            td { (time(text(o, "created_at"))) }
                            td { (money(&o["total"])) }
                            td { (status(text(o, "status"))) }
                        }
                    }
                }
            }
        }
    };
    let markup = page(&visitor, Part::Shop, "My orders", body);
    visitor.page(StatusCode::OK, markup)
}

pub fn short_id(id: &str) -> String {
    id.get(id.len().saturating_sub(12)..)
        .map(|tail| format!("…{tail}"))
        .unwrap_or_else(|| id.to_owned())
}

/// Everything an order page shows, read from the API.
pub struct OrderView {
    pub order: Value,
    pub payments: Vec<Value>,
    pub shipments: Vec<Value>,
    pub notifications: Vec<Value>,
}

impl OrderView {
    pub async fn read(api: &Caller, id: &str) -> Result<OrderView, Answer> {
        let id = urlencode(id);
        // Four services' answers, asked at once; the order's refusal first.
        let paths = [
            format!("/api/v1/orders/{id}"),
            format!("/api/v1/payments?order_id={id}"),
            format!("/api/v1/shipments?order_id={id}"),
            format!("/api/v1/notifications?order_id={id}"),
        ];
        let (order, payments, shipments, notifications) = tokio::join!(
            api.fetch(&paths[0]),
            api.list(&paths[1]),
            api.list(&paths[2]),
            api.list(&paths[3]),
        );
        Ok(OrderView {
            order: order?,
            payments: payments?,
            shipments: shipments?,
            notifications: notifications?,
        })
    }

    pub fn status(&self) -> &str {
        text(&self.order, "status")
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status(), "COMPLETED" | "CANCELLED" | "REJECTED")
    }

    /// Until it ships, a customer may cancel.
    pub fn may_cancel(&self) -> bool {
        matches!(self.status(), "PENDING" | "RESERVED" | "PAID")
    }
}

/// The part of an order page that changes as the saga moves: drawn once
/// with the page and again for every change the live stream sends.
pub fn order_state(view: &OrderView, visitor_csrf: Option<&str>) -> Markup {
    let o = &view.order;
    html! {
        div.order-state {
            // The shopper's page shows what was ordered with it (the first
            // part a page of a just-placed order receives).
            @if visitor_csrf.is_some() { (order_summary(o)) }
            p.current { "State: " span #status { (status(text(o, "status"))) } }
            @if let Some(reason) = o["reason"].as_str() {
                p #reason { "Reason: " (reason) }
            }
            @if !view.is_terminal() {
                p.progress { "This page follows the order as it moves." }
            }
            @if let (true, Some(csrf)) = (view.may_cancel(), visitor_csrf) {
                form.cancel method="post" action=(format!("/orders/{}/cancel", text(o, "id"))) {
                    input type="hidden" name="_csrf" value=(csrf);
                    button.danger type="submit" { "Cancel order" }
                }
            }
            section aria-labelledby="timeline-h" {
                h2 #timeline-h { "Timeline" }
                ol #timeline {
                    @for e in o["timeline"].as_array().into_iter().flatten() {
                        li {
                            (time(text(e, "at"))) " — "
                            (status(text(e, "to")))
                            " " span.cause { (text(e, "cause")) }
                            @if let Some(note) = e["note"].as_str() { " — " (note) }
                        }
                    }
                }
            }
            section #payment aria-labelledby="payment-h" {
                h2 #payment-h { "Payment" }
                @if view.payments.is_empty() { p { "Not charged yet." } }
                @for p in &view.payments {
                    p { (money(&p["amount"])) " " (status(text(p, "status")))
                        @if let Some(r) = p["reason"].as_str() { " — " (r) } }
                }
            }
            section #shipment aria-labelledby="shipment-h" {
                h2 #shipment-h { "Shipment" }
                @if view.shipments.is_empty() { p { "Not shipped yet." } }
                @for s in &view.shipments {
                    p { (text(s, "carrier")) ", tracking number "
                        strong #tracking-number { (text(s, "tracking_number")) } " " (status(text(s, "status"))) }
                }
            }
            section aria-labelledby="notifications-h" {
                h2 #notifications-h { "Messages sent" }
                @if view.notifications.is_empty() { p { "None yet." } }
                ul #notifications {
                    @for n in &view.notifications {
                        li { (text(n, "channel")) " to " (text(n, "recipient")) ": " (text(n, "message")) }
                    }
                }
            }
        }
    }
}

fn order_summary(o: &Value) -> Markup {
    html! {
        dl.summary {
            dt { "Order" } dd { code { (text(o, "id")) } }
            dt { "Placed" } dd { (time(text(o, "created_at"))) }
            dt { "Total" } dd { (money(&o["total"])) }
            dt { "Items" }
            dd { ul { @for i in o["items"].as_array().into_iter().flatten() { li { (i["quantity"]) " × " (text(i, "name")) } } } }
        }
    }
}

#[derive(Deserialize)]
struct Placed {
    placed: Option<String>,
}

/// The order page; right after a checkout (`placed`), the order service
/// may not have made the order yet (it makes it from the cart's event):
/// the page says so and follows it until it exists.
async fn order(visitor: Visitor, Path(id): Path<String>, Query(placed): Query<Placed>) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, &format!("/orders/{id}"));
    }
    let view = match OrderView::read(&visitor.api, &id).await {
        Ok(view) => view,
        Err(answer) if answer.status == StatusCode::NOT_FOUND && placed.placed.is_some() => {
            let live = format!("/orders/{}/live", urlencode(&id));
            let body = html! {
                div #order-live aria-live="polite" hx-ext="sse" sse-connect=(live) sse-close="done" {
                    div #order-state sse-swap="order" {
                        p.current { "State: " span #status { "being placed" } }
                        p.progress { "This page follows the order as it moves." }
                    }
                }
                p { a href="/orders" { "All my orders" } }
            };
            let markup = page_with(&visitor, Part::Shop, "Your order", true, body);
            return visitor.page(StatusCode::OK, markup);
        }
        Err(answer) => return failed(visitor, Part::Shop, &answer),
    };
    let live = (!view.is_terminal()).then(|| format!("/orders/{}/live", text(&view.order, "id")));
    let body = html! {
        div #order-live aria-live="polite" hx-ext=[live.as_ref().map(|_| "sse")] sse-connect=[live.as_deref()] sse-close=[live.as_ref().map(|_| "done")] {
            div #order-state sse-swap=[live.as_ref().map(|_| "order")] {
                (order_state(&view, Some(&visitor.csrf)))
            }
        }
        p { a href="/orders" { "All my orders" } }
    };
    let markup = page_with(
        &visitor,
        Part::Shop,
        "Your order",
        !view.is_terminal(),
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

/// How often the live stream reads the order again, and how long one
/// stream lasts at most (the browser opens the next).
const LIVE_EVERY: Duration = Duration::from_millis(250);
const LIVE_FOR: Duration = Duration::from_secs(120);

/// The order's changing part, each time it changes, until it is final
/// (then `done`, which closes the stream in the browser).
async fn order_live(
    visitor: Visitor,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let csrf = visitor.csrf.clone();
    let api = visitor.api.clone();
    let until = tokio::time::Instant::now() + LIVE_FOR;
    // (what was sent last, whether the order was final in it)
    let state = (api, id, csrf, String::new(), false);
    let events = stream::unfold(state, move |(api, id, csrf, last, ended)| async move {
        if ended {
            // The final state went out: `done` ends the stream.
            if last.is_empty() {
                return None;
            }
            let event = Event::default().event("done").data("final");
            return Some((Ok(event), (api, id, csrf, String::new(), true)));
        }
        loop {
            if tokio::time::Instant::now() > until {
                return None;
            }
            let view = match OrderView::read(&api, &id).await {
                Ok(view) => view,
                // Not made yet (a checkout's order comes from its event).
                Err(answer) if answer.status == StatusCode::NOT_FOUND => {
                    tokio::time::sleep(LIVE_EVERY).await;
                    continue;
                }
                Err(_) => {
                    let gone = Event::default().event("done").data("gone");
                    return Some((Ok(gone), (api, id, csrf, String::new(), true)));
                }
            };
            let html = order_state(&view, Some(&csrf)).into_string();
            if html != last {
                let event = Event::default().event("order").data(html.clone());
                return Some((Ok(event), (api, id, csrf, html, view.is_terminal())));
            }
            tokio::time::sleep(LIVE_EVERY).await;
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn cancel(visitor: Visitor, Path(id): Path<String>, Form(_): Form<NoFields>) -> Response {
    if visitor.who.is_none() {
        return sign_in_first(visitor, &format!("/orders/{id}"));
    }
    let answer = visitor
        .api
        .post(
            &format!("/api/v1/orders/{}/cancel", urlencode(&id)),
            &json!({ "reason": "cancelled by the customer on the web" }),
        )
        .await;
    if answer.ok() || answer.status == StatusCode::CONFLICT {
        return visitor.redirect(&format!("/orders/{id}"));
    }
    failed(visitor, Part::Shop, &answer)
}
