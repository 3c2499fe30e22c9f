//! The pieces every page is drawn with: the layout (a skip link, the
//! navigation, one `main`), money, states, times and forms. Markup is maud:
//! every value is escaped unless said otherwise, and nothing is inline (the
//! Content-Security-Policy allows no inline script or style).

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use crate::session::{Visitor, CSRF_FIELD};

/// Which part of the site a page is in: it chooses the navigation.
#[derive(Clone, Copy, PartialEq)]
pub enum Part {
    Shop,
    Console,
}

/// A whole page: `title`, then `body` inside `main`.
pub fn page(visitor: &Visitor, part: Part, title: &str, body: Markup) -> Markup {
    page_with(visitor, part, title, false, body)
}

/// [`page`], which without JavaScript reloads itself every few seconds
/// (`refresh`): what the live pages do for a browser that runs no script.
pub fn page_with(
    visitor: &Visitor,
    part: Part,
    title: &str,
    refresh: bool,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx without the inline style it would add, and no eval.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyRestoreAsHxRequest":false}"#;
                @if refresh {
                    noscript { meta http-equiv="refresh" content="3"; }
                }
                title { (title) " · Agora" }
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/app.css";
                script src="/static/htmx.min.js" defer {}
                script src="/static/sse.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (header(visitor, part))
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer.site-footer {
                    p { "Agora: an event-driven shop. Every page here is made of calls to its public API." }
                }
            }
        }
    }
}

fn header(visitor: &Visitor, part: Part) -> Markup {
    html! {
        header.site-header {
            nav aria-label="Main" {
                a.brand href=(if part == Part::Console { "/console" } else { "/" }) {
                    "Agora" @if part == Part::Console { " console" }
                }
                ul.nav {
                    @match part {
                        Part::Shop => {
                            li { a href="/" { "Catalog" } }
                            li { a href="/cart" { "Cart" } }
                            li { a href="/orders" { "My orders" } }
                            @if visitor.is_operator() { li { a href="/console" { "Console" } } }
                        }
                        Part::Console => {
                            li { a href="/console" { "Dashboard" } }
                            li { a href="/console/orders" { "Orders" } }
                            li { a href="/console/attention" { "Attention" } }
                            li { a href="/console/dead-letters" { "Dead letters" } }
                            li { a href="/console/audit" { "Audit" } }
                            @if visitor.is_admin() {
                                li { a href="/console/products" { "Products" } }
                                li { a href="/console/accounts" { "Accounts" } }
                            }
                            li { a href="/" { "Shop" } }
                        }
                    }
                }
                div.account {
                    @match &visitor.who {
                        Some(who) => {
                            span.who { "Signed in as " (who.role.as_str()) }
                            form.inline method="post" action="/logout" {
                                (csrf(visitor))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                        None => {
                            a href="/login" { "Sign in" }
                            " "
                            a href="/register" { "Register" }
                        }
                    }
                }
            }
            @if part == Part::Shop {
                form.search role="search" method="get" action="/" {
                    label for="q" { "Search products" }
                    input #q type="search" name="q" placeholder="Name or SKU";
                    button type="submit" { "Search" }
                }
            }
        }
    }
}

/// A page without a visitor (a refused form).
pub fn bare_page(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Agora" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                main #main {
                    h1 { (title) }
                    p.notice.error role="alert" { (text) }
                    p { a href="/" { "Back to the shop" } }
                }
            }
        }
    }
}

/// The hidden CSRF field every form that changes something carries.
pub fn csrf(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(visitor.csrf); }
}

/// `12.34 EUR` from `{amount, currency}` in minor units.
pub fn money(value: &Value) -> String {
    let amount = value["amount"].as_i64().unwrap_or(0);
    let currency = value["currency"].as_str().unwrap_or("");
    amount_in(amount, currency)
}

pub fn amount_in(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", a / 100, a % 100)
}

/// An order's (or payment's, shipment's) state as a badge.
pub fn status(text: &str) -> Markup {
    let class = format!("status status-{}", text.to_lowercase().replace('_', "-"));
    html! { span class=(class) { (text.replace('_', " ")) } }
}

/// An RFC 3339 time, shortened to the millisecond, in UTC (a saga's steps
/// are milliseconds apart).
pub fn time(text: &str) -> Markup {
    let end = text.find('Z').unwrap_or(text.len()).min(23);
    let short = text.get(..end).unwrap_or(text).replace('T', " ");
    html! { time datetime=(text) { (short) " UTC" } }
}

pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// A notice: what an action did, or why it was refused.
pub fn notice(kind: &str, message: &str) -> Markup {
    let class = format!("notice {kind}");
    let role = if kind == "error" { "alert" } else { "status" };
    html! { p class=(class) role=(role) { (message) } }
}

/// A labelled input with its error (if any) right after it, tied to it for
/// screen readers.
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub error: Option<&'a str>,
    pub required: bool,
    pub autocomplete: Option<&'a str>,
    pub hint: Option<&'a str>,
}

impl<'a> Field<'a> {
    pub fn new(name: &'a str, label: &'a str) -> Field<'a> {
        Field {
            name,
            label,
            kind: "text",
            value: "",
            error: None,
            required: true,
            autocomplete: None,
            hint: None,
        }
    }

    pub fn render(&self) -> Markup {
        let id = format!("f-{}", self.name.replace(['.', '[', ']'], "-"));
        let error_id = format!("err-{}", self.name.replace(['.', '[', ']'], "-"));
        let hint_id = format!("hint-{}", self.name.replace(['.', '[', ']'], "-"));
        let described = match (self.error.is_some(), self.hint.is_some()) {
            (true, true) => Some(format!("{error_id} {hint_id}")),
            (true, false) => Some(error_id.clone()),
            (false, true) => Some(hint_id.clone()),
            (false, false) => None,
        };
        html! {
            div.field.invalid[self.error.is_some()] {
                label for=(id) { (self.label) @if !self.required { span.optional { " (optional)" } } }
                input id=(id) name=(self.name) type=(self.kind) value=(self.value)
                    required[self.required] autocomplete=[self.autocomplete]
                    aria-invalid=[self.error.map(|_| "true")] aria-describedby=[described];
                @if let Some(hint) = self.hint { p.hint id=(hint_id) { (hint) } }
                @if let Some(error) = self.error { p.field-error id=(error_id) { (error) } }
            }
        }
    }
}

/// A sparkline of `points` (oldest first) as an inline SVG, with its own
/// text alternative.
pub fn chart(label: &str, points: &[f64], unit: &str) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let max = points.iter().cloned().fold(0.0_f64, f64::max).max(1.0);
    let step = if points.len() > 1 {
        W / (points.len() - 1) as f64
    } else {
        W
    };
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, H - v / max * (H - 8.0)))
        .collect();
    let last = points.last().copied().unwrap_or(0.0);
    let summary = format!(
        "{label}: now {last:.1} {unit}, at most {max:.1} {unit} over the last {} samples",
        points.len()
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(summary) preserveAspectRatio="none" {
                title { (summary) }
                line x1="0" y1=(H) x2=(W) y2=(H) class="axis" {}
                @if points.len() > 1 {
                    polyline points=(path.join(" ")) class="series" {}
                }
            }
            figcaption { (summary) }
        }
    }
}

/// The message the API gave for `field`, if it named it.
pub fn error_for<'a>(errors: &'a [(String, String)], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| f == field)
        .map(|(_, m)| m.as_str())
}

/// A number as typed, or the text itself for the API to name as wrong.
pub fn number(text: &str) -> Value {
    text.trim()
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(text.trim()))
}
