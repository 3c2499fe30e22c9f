//! `agora audit`: checks the cross-service invariants of a running Agora
//! (embedded, or the distributed gateway) through its public API, names
//! every violation and exits non-zero if there is one.
//!
//! - stock is conserved: opening stock + adjustments = available + reserved + sold;
//! - inventory agrees with itself: reserved = units of RESERVED reservations,
//!   sold = units of SOLD reservations;
//! - a completed order has exactly one captured payment, one shipment and a
//!   sold reservation;
//! - a cancelled or rejected order has no net charge, no live shipment and
//!   holds no stock;
//! - no order sits in a non-terminal state longer than `--stuck-after-secs`.
//!
//! Run it on a quiet system: a saga in flight is, for a moment, between the
//! states these rules compare.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// Base URL of the running instance (the gateway in distributed mode).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An order not terminal after this long counts as stuck.
    #[arg(long, default_value_t = 120)]
    pub stuck_after_secs: i64,
    #[arg(long)]
    pub json: bool,
    /// An operator's (or admin's) credentials: the audit reads everyone's.
    #[command(flatten)]
    pub credentials: crate::credentials::Credentials,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    pub product_id: Uuid,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    pub initial: i64,
    pub adjusted: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub status: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    pub order_id: Uuid,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Shipment {
    pub order_id: Uuid,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub product_id: Uuid,
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reservation {
    pub order_id: Uuid,
    pub status: String,
    pub items: Vec<Item>,
}

/// Everything the rules look at, read from the API.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stock: Vec<Stock>,
    pub orders: Vec<Order>,
    pub payments: Vec<Payment>,
    pub shipments: Vec<Shipment>,
    pub reservations: Vec<Reservation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub products: usize,
    pub orders: usize,
    pub violations: Vec<Violation>,
}

fn violation(rule: &'static str, subject: impl ToString, detail: String) -> Violation {
    Violation {
        rule,
        subject: subject.to_string(),
        detail,
    }
}

/// The rules, as a pure function of a snapshot.
pub fn check(s: &Snapshot, now: OffsetDateTime, stuck_after_secs: i64) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut held: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for r in &s.reservations {
        for item in &r.items {
            let entry = held.entry(item.product_id).or_default();
            match r.status.as_str() {
                "RESERVED" => entry.0 += item.quantity,
                "SOLD" => entry.1 += item.quantity,
                _ => {}
            }
        }
    }
    for st in &s.stock {
        if st.initial + st.adjusted != st.available + st.reserved + st.sold {
            out.push(violation(
                "stock-conserved",
                st.product_id,
                format!(
                    "initial {} + adjusted {} != available {} + reserved {} + sold {}",
                    st.initial, st.adjusted, st.available, st.reserved, st.sold
                ),
            ));
        }
        let (reserved, sold) = held.get(&st.product_id).copied().unwrap_or_default();
        if (reserved, sold) != (st.reserved, st.sold) {
            out.push(violation(
                "stock-matches-reservations",
                st.product_id,
                format!(
                    "stock says reserved {} / sold {}, reservations say {reserved} / {sold}",
                    st.reserved, st.sold
                ),
            ));
        }
    }
    let by_order = |status_of: &dyn Fn(&str) -> bool, list: &[(Uuid, &str)]| {
        let mut counts: HashMap<Uuid, usize> = HashMap::new();
        for (order, status) in list {
            if status_of(status) {
                *counts.entry(*order).or_default() += 1;
            }
        }
        counts
    };
    let payments: Vec<(Uuid, &str)> = s
        .payments
        .iter()
        .map(|p| (p.order_id, p.status.as_str()))
        .collect();
    let shipments: Vec<(Uuid, &str)> = s
        .shipments
        .iter()
        .map(|p| (p.order_id, p.status.as_str()))
        .collect();
    let captured = by_order(&|st| st == "CAPTURED", &payments);
    let live_shipments = by_order(&|st| st == "CREATED", &shipments);
    let reservation: HashMap<Uuid, &str> = s
        .reservations
        .iter()
        .map(|r| (r.order_id, r.status.as_str()))
        .collect();
    for o in &s.orders {
        let charged = captured.get(&o.id).copied().unwrap_or(0);
        let shipped = live_shipments.get(&o.id).copied().unwrap_or(0);
        let held = reservation.get(&o.id).copied();
        match o.status.as_str() {
            "COMPLETED" => {
                if charged != 1 {
                    out.push(violation(
                        "completed-charged-once",
                        o.id,
                        format!("{charged} captured payments"),
                    ));
                }
                if shipped != 1 {
                    out.push(violation(
                        "completed-shipped-once",
                        o.id,
                        format!("{shipped} shipments"),
                    ));
                }
                if held != Some("SOLD") {
                    out.push(violation(
                        "completed-stock-sold",
                        o.id,
                        format!("reservation is {held:?}"),
                    ));
                }
            }
            "CANCELLED" | "REJECTED" => {
                if charged != 0 {
                    out.push(violation(
                        "ended-no-charge",
                        o.id,
                        format!("{} order holds {charged} captured payments", o.status),
                    ));
                }
                if shipped != 0 {
                    out.push(violation(
                        "ended-no-shipment",
                        o.id,
                        format!("{} order has a live shipment", o.status),
                    ));
                }
                if matches!(held, Some("RESERVED" | "SOLD")) {
                    out.push(violation(
                        "ended-no-stock",
                        o.id,
                        format!("{} order's reservation is {held:?}", o.status),
                    ));
                }
            }
            _ => {
                let age = OffsetDateTime::parse(&o.updated_at, &Rfc3339)
                    .map(|at| (now - at).whole_seconds())
                    .unwrap_or(i64::MAX);
                if age > stuck_after_secs {
                    out.push(violation(
                        "not-stuck",
                        o.id,
                        format!("{} for {age} s", o.status),
                    ));
                }
            }
        }
    }
    out
}

/// Reads a snapshot through the API, with `client` (an operator's), and
/// checks it.
pub async fn audit(
    client: &reqwest::Client,
    base: &str,
    stuck_after_secs: i64,
) -> anyhow::Result<Report> {
    let base = base.trim_end_matches('/');
    let get = |path: String| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let r = client.get(url).send().await?.error_for_status()?;
            anyhow::Ok(r.json::<serde_json::Value>().await?)
        }
    };
    audit_by(&get, stuck_after_secs).await
}

/// The audit as the console runs it: through the API in-process, as the
/// operator who asked.
pub fn for_console(stuck_after_secs: i64) -> agora_web::Audit {
    std::sync::Arc::new(move |caller: agora_web::Caller| {
        Box::pin(async move {
            let get = |path: String| {
                let caller = caller.clone();
                async move {
                    caller
                        .fetch(&path)
                        .await
                        .map_err(|refused| anyhow::anyhow!("{path}: {}", refused.detail()))
                }
            };
            let report = audit_by(&get, stuck_after_secs).await?;
            Ok(serde_json::to_value(report)?)
        })
    })
}

/// Reads a snapshot with `get` (a path of the API → its JSON) and checks it.
pub async fn audit_by<F, Fut>(get: &F, stuck_after_secs: i64) -> anyhow::Result<Report>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<serde_json::Value>>,
{
    let snapshot = Snapshot {
        stock: all_pages(get, "/api/v1/inventory?", "product_id").await?,
        orders: all_pages(get, "/api/v1/orders?", "id").await?,
        payments: all_pages(get, "/api/v1/payments?", "id").await?,
        shipments: all_pages(get, "/api/v1/shipments?", "id").await?,
        reservations: all_pages(get, "/api/v1/inventory/reservations?", "order_id").await?,
    };
    Ok(Report {
        products: snapshot.stock.len(),
        orders: snapshot.orders.len(),
        violations: check(&snapshot, OffsetDateTime::now_utc(), stuck_after_secs),
    })
}

/// Every item of a paged list, page by page with its cursor (`after=` the
/// `key` of the last item), so that items added meanwhile neither shift
/// nor repeat what was read. A page is a list, or an object with `items`.
async fn all_pages<T, F, Fut>(get: &F, prefix: &str, key: &str) -> anyhow::Result<Vec<T>>
where
    T: serde::de::DeserializeOwned,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<serde_json::Value>>,
{
    const PAGE: usize = 500;
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let mut page = get(format!("{prefix}limit={PAGE}{after}")).await?;
        let items = match page.get_mut("items") {
            Some(items) => items.take(),
            None => page,
        };
        let items: Vec<serde_json::Value> = serde_json::from_value(items)?;
        let n = items.len();
        if let Some(last) = items.last().and_then(|item| item[key].as_str()) {
            after = format!("&after={last}");
        }
        for item in items {
            all.push(serde_json::from_value(item)?);
        }
        if n < PAGE {
            return Ok(all);
        }
    }
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = args.credentials.client(&args.url).await?;
    let report = audit(&client, &args.url, args.stuck_after_secs).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for v in &report.violations {
            println!("VIOLATION {:<28} {}  {}", v.rule, v.subject, v.detail);
        }
        println!(
            "audited {} products and {} orders: {} violations",
            report.products,
            report.orders,
            report.violations.len()
        );
    }
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn healthy() -> (Snapshot, Uuid, Uuid) {
        let (product, done, cancelled) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let order = |id, status: &str| Order {
            id,
            status: status.into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        let snapshot = Snapshot {
            stock: vec![Stock {
                product_id: product,
                available: 8,
                reserved: 0,
                sold: 2,
                initial: 10,
                adjusted: 0,
            }],
            orders: vec![order(done, "COMPLETED"), order(cancelled, "CANCELLED")],
            payments: vec![
                Payment {
                    order_id: done,
                    status: "CAPTURED".into(),
                },
                Payment {
                    order_id: cancelled,
                    status: "REFUNDED".into(),
                },
            ],
            shipments: vec![Shipment {
                order_id: done,
                status: "CREATED".into(),
            }],
            reservations: vec![
                Reservation {
                    order_id: done,
                    status: "SOLD".into(),
                    items: vec![Item {
                        product_id: product,
                        quantity: 2,
                    }],
                },
                Reservation {
                    order_id: cancelled,
                    status: "RELEASED".into(),
                    items: vec![Item {
                        product_id: product,
                        quantity: 1,
                    }],
                },
            ],
        };
        (snapshot, done, cancelled)
    }

    fn rules(s: &Snapshot) -> Vec<&'static str> {
        check(s, t("2026-01-01T00:00:30Z"), 60)
            .iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn a_healthy_system_has_no_violations() {
        assert!(rules(&healthy().0).is_empty());
    }

    #[test]
    fn each_broken_invariant_is_named() {
        let (mut s, ..) = healthy();
        s.stock[0].sold = 3;
        assert_eq!(rules(&s), ["stock-conserved", "stock-matches-reservations"]);

        let (mut s, done, _) = healthy();
        s.payments.push(Payment {
            order_id: done,
            status: "CAPTURED".into(),
        });
        assert_eq!(rules(&s), ["completed-charged-once"]);

        let (mut s, ..) = healthy();
        s.payments[1].status = "CAPTURED".into();
        assert_eq!(rules(&s), ["ended-no-charge"]);

        let (mut s, ..) = healthy();
        s.reservations[1].status = "RESERVED".into();
        s.stock[0].reserved = 1;
        s.stock[0].available = 7;
        assert_eq!(rules(&s), ["ended-no-stock"]);

        let (mut s, ..) = healthy();
        let late = Order {
            id: Uuid::now_v7(),
            status: "PAID".into(),
            updated_at: "2025-12-31T23:58:00Z".into(),
        };
        s.orders.push(late);
        assert_eq!(rules(&s), ["not-stuck"]);
    }
}
