//! The operator console (`/console`, operators and admins): a live
//! dashboard, the orders with one order's journey across the services,
//! the orders that require attention and the actions on them, the dead
//! letters grouped with replay and purge, the audit, and (admins) products,
//! stock and accounts. Like the storefront it is made of API calls with
//! the visitor's token: the API decides who may do what, and records who
//! did it.

use std::collections::{BTreeMap, VecDeque};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::session::{Form, NoFields, Visitor};
use crate::shop::{failed, order_state, short_id, sign_in_first, urlencode, OrderView};
use crate::view::{self, money, notice, page, status, text, time, Field, Part};
use crate::Web;
use agora_platform::client::Caller;

pub fn router() -> Router<Web> {
    Router::new()
        .route("/console", get(dashboard))
        .route("/console/live", get(dashboard_live))
        .route("/console/orders", get(orders))
        .route("/console/orders/{id}", get(order))
        .route(
            "/console/orders/{id}/{action}",
            get(confirm_action).post(act),
        )
        .route("/console/attention", get(attention))
        .route("/console/dead-letters", get(dead_letters))
        .route("/console/dead-letters/progress", get(progress))
        .route("/console/dead-letters/{action}", get(preview).post(apply))
        .route("/console/dead-letters/{service}/{event_id}", get(letter))
        .route("/console/audit", get(audit_page).post(run_audit))
        .route("/console/products", get(products).post(create_product))
        .route("/console/products/{id}/adjust", post(adjust_stock))
        .route("/console/accounts", get(accounts))
        .route("/console/accounts/{id}", post(change_account))
}

/// The console is for operators: anyone else is sent to sign in (no
/// session) or refused (a customer).
fn gate(visitor: Visitor, here: &str) -> Result<Visitor, Box<Response>> {
    if visitor.who.is_none() {
        return Err(Box::new(sign_in_first(visitor, here)));
    }
    if !visitor.is_operator() {
        let body = html! {
            (notice("error", "The console is for operators and admins. This account is a customer's."))
            p { a href="/" { "Back to the shop" } }
        };
        let markup = page(&visitor, Part::Shop, "Not allowed", body);
        return Err(Box::new(visitor.page(StatusCode::FORBIDDEN, markup)));
    }
    Ok(visitor)
}

macro_rules! gate {
    ($visitor:expr, $here:expr) => {
        match gate($visitor, $here) {
            Ok(visitor) => visitor,
            Err(refused) => return *refused,
        }
    };
}

// --- the dashboard -------------------------------------------------------

/// One reading of the dashboard, kept for the chart.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: i64,
    completed_per_sec: f64,
    in_flight: i64,
}

/// The last ten minutes of readings, at most one a second (however many
/// consoles are open).
#[derive(Default)]
pub struct Samples(VecDeque<Sample>);

impl Samples {
    const KEEP_SECS: i64 = 600;

    fn record(&mut self, sample: Sample) {
        if self.0.back().is_some_and(|last| last.at >= sample.at) {
            return;
        }
        self.0.push_back(sample);
        while self
            .0
            .front()
            .is_some_and(|first| first.at < sample.at - Self::KEEP_SECS)
        {
            self.0.pop_front();
        }
    }
}

async fn dashboard(State(web): State<Web>, visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console");
    let live = dashboard_body(&web, &visitor.api).await;
    let body = html! {
        div #dashboard hx-get="/console/live" hx-trigger="every 2s" hx-swap="innerHTML" {
            (live)
        }
    };
    let markup = view::page_with(&visitor, Part::Console, "Dashboard", true, body);
    visitor.page(StatusCode::OK, markup)
}

async fn dashboard_live(State(web): State<Web>, visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console");
    let live = dashboard_body(&web, &visitor.api).await;
    visitor.page(StatusCode::OK, live)
}

async fn dashboard_body(web: &Web, api: &Caller) -> Markup {
    let stats = api
        .fetch("/api/v1/orders/stats?window_secs=10")
        .await
        .unwrap_or_default();
    let outbox = api.list("/api/v1/admin/outbox").await.unwrap_or_default();
    let queues = api.list("/api/v1/admin/queues").await.unwrap_or_default();
    let breakers = api.list("/api/v1/admin/breakers").await.unwrap_or_default();
    let letters = api
        .list("/api/v1/admin/dead-letters?limit=500")
        .await
        .unwrap_or_default();
    let in_flight: i64 = stats["in_flight"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    let rate = stats["completed_per_sec"].as_f64().unwrap_or(0.0);
    let (points, flight_points): (Vec<f64>, Vec<f64>) = {
        let mut samples = web.samples.lock().expect("samples lock");
        samples.record(Sample {
            at: agora_platform::clock::now_secs(),
            completed_per_sec: rate,
            in_flight,
        });
        samples
            .0
            .iter()
            .map(|s| (s.completed_per_sec, s.in_flight as f64))
            .unzip()
    };
    let backlog: i64 = outbox
        .iter()
        .filter_map(|b| b["unpublished"].as_i64())
        .sum();
    let oldest = outbox
        .iter()
        .filter_map(|b| b["oldest_age_ms"].as_i64())
        .max();
    let ms = |v: &Value| v.as_i64().map_or("—".to_owned(), |ms| format!("{ms} ms"));
    html! {
        div.tiles {
            div.tile { h2 { "Completed orders" } p.figure #completed-rate { (format!("{rate:.1}")) " /s" } p { "over the last 10 s" } }
            div.tile { h2 { "In flight" } p.figure #in-flight { (in_flight) }
                ul.states { @for (state, n) in stats["in_flight"].as_object().into_iter().flatten() { li { (status(state)) " " (n) } } } }
            div.tile { h2 { "Time to a final state" } p.figure { "p50 " (ms(&stats["p50_ms"])) } p.figure { "p99 " (ms(&stats["p99_ms"])) } p { "of " (stats["sampled"].as_i64().unwrap_or(0)) " orders ended in the last 10 s" } }
            div.tile { h2 { "Outbox" } p.figure #outbox-backlog { (backlog) }
                p { @match oldest { Some(ms) => { "unpublished; the oldest is " (ms) " ms old" } None => { "nothing waits to be published" } } } }
            div.tile { h2 { "Dead letters" } p.figure #dead-letter-count { (letters.len()) @if letters.len() >= 500 { "+" } }
                p { a href="/console/dead-letters" { "See them, grouped" } } }
        }
        div.charts {
            (view::chart("Completed orders per second", &points, "orders/s"))
            (view::chart("Orders in flight", &flight_points, "orders"))
        }
        div.columns {
            table {
                caption { "Queue depths" }
                thead { tr { th scope="col" { "Service" } th scope="col" { "Waiting" } } }
                tbody { @for q in &queues { tr { th scope="row" { (text(q, "service")) } td { (q["depth"]) } } } }
            }
            table {
                caption { "Outbox by service" }
                thead { tr { th scope="col" { "Service" } th scope="col" { "Unpublished" } th scope="col" { "Oldest" } } }
                tbody { @for b in &outbox { tr { th scope="row" { (text(b, "service")) } td { (b["unpublished"]) } td { (ms(&b["oldest_age_ms"])) } } } }
            }
            table {
                caption { "Circuit breakers" }
                thead { tr { th scope="col" { "Service" } th scope="col" { "Breaker" } th scope="col" { "State" } } }
                tbody { @for b in &breakers { tr { th scope="row" { (text(b, "service")) } td { (text(b, "breaker")) } td { (status(text(b, "state"))) } } } }
            }
        }
    }
}

// --- orders --------------------------------------------------------------

#[derive(Deserialize, Default)]
struct OrderFilter {
    status: Option<String>,
    customer: Option<String>,
    since: Option<String>,
    until: Option<String>,
    id: Option<String>,
    after: Option<String>,
}

/// `2026-01-31T12:00` (a `datetime-local` field, read as UTC) as RFC 3339.
fn instant(local: &str) -> String {
    let t = local.trim();
    match t.len() {
        16 => format!("{t}:00Z"),
        19 => format!("{t}Z"),
        _ => t.to_owned(),
    }
}

const STATES: [&str; 8] = [
    "PENDING",
    "RESERVED",
    "PAID",
    "COMPLETED",
    "COMPENSATING",
    "REQUIRES_ATTENTION",
    "CANCELLED",
    "REJECTED",
];

async fn orders(visitor: Visitor, Query(filter): Query<OrderFilter>) -> Response {
    let visitor = gate!(visitor, "/console/orders");
    if let Some(id) = filter
        .id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return visitor.redirect(&format!("/console/orders/{}", urlencode(id)));
    }
    let some = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut query = vec![("limit".to_owned(), "50".to_owned())];
    if let Some(s) = some(&filter.status) {
        query.push(("status".into(), s));
    }
    if let Some(c) = some(&filter.customer) {
        query.push(("customer_id".into(), c));
    }
    if let Some(s) = some(&filter.since) {
        query.push(("since".into(), instant(&s)));
    }
    if let Some(u) = some(&filter.until) {
        query.push(("until".into(), instant(&u)));
    }
    if let Some(a) = some(&filter.after) {
        query.push(("after".into(), a));
    }
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    let answer = visitor.api.get(&format!("/api/v1/orders?{qs}")).await;
    let (orders, next, problem) = if answer.ok() {
        (
            answer.body["items"].as_array().cloned().unwrap_or_default(),
            answer.body["next"].as_str().map(str::to_owned),
            None,
        )
    } else {
        (Vec::new(), None, Some(answer.detail()))
    };
    let next_link = next.map(|n| {
        let mut q: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "after" && k != "limit")
            .cloned()
            .collect();
        q.iter_mut().for_each(|(k, _)| {
            if k == "customer_id" {
                *k = "customer".into();
            }
        });
        q.push(("after".into(), n));
        format!(
            "/console/orders?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    });
    let chosen = some(&filter.status).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/console/orders" {
            div.field { label for="id" { "Order id" } input #id type="search" name="id" placeholder="Go to an order"; }
            div.field { label for="status" { "State" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in STATES { option value=(s) selected[chosen == s] { (s) } }
                } }
            div.field { label for="customer" { "Customer id" } input #customer type="text" name="customer" value=[some(&filter.customer)]; }
            div.field { label for="since" { "Created from (UTC)" } input #since type="datetime-local" name="since" value=[some(&filter.since)]; }
            div.field { label for="until" { "Created before (UTC)" } input #until type="datetime-local" name="until" value=[some(&filter.until)]; }
            button type="submit" { "Filter" }
        }
        @if let Some(p) = &problem { (notice("error", p)) }
        (order_table(&orders))
        @if let Some(next) = next_link { p.pager { a href=(next) { "Older orders" } } }
    };
    let markup = page(&visitor, Part::Console, "Orders", body);
    visitor.page(StatusCode::OK, markup)
}

fn order_table(orders: &[Value]) -> Markup {
    html! {
        @if orders.is_empty() { p { "No order matches." } }
        @else {
            table.orders {
                caption { "Orders, newest first" }
                thead { tr { th scope="col" { "Order" } th scope="col" { "Customer" } th scope="col" { "Created" } th scope="col" { "Updated" } th scope="col" { "Total" } th scope="col" { "State" } th scope="col" { "Reason" } } }
                tbody {
                    @for o in orders {
                        tr data-order=(text(o, "id")) {
                            th scope="row" { a href=(format!("/console/orders/{}", text(o, "id"))) { (short_id(text(o, "id"))) } }
                            td { (short_id(text(o, "customer_id"))) }
                            td { (time(text(o, "created_at"))) }
                            td { (time(text(o, "updated_at"))) }
                            td { (money(&o["total"])) }
                            td { (status(text(o, "status"))) }
                            td { (o["reason"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

async fn attention(visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console/attention");
    let answer = visitor
        .api
        .list("/api/v1/orders?status=REQUIRES_ATTENTION&limit=200")
        .await;
    let orders = match answer {
        Ok(orders) => orders,
        Err(answer) => return failed(visitor, Part::Console, &answer),
    };
    let body = html! {
        p { "A cancelled order's compensation (its stock release or its refund) was not confirmed in time. Open one to retry the compensation or to force-cancel it." }
        (order_table(&orders))
    };
    let markup = page(
        &visitor,
        Part::Console,
        "Orders that require attention",
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

/// The operator's actions on an order: (path, label, the states it may
/// be taken in).
const ACTIONS: [(&str, &str, &[&str]); 2] = [
    (
        "retry-compensation",
        "Retry compensation",
        &["REQUIRES_ATTENTION"],
    ),
    (
        "force-cancel",
        "Force-cancel",
        &["REQUIRES_ATTENTION", "COMPENSATING"],
    ),
];

/// What an operator may do to an order in a state.
fn actions(state: &str) -> Vec<(&'static str, &'static str)> {
    ACTIONS
        .iter()
        .filter(|(_, _, states)| states.contains(&state))
        .map(|(action, label, _)| (*action, *label))
        .collect()
}

fn action_name(action: &str) -> Option<&'static str> {
    ACTIONS
        .iter()
        .find(|(a, _, _)| *a == action)
        .map(|(_, label, _)| *label)
}

async fn order(visitor: Visitor, Path(id): Path<String>) -> Response {
    let visitor = gate!(visitor, &format!("/console/orders/{id}"));
    let view = match OrderView::read(&visitor.api, &id).await {
        Ok(view) => view,
        Err(answer) => return failed(visitor, Part::Console, &answer),
    };
    let mut events = visitor
        .api
        .list(&format!("/api/v1/admin/events?subject={}", urlencode(&id)))
        .await
        .unwrap_or_default();
    events.sort_by(|a, b| text(a, "time").cmp(text(b, "time")));
    let o = &view.order;
    let type_of: BTreeMap<&str, &str> = events
        .iter()
        .map(|e| (text(e, "id"), text(e, "event_type")))
        .collect();
    let trail: Vec<&Value> = o["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["actor"].is_string())
        .collect();
    let body = html! {
        dl.summary {
            dt { "Order" } dd { code { (text(o, "id")) } }
            dt { "Customer" } dd { code { (text(o, "customer_id")) } " " (text(o, "email")) }
            dt { "State" } dd { (status(view.status())) @if let Some(r) = o["reason"].as_str() { " — " (r) } }
            dt { "Total" } dd { (money(&o["total"])) }
        }
        @let possible = actions(view.status());
        @if !possible.is_empty() {
            section.actions aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                @for (action, label) in &possible {
                    a.button href=(format!("/console/orders/{}/{action}", text(o, "id"))) { (label) "…" }
                    " "
                }
            }
        }
        section aria-labelledby="trail-h" {
            h2 #trail-h { "Audit trail" }
            @if trail.is_empty() { p { "No one has acted on this order through the API." } }
            @else {
                table #audit-trail {
                    caption { "Who did what to this order" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Result" } } }
                    tbody { @for e in &trail { tr {
                        td { (time(text(e, "at"))) }
                        td { (text(e, "actor")) }
                        td { (text(e, "cause")) }
                        td { (status(text(e, "to"))) @if let Some(n) = e["note"].as_str() { " " (n) } }
                    } } }
                }
            }
        }
        section aria-labelledby="journey-h" {
            h2 #journey-h { "Journey across the services" }
            table #journey {
                caption { "Every event published about this order, in time order" }
                thead { tr { th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "Source" } th scope="col" { "Caused by" } th scope="col" { "Published" } } }
                tbody {
                    @for e in &events {
                        tr data-event-type=(text(e, "event_type")) {
                            td { (time(text(e, "time"))) }
                            td { (text(e, "event_type")) br; small { code { (text(e, "id")) } } }
                            td { (text(e, "source")) }
                            td { @match e["causation_id"].as_str() {
                                Some(c) => { (type_of.get(c).copied().unwrap_or("an event")) br; small { code { (c) } } }
                                None => { "a request" }
                            } }
                            td { @if e["published"].as_bool() == Some(true) { "yes" } @else { "not yet" } }
                        }
                    }
                }
            }
        }
        (order_state(&view, None))
    };
    let markup = page(
        &visitor,
        Part::Console,
        &format!("Order {}", short_id(&id)),
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

async fn confirm_action(visitor: Visitor, Path((id, action)): Path<(String, String)>) -> Response {
    let visitor = gate!(visitor, &format!("/console/orders/{id}"));
    let Some(label) = action_name(&action) else {
        return not_found(visitor);
    };
    let what = match action.as_str() {
        "retry-compensation" => "emits the order's pending compensation again (its stock release and refund). The services ignore what they did already.",
        _ => "ends the order as CANCELLED now, without waiting for its compensation to be confirmed. Check the payment and the stock by hand afterwards.",
    };
    let body = html! {
        p { (label) " " (what) }
        p { "The action is recorded on the order with your account." }
        form method="post" action=(format!("/console/orders/{id}/{action}")) {
            (view::csrf(&visitor))
            button.danger type="submit" { "Confirm: " (label) }
            " "
            a href=(format!("/console/orders/{id}")) { "Back to the order" }
        }
    };
    let markup = page(
        &visitor,
        Part::Console,
        &format!("{label} order {}?", short_id(&id)),
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

async fn act(
    visitor: Visitor,
    Path((id, action)): Path<(String, String)>,
    Form(_): Form<NoFields>,
) -> Response {
    let visitor = gate!(visitor, &format!("/console/orders/{id}"));
    if action_name(&action).is_none() {
        return not_found(visitor);
    }
    let answer = visitor
        .api
        .post_empty(&format!("/api/v1/orders/{}/{action}", urlencode(&id)))
        .await;
    if answer.ok() {
        return visitor.redirect(&format!("/console/orders/{id}"));
    }
    failed(visitor, Part::Console, &answer)
}

fn not_found(visitor: Visitor) -> Response {
    let markup = page(
        &visitor,
        Part::Console,
        "Not found",
        html! { p { "There is no such page." } },
    );
    visitor.page(StatusCode::NOT_FOUND, markup)
}

// --- dead letters --------------------------------------------------------

/// Letters that failed alike: same consumer, event type and error.
struct Group {
    service: String,
    event_type: String,
    error: String,
    count: usize,
    first: String,
    last: String,
    letters: Vec<(String, String)>,
}

fn groups(letters: &[Value]) -> Vec<Group> {
    let mut by: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for l in letters {
        let key = (
            text(l, "service").to_owned(),
            text(l, "event_type").to_owned(),
            text(l, "error").to_owned(),
        );
        let at = text(l, "failed_at").to_owned();
        let group = by.entry(key.clone()).or_insert_with(|| Group {
            service: key.0,
            event_type: key.1,
            error: key.2,
            count: 0,
            first: at.clone(),
            last: at.clone(),
            letters: Vec::new(),
        });
        group.count += 1;
        if at < group.first {
            group.first = at.clone();
        }
        if at > group.last {
            group.last = at;
        }
        group.letters.push((
            text(l, "service").to_owned(),
            text(l, "event_id").to_owned(),
        ));
    }
    by.into_values().collect()
}

/// Every dead letter, page by page (at most 10,000: the queues keep no
/// more per service by default).
async fn all_letters(api: &Caller) -> Result<Vec<Value>, agora_platform::client::Answer> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .list(&format!("/api/v1/admin/dead-letters?limit=500{after}"))
            .await?;
        let n = page.len();
        if let Some(last) = page.last() {
            after = format!(
                "&after={}/{}",
                text(last, "service"),
                text(last, "event_id")
            );
        }
        all.extend(page);
        if n < 500 || all.len() >= 10_000 {
            return Ok(all);
        }
    }
}

fn group_query(service: &str, event_type: &str, error: &str) -> String {
    serde_urlencoded::to_string([
        ("service", service),
        ("event_type", event_type),
        ("error", error),
    ])
    .unwrap_or_default()
}

async fn dead_letters(visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console/dead-letters");
    let letters = match all_letters(&visitor.api).await {
        Ok(letters) => letters,
        Err(answer) => return failed(visitor, Part::Console, &answer),
    };
    let groups = groups(&letters);
    let body = html! {
        p { (letters.len()) " dead letters in " (groups.len()) " groups. A group is the letters one service could not handle, of one event type, failing with the same error." }
        @if groups.is_empty() { p #no-dead-letters { "No dead letters." } }
        @for g in &groups {
            @let q = group_query(&g.service, &g.event_type, &g.error);
            section.group data-service=(g.service) data-event-type=(g.event_type) aria-label=(format!("{} letters of {} for {}", g.count, g.event_type, g.service)) {
                h2 { (g.event_type) " → " (g.service) " " span.count { "(" (g.count) ")" } }
                p.error { "Error: " code { (g.error) } }
                p { "First " (time(&g.first)) ", last " (time(&g.last)) }
                details {
                    summary { "The letters" }
                    ul { @for (service, id) in g.letters.iter().take(50) {
                        li { a href=(format!("/console/dead-letters/{service}/{id}")) { code { (id) } } }
                    } }
                }
                p {
                    a.button href=(format!("/console/dead-letters/replay?{q}")) { "Replay the group…" }
                    " "
                    a.button.secondary href=(format!("/console/dead-letters/purge?{q}")) { "Purge the group…" }
                }
            }
        }
    };
    let markup = page(&visitor, Part::Console, "Dead letters", body);
    visitor.page(StatusCode::OK, markup)
}

/// A group of dead letters, as a query (the dry run, the progress) or a
/// form (the action).
#[derive(Deserialize)]
struct GroupParams {
    service: String,
    event_type: String,
    error: String,
}

impl GroupParams {
    fn query(&self) -> String {
        group_query(&self.service, &self.event_type, &self.error)
    }
}

fn dead_letter_action(action: &str) -> Option<&'static str> {
    match action {
        "replay" => Some("Replay"),
        "purge" => Some("Purge"),
        _ => None,
    }
}

/// The dry run: which letters the action would take, and a form to do it.
async fn preview(
    visitor: Visitor,
    Path(action): Path<String>,
    Query(group): Query<GroupParams>,
) -> Response {
    let visitor = gate!(visitor, "/console/dead-letters");
    let Some(label) = dead_letter_action(&action) else {
        return not_found(visitor);
    };
    let q = group.query();
    let answer = visitor
        .api
        .post_empty(&format!(
            "/api/v1/admin/dead-letters/{action}?{q}&dry_run=true"
        ))
        .await;
    if !answer.ok() {
        return failed(visitor, Part::Console, &answer);
    }
    let count = answer.body["count"].as_u64().unwrap_or(0);
    let what = match action.as_str() {
        "replay" => "put back on the service's queue, with their event ids: a letter already handled has no second effect",
        _ => "deleted for good",
    };
    let body = html! {
        p #dry-run { "Dry run: " strong { (count) } " letters of " code { (group.event_type) } " for " code { (group.service) } " failing with " code { (group.error) } " would be " (what) "." }
        ul { @for l in answer.body["letters"].as_array().into_iter().flatten().take(50) { li { code { (text(l, "event_id")) } " — failed " (time(text(l, "failed_at"))) } } }
        form method="post" action=(format!("/console/dead-letters/{action}")) {
            (view::csrf(&visitor))
            input type="hidden" name="service" value=(group.service);
            input type="hidden" name="event_type" value=(group.event_type);
            input type="hidden" name="error" value=(group.error);
            button.danger type="submit" { (label) " " (count) " letters" }
            " "
            a href="/console/dead-letters" { "Back" }
        }
    };
    let markup = page(
        &visitor,
        Part::Console,
        &format!("{label} a group of dead letters?"),
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

async fn apply(
    visitor: Visitor,
    Path(action): Path<String>,
    Form(group): Form<GroupParams>,
) -> Response {
    let visitor = gate!(visitor, "/console/dead-letters");
    let Some(label) = dead_letter_action(&action) else {
        return not_found(visitor);
    };
    let q = group.query();
    let answer = visitor
        .api
        .post_empty(&format!("/api/v1/admin/dead-letters/{action}?{q}"))
        .await;
    if !answer.ok() {
        return failed(visitor, Part::Console, &answer);
    }
    let count = answer.body["count"].as_u64().unwrap_or(0);
    let done = match action.as_str() {
        "replay" => "replayed: they are back on the service's queue",
        _ => "purged",
    };
    let live = format!("/console/dead-letters/progress?{q}");
    let body = html! {
        (notice("success", &format!("{count} letters {done}.")))
        div #progress hx-get=(live) hx-trigger="every 1s" hx-swap="innerHTML" aria-live="polite" {
            (progress_of(&visitor.api, &group.service, &q).await)
        }
        p { a href="/console/dead-letters" { "Back to the dead letters" } }
    };
    let markup = page(&visitor, Part::Console, &format!("{label}: done"), body);
    visitor.page(StatusCode::OK, markup)
}

/// How a replayed group is doing: the letters still in it (one that fails
/// again comes back) and what waits on the service's queue.
async fn progress_of(api: &Caller, service: &str, q: &str) -> Markup {
    let left = api
        .list(&format!("/api/v1/admin/dead-letters?{q}&limit=500"))
        .await
        .map(|l| l.len());
    let queued = api
        .list("/api/v1/admin/queues")
        .await
        .ok()
        .and_then(|queues| queues.into_iter().find(|d| text(d, "service") == service))
        .and_then(|d| d["depth"].as_i64());
    html! {
        p #group-left { "Letters left in the group: " (left.map_or("unknown".to_owned(), |n| n.to_string())) "." }
        p #queue-depth { "Events waiting on the " (service) " queue: " (queued.map_or("unknown".to_owned(), |n| n.to_string())) "." }
    }
}

async fn progress(visitor: Visitor, Query(group): Query<GroupParams>) -> Response {
    let visitor = gate!(visitor, "/console/dead-letters");
    let q = group.query();
    let markup = progress_of(&visitor.api, &group.service, &q).await;
    visitor.page(StatusCode::OK, markup)
}

async fn letter(visitor: Visitor, Path((service, event_id)): Path<(String, String)>) -> Response {
    let visitor = gate!(visitor, "/console/dead-letters");
    let answer = visitor
        .api
        .get(&format!(
            "/api/v1/admin/dead-letters/{}/{}",
            urlencode(&service),
            urlencode(&event_id)
        ))
        .await;
    if !answer.ok() {
        return failed(visitor, Part::Console, &answer);
    }
    let l = &answer.body;
    let body_text = match serde_json::from_str::<Value>(text(l, "body")) {
        Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
        Err(_) => text(l, "body").to_owned(),
    };
    let body = html! {
        dl.summary {
            dt { "Service" } dd { (text(l, "service")) }
            dt { "Event type" } dd { (text(l, "event_type")) }
            dt { "Routing key" } dd { code { (text(l, "routing_key")) } }
            dt { "Attempts" } dd { (l["attempts"]) }
            dt { "Failed" } dd { (time(text(l, "failed_at"))) }
            dt { "Error" } dd { code { (text(l, "error")) } }
        }
        h2 { "Message (secrets masked)" }
        pre.message { code { (body_text) } }
        p { a href="/console/dead-letters" { "Back to the dead letters" } }
    };
    let markup = page(
        &visitor,
        Part::Console,
        &format!("Dead letter {}", short_id(&event_id)),
        body,
    );
    visitor.page(StatusCode::OK, markup)
}

// --- the audit -----------------------------------------------------------

async fn audit_page(visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console/audit");
    let body = audit_form(&visitor, None);
    let markup = page(&visitor, Part::Console, "Audit", body);
    visitor.page(StatusCode::OK, markup)
}

fn audit_form(visitor: &Visitor, report: Option<Markup>) -> Markup {
    html! {
        p { "The audit reads every product's stock, every order, payment, shipment and reservation through the API and checks that they agree: stock is conserved, a completed order was paid and shipped once, an ended order holds no stock and no charge, and no order is stuck. Run it on a quiet system: a saga in flight is, for a moment, between the states it compares." }
        form method="post" action="/console/audit" {
            (view::csrf(visitor))
            button type="submit" { "Run the audit" }
        }
        @if let Some(report) = report { (report) }
    }
}

async fn run_audit(State(web): State<Web>, visitor: Visitor, Form(_): Form<NoFields>) -> Response {
    let visitor = gate!(visitor, "/console/audit");
    let report = (web.audit)(visitor.api.clone()).await;
    let shown = match report {
        Ok(report) => {
            let violations = report["violations"].as_array().cloned().unwrap_or_default();
            html! {
                section #audit-report aria-labelledby="report-h" {
                    h2 #report-h { "Findings" }
                    p #audit-summary { "Audited " (report["products"]) " products and " (report["orders"]) " orders: " (violations.len()) " violations." }
                    @if !violations.is_empty() {
                        table {
                            caption { "Violations" }
                            thead { tr { th scope="col" { "Rule" } th scope="col" { "Subject" } th scope="col" { "Detail" } } }
                            tbody { @for v in &violations { tr { td { (text(v, "rule")) } td { code { (text(v, "subject")) } } td { (text(v, "detail")) } } } }
                        }
                    }
                }
            }
        }
        Err(e) => notice("error", &format!("The audit could not run: {e}")),
    };
    let body = audit_form(&visitor, Some(shown));
    let markup = page(&visitor, Part::Console, "Audit", body);
    visitor.page(StatusCode::OK, markup)
}

// --- products and stock (admins) -----------------------------------------

#[derive(Deserialize, Default)]
struct ProductForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    initial_stock: String,
}

impl ProductForm {
    /// The form of a new product, in euros unless changed.
    fn blank() -> ProductForm {
        ProductForm {
            currency: "EUR".into(),
            ..ProductForm::default()
        }
    }
}

/// `12.50` as minor units; anything else is passed on for the API to name.
fn minor_units(price: &str) -> Value {
    let p = price.trim();
    let (units, cents) = p.split_once('.').unwrap_or((p, "0"));
    match (
        units.parse::<i64>(),
        cents.len() <= 2,
        format!("{cents:0<2}").parse::<i64>(),
    ) {
        (Ok(u), true, Ok(c)) if u >= 0 => Value::from(u * 100 + c),
        _ => Value::from(p),
    }
}

async fn products(visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console/products");
    products_page(visitor, &ProductForm::blank(), &[], None, StatusCode::OK).await
}

async fn products_page(
    visitor: Visitor,
    form: &ProductForm,
    errors: &[(String, String)],
    banner: Option<Markup>,
    status_code: StatusCode,
) -> Response {
    let products = visitor
        .api
        .list("/api/v1/products?limit=200")
        .await
        .unwrap_or_default();
    let stock = visitor
        .api
        .list("/api/v1/inventory?limit=500")
        .await
        .unwrap_or_default();
    let stock_of = |id: &str| {
        stock
            .iter()
            .find(|s| text(s, "product_id") == id)
            .cloned()
            .unwrap_or_default()
    };
    let error = |f: &str| view::error_for(errors, f);
    let body = html! {
        @if let Some(b) = banner { (b) }
        @if !visitor.is_admin() { (notice("info", "Only admins may create products and adjust stock: the API will refuse an operator.")) }
        section aria-labelledby="new-h" {
            h2 #new-h { "New product" }
            form.product method="post" action="/console/products" novalidate {
                (view::csrf(&visitor))
                (Field { value: &form.name, error: error("name"), ..Field::new("name", "Name") }.render())
                (Field { value: &form.sku, error: error("sku"), hint: Some("Capitals, digits and dashes, e.g. LAMP-01"), ..Field::new("sku", "SKU") }.render())
                (Field { value: &form.description, error: error("description"), required: false, ..Field::new("description", "Description") }.render())
                (Field { value: &form.price, error: error("price.amount").or(error("price")), hint: Some("e.g. 12.50"), ..Field::new("price", "Price") }.render())
                (Field { value: &form.currency, error: error("price.currency"), ..Field::new("currency", "Currency") }.render())
                (Field { kind: "number", value: &form.initial_stock, error: error("initial_stock"), ..Field::new("initial_stock", "Opening stock") }.render())
                button type="submit" { "Create product" }
            }
        }
        table.products {
            caption { "Products and their stock" }
            thead { tr { th scope="col" { "Product" } th scope="col" { "Price" } th scope="col" { "Available" } th scope="col" { "Reserved" } th scope="col" { "Sold" } th scope="col" { "Adjust stock" } } }
            tbody {
                @for p in &products {
                    @let id = text(p, "id");
                    @let s = stock_of(id);
                    tr data-sku=(text(p, "sku")) {
                        th scope="row" { (text(p, "name")) br; small { (text(p, "sku")) } }
                        td { (money(&p["price"])) }
                        td.available { (s["available"]) }
                        td { (s["reserved"]) }
                        td { (s["sold"]) }
                        td {
                            form.inline method="post" action=(format!("/console/products/{id}/adjust")) {
                                (view::csrf(&visitor))
                                label.visually-hidden for=(format!("delta-{id}")) { "Change in the stock of " (text(p, "name")) }
                                input.qty id=(format!("delta-{id}")) type="number" name="delta" required placeholder="±";
                                label.visually-hidden for=(format!("reason-{id}")) { "Reason" }
                                input id=(format!("reason-{id}")) type="text" name="reason" value="recount" required;
                                button type="submit" { "Adjust" }
                            }
                        }
                    }
                }
            }
        }
    };
    let markup = page(&visitor, Part::Console, "Products and stock", body);
    visitor.page(status_code, markup)
}

async fn create_product(visitor: Visitor, Form(form): Form<ProductForm>) -> Response {
    let visitor = gate!(visitor, "/console/products");
    let description =
        (!form.description.trim().is_empty()).then(|| form.description.trim().to_owned());
    let answer = visitor
        .api
        .post(
            "/api/v1/products",
            &json!({
                "name": form.name.trim(),
                "sku": form.sku.trim(),
                "description": description,
                "price": { "amount": minor_units(&form.price), "currency": form.currency.trim().to_uppercase() },
                "initial_stock": view::number(&form.initial_stock),
            }),
        )
        .await;
    if answer.ok() {
        let banner = notice(
            "success",
            &format!("Product {} created.", text(&answer.body, "sku")),
        );
        return products_page(
            visitor,
            &ProductForm::blank(),
            &[],
            Some(banner),
            StatusCode::CREATED,
        )
        .await;
    }
    let errors = answer.field_errors();
    let banner = errors.is_empty().then(|| notice("error", &answer.detail()));
    let status_code = answer.status;
    products_page(visitor, &form, &errors, banner, status_code).await
}

#[derive(Deserialize)]
struct AdjustForm {
    delta: String,
    reason: String,
}

async fn adjust_stock(
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<AdjustForm>,
) -> Response {
    let visitor = gate!(visitor, "/console/products");
    let answer = visitor
        .api
        .post(
            &format!("/api/v1/inventory/{}/adjust", urlencode(&id)),
            &json!({ "delta": view::number(&form.delta), "reason": form.reason.trim() }),
        )
        .await;
    let banner = match answer.ok() {
        true => notice(
            "success",
            &format!(
                "Stock adjusted: {} available now.",
                answer.body["available"]
            ),
        ),
        false => {
            let why = answer.reasons().join("; ");
            notice("error", &format!("The stock was not changed: {why}"))
        }
    };
    let status_code = if answer.ok() {
        StatusCode::OK
    } else {
        answer.status
    };
    products_page(
        visitor,
        &ProductForm::blank(),
        &[],
        Some(banner),
        status_code,
    )
    .await
}

// --- accounts (admins) ---------------------------------------------------

async fn accounts(visitor: Visitor) -> Response {
    let visitor = gate!(visitor, "/console/accounts");
    accounts_page(visitor, None, StatusCode::OK).await
}

async fn accounts_page(
    visitor: Visitor,
    banner: Option<Markup>,
    status_code: StatusCode,
) -> Response {
    let answer = visitor.api.get("/api/v1/admin/users?limit=200").await;
    if !answer.ok() {
        return failed(visitor, Part::Console, &answer);
    }
    let users = answer.body["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(b) = banner { (b) }
        table.accounts {
            caption { "Accounts, oldest first" }
            thead { tr { th scope="col" { "Email" } th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Disabled" } th scope="col" { "Change" } } }
            tbody {
                @for u in &users {
                    @let id = text(u, "id");
                    tr data-email=(text(u, "email")) {
                        th scope="row" { (text(u, "email")) }
                        td { (text(u, "name")) }
                        td { (text(u, "role")) }
                        td { @if u["disabled"].as_bool() == Some(true) { "yes" } @else { "no" } }
                        td {
                            form.inline method="post" action=(format!("/console/accounts/{id}")) {
                                (view::csrf(&visitor))
                                label.visually-hidden for=(format!("role-{id}")) { "Role of " (text(u, "email")) }
                                select id=(format!("role-{id}")) name="role" {
                                    @for r in ["customer", "operator", "admin"] { option value=(r) selected[text(u, "role") == r] { (r) } }
                                }
                                label for=(format!("disabled-{id}")) {
                                    input id=(format!("disabled-{id}")) type="checkbox" name="disabled" value="true" checked[u["disabled"].as_bool() == Some(true)];
                                    " disabled"
                                }
                                button type="submit" { "Save" }
                            }
                        }
                    }
                }
            }
        }
    };
    let markup = page(&visitor, Part::Console, "Accounts", body);
    visitor.page(status_code, markup)
}

#[derive(Deserialize)]
struct AccountForm {
    role: String,
    disabled: Option<String>,
}

async fn change_account(
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<AccountForm>,
) -> Response {
    let visitor = gate!(visitor, "/console/accounts");
    let answer = visitor
        .api
        .patch(
            &format!("/api/v1/admin/users/{}", urlencode(&id)),
            &json!({ "role": form.role, "disabled": form.disabled.is_some() }),
        )
        .await;
    let (banner, status_code) = match answer.ok() {
        true => (
            notice(
                "success",
                &format!(
                    "{} is now {}{}.",
                    text(&answer.body, "email"),
                    text(&answer.body, "role"),
                    if answer.body["disabled"].as_bool() == Some(true) {
                        ", disabled"
                    } else {
                        ""
                    }
                ),
            ),
            StatusCode::OK,
        ),
        false => (
            notice("error", &format!("Not changed: {}", answer.detail())),
            answer.status,
        ),
    };
    accounts_page(visitor, Some(banner), status_code).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_group_by_service_type_and_error_with_their_times() {
        let letter = |service: &str, error: &str, at: &str| json!({ "service": service, "event_type": "PaymentRequested", "event_id": at, "error": error, "failed_at": at });
        let letters = [
            letter("payment", "boom", "2026-01-01T00:00:02Z"),
            letter("payment", "boom", "2026-01-01T00:00:01Z"),
            letter("payment", "other", "2026-01-01T00:00:03Z"),
            letter("shipping", "boom", "2026-01-01T00:00:04Z"),
        ];
        let groups = groups(&letters);
        assert_eq!(groups.len(), 3);
        let boom = &groups[0];
        assert_eq!(
            (boom.service.as_str(), boom.error.as_str(), boom.count),
            ("payment", "boom", 2)
        );
        assert_eq!(
            (boom.first.as_str(), boom.last.as_str()),
            ("2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z")
        );
    }

    #[test]
    fn prices_are_read_as_minor_units_and_anything_else_is_left_for_the_api() {
        assert_eq!(minor_units("12.5"), json!(1250));
        assert_eq!(minor_units("12.05"), json!(1205));
        assert_eq!(minor_units("7"), json!(700));
        assert_eq!(minor_units("1.234"), json!("1.234"));
        assert_eq!(minor_units("abc"), json!("abc"));
        assert_eq!(minor_units("-1"), json!("-1"));
    }

    #[test]
    fn samples_keep_one_a_second_for_ten_minutes() {
        let mut samples = Samples::default();
        let s = |at| Sample {
            at,
            completed_per_sec: 1.0,
            in_flight: 0,
        };
        samples.record(s(0));
        samples.record(s(0));
        samples.record(s(1));
        assert_eq!(samples.0.len(), 2);
        samples.record(s(700));
        assert_eq!(samples.0.len(), 1);
    }
}
