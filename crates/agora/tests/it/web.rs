//! The storefront and the console as a browser without JavaScript sees
//! them: forms, redirects and cookies. Who may open which page, the CSRF
//! check, the cookies' attributes, the security headers, the live stream of
//! an order, and a whole purchase, on the embedded app and through the
//! gateway. (The browser tests in `web-tests/` drive a real Chromium.)

use std::collections::HashMap;

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::cluster::Cluster;
use crate::common::{spawn_app, Api};

/// A browser without JavaScript: it keeps cookies, follows no redirect by
/// itself, and reads the CSRF token of the last page it was given.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` seen, as sent.
    set_cookies: Vec<String>,
}

/// One answer: its status, where it redirects, its body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    csp: Option<String>,
    body: String,
}

impl Page {
    #[track_caller]
    fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location.as_deref(), Some(to));
    }

    #[track_caller]
    fn assert_ok_with(&self, text: &str) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert!(self.body.contains(text), "no `{text}` in {}", self.body);
    }

    /// The value of the page's hidden CSRF field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="_csrf" value=""#)
            .expect("a CSRF field");
        let rest = &self.body[at + r#"name="_csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Posts `form` with the CSRF token of `from` (a page it got).
    async fn submit(&mut self, from: &Page, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = from.csrf();
        let mut fields = form.to_vec();
        fields.push(("_csrf", &csrf));
        self.post(path, &fields).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = match cookie.is_empty() {
            true => request,
            false => request.header(COOKIE, cookie.join("; ")),
        };
        let r = request.send().await.unwrap();
        for set in r.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(set);
        }
        Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            csp: r
                .headers()
                .get(CONTENT_SECURITY_POLICY)
                .map(|l| l.to_str().unwrap().to_owned()),
            body: r.text().await.unwrap(),
        }
    }

    async fn sign_in(&mut self, email: &str, password: &str) {
        let login = self.get("/login").await;
        let signed = self
            .submit(
                &login,
                "/login",
                &[("email", email), ("password", password)],
            )
            .await;
        signed.assert_redirect("/");
    }
}

/// Every console page, as each kind of visitor opens it.
async fn the_console_is_for_operators(api: &Api) {
    let pages = [
        "/console",
        "/console/live",
        "/console/orders",
        "/console/attention",
        "/console/dead-letters",
        "/console/audit",
        "/console/products",
        "/console/accounts",
    ];
    let mut anonymous = Browser::new(&api.base);
    let mut customer = Browser::new(&api.base);
    customer
        .sign_in("shopper@example.com", "demo-shopper-password")
        .await;
    let mut operator = Browser::new(&api.base);
    operator
        .sign_in("operator@example.com", "demo-operator-password")
        .await;
    let mut admin = Browser::new(&api.base);
    admin
        .sign_in("admin@example.com", "demo-admin-password")
        .await;
    for path in pages {
        let page = anonymous.get(path).await;
        // The dashboard's fragment sends back to the dashboard.
        let next = path.trim_end_matches("/live").replace('/', "%2F");
        page.assert_redirect(&format!("/login?next={next}"));
        let page = customer.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} as a customer");
        assert!(page.body.contains("for operators"), "{path}");
        let page = admin.get(path).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{path} as an admin: {}",
            page.body
        );
        let page = operator.get(path).await;
        // The API refuses an operator the accounts; the page says so.
        let expected = if path == "/console/accounts" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(
            page.status, expected,
            "{path} as an operator: {}",
            page.body
        );
    }
}

/// A purchase without JavaScript: register, add, checkout, follow.
async fn a_shopper_buys_with_forms_alone(api: &Api) {
    let product = api.create_product(2_500, 10).await;
    let mut browser = Browser::new(&api.base);
    let email = format!("web-{}@example.com", uuid::Uuid::now_v7().simple());

    let form = browser.get("/register?next=%2Fcart").await;
    let registered = browser
        .submit(
            &form,
            "/register",
            &[
                ("name", "Web Shopper"),
                ("email", &email),
                ("password", "a web password, long"),
                ("next", "/cart"),
            ],
        )
        .await;
    registered.assert_redirect("/cart");
    let product_page = browser.get(&format!("/products/{product}")).await;
    product_page.assert_ok_with("Add to cart");
    let added = browser
        .submit(
            &product_page,
            "/cart/items",
            &[("product_id", &product.to_string()), ("quantity", "2")],
        )
        .await;
    added.assert_redirect("/cart");
    let cart = browser.get("/cart").await;
    cart.assert_ok_with("50.00 EUR");
    let set = browser
        .submit(
            &cart,
            &format!("/cart/items/{product}"),
            &[("quantity", "3")],
        )
        .await;
    set.assert_redirect("/cart");
    browser.get("/cart").await.assert_ok_with("75.00 EUR");

    let checkout = browser.get("/checkout").await;
    checkout.assert_ok_with(&email);
    let mut fields = vec![
        ("email", email.as_str()),
        ("phone", ""),
        ("name", "Web Shopper"),
        ("line1", "1 Rue de la Paix"),
        ("line2", ""),
        ("city", "Paris"),
        ("postal_code", "75002"),
        ("country", "F"),
        ("payment_token", "tok_visa"),
    ];
    let refused = browser.submit(&checkout, "/checkout", &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(r#"id="err-country""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"aria-invalid="true""#));
    fields[7] = ("country", "fr");
    let placed = browser.submit(&refused, "/checkout", &fields).await;
    assert_eq!(placed.status, StatusCode::SEE_OTHER, "{}", placed.body);
    let placed_path = placed.location.unwrap();
    let order_path = placed_path.trim_end_matches("?placed=1").to_owned();

    // Without JavaScript the page reloads itself until the order is final.
    let mut order = browser.get(&placed_path).await;
    for _ in 0..300 {
        if order.status == StatusCode::OK && order.body.contains("status-completed") {
            break;
        }
        assert_eq!(order.status, StatusCode::OK, "{}", order.body);
        assert!(order.body.contains(r#"http-equiv="refresh""#));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        order = browser.get(&placed_path).await;
    }
    order.assert_ok_with("COMPLETED");
    assert!(
        !order.body.contains(r#"http-equiv="refresh""#),
        "a final order stays still"
    );
    assert!(order.body.contains(r#"id="tracking-number""#));
    assert!(
        order.body.contains("We received your order"),
        "{}",
        order.body
    );
    browser.get("/orders").await.assert_ok_with(&order_path);
    // Another customer's order is not found for the demo shopper; without
    // a session, the pages of a customer send to the sign-in page.
    let mut other = Browser::new(&api.base);
    other
        .sign_in("shopper@example.com", "demo-shopper-password")
        .await;
    assert_eq!(other.get(&order_path).await.status, StatusCode::NOT_FOUND);
    let mut anonymous = Browser::new(&api.base);
    for path in ["/cart", "/checkout", "/orders", order_path.as_str()] {
        let next = path.replace('/', "%2F");
        anonymous
            .get(path)
            .await
            .assert_redirect(&format!("/login?next={next}"));
    }
    anonymous.get("/").await.assert_ok_with("Add to cart");
    anonymous
        .get(&format!("/products/{product}"))
        .await
        .assert_ok_with("Add to cart");
    // The live stream of a final order: its state, then `done`.
    let live = browser.get(&format!("{order_path}/live")).await;
    assert!(live.body.contains("event: order"), "{}", live.body);
    assert!(live.body.contains("COMPLETED"));
    assert!(live.body.contains("event: done"));
}

#[tokio::test]
async fn pages_cookies_and_forms_on_the_embedded_app() {
    let app = spawn_app().await;
    the_console_is_for_operators(&app).await;
    a_shopper_buys_with_forms_alone(&app).await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(agora_servers),
    ignore = "needs PostgreSQL and RabbitMQ: set AGORA_TEST_DATABASE_URL and AGORA_TEST_AMQP_URL"
)]
async fn pages_cookies_and_forms_through_the_gateway() {
    let cluster = Cluster::start(&[]).await;
    the_console_is_for_operators(&cluster).await;
    a_shopper_buys_with_forms_alone(&cluster).await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let product = app.create_product(1_000, 10).await;
    let mut browser = Browser::new(&app.base);
    browser
        .sign_in("shopper@example.com", "demo-shopper-password")
        .await;
    let page = browser.get("/").await;
    let product = product.to_string();
    let item = [("product_id", product.as_str()), ("quantity", "1")];

    let without = browser.post("/cart/items", &item).await;
    let forged = browser
        .post(
            "/cart/items",
            &[item[0], item[1], ("_csrf", "x".repeat(43).as_str())],
        )
        .await;
    // Another visitor's token is not this one's.
    let other = Browser::new(&app.base).get("/login").await.csrf();
    let stolen = browser
        .post("/cart/items", &[item[0], item[1], ("_csrf", &other)])
        .await;

    for refused in [&without, &forged, &stolen] {
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("CSRF"));
    }
    let shopper = app
        .signed_in(("shopper@example.com", "demo-shopper-password"))
        .await;
    let cart: Value = shopper.get_json("/api/v1/carts/me").await;
    assert_eq!(cart["items"], serde_json::json!([]), "nothing was added");
    // With the page's token, the same form is taken.
    let taken = browser.submit(&page, "/cart/items", &item).await;
    taken.assert_redirect("/cart");
    app.stop().await;
}

#[tokio::test]
async fn sessions_live_in_http_only_cookies_and_pages_allow_no_inline_code() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base);

    let home = browser.get("/").await;
    browser
        .sign_in("operator@example.com", "demo-operator-password")
        .await;
    let dashboard = browser.get("/console").await;

    let csp = home.csp.clone().expect("a Content-Security-Policy");
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    for page in [&home, &dashboard] {
        assert!(!page.body.contains("<script>"), "no inline script");
        assert!(!page.body.contains(" style="), "no inline style");
        assert!(
            !page.body.contains("http://") && !page.body.contains("https://"),
            "nothing from another origin"
        );
    }
    for name in ["agora_access", "agora_refresh", "agora_csrf"] {
        let set = browser
            .set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} is set"));
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(
            set.contains("SameSite=Lax") || set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(!set.contains("Secure"), "no TLS here: {set}");
    }
    // Behind a TLS proxy the cookies are Secure.
    let r = reqwest::Client::new()
        .get(format!("{}/login", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let set = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    // The vendored scripts name no other origin to load from.
    for script in ["/static/htmx.min.js", "/static/sse.js"] {
        let page = browser.get(script).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            !page.body.contains("//unpkg") && !page.body.contains("cdn."),
            "{script}"
        );
    }
    // Signing out ends the session: the console sends to the sign-in page.
    let out = browser.submit(&dashboard, "/logout", &[]).await;
    out.assert_redirect("/");
    browser
        .get("/console")
        .await
        .assert_redirect("/login?next=%2Fconsole");
    app.stop().await;
}
