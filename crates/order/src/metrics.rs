//! The saga as Prometheus sees it: each transition as it commits (a count
//! per state entered, the time spent in the state it left, creation to a
//! terminal state, the compensations asked for), and the orders in each
//! state now, read at each scrape.

use agora_platform::metrics::Gauges;
use agora_platform::Db;
use async_trait::async_trait;

use crate::domain::{Awaiting, OrderStatus};
use crate::store;

pub const TRANSITIONS: &str = "agora_saga_transitions_total";
pub const STEP_DURATION: &str = "agora_saga_step_duration_seconds";
pub const SAGA_DURATION: &str = "agora_saga_duration_seconds";
pub const COMPENSATIONS: &str = "agora_saga_compensations_total";
pub const ORDERS: &str = "agora_orders";
pub const REQUIRING_ATTENTION: &str = "agora_orders_requiring_attention";

/// One committed change of an order's state.
pub struct Transition {
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// Seconds in `from` (since the order was last written).
    pub in_state_secs: Option<f64>,
    /// Seconds since the order was created.
    pub age_secs: Option<f64>,
    /// What a move to COMPENSATING waits for.
    pub awaiting: Awaiting,
}

/// The `# HELP` line of each saga family (once the recorder is installed).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(TRANSITIONS, "Orders entering each saga state.");
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Time an order spent in the state it left."
    );
    describe_histogram!(
        SAGA_DURATION,
        Unit::Seconds,
        "Time from an order's creation to its terminal state."
    );
    describe_counter!(
        COMPENSATIONS,
        "Stock releases and refunds a cancellation asked for."
    );
    describe_gauge!(ORDERS, "Orders in each state now.");
    describe_gauge!(REQUIRING_ATTENTION, "Orders waiting for an operator.");
}

pub fn record(t: &Transition) {
    let state = label(t.to);
    metrics::counter!(TRANSITIONS, "state" => state.clone()).increment(1);
    if let (Some(from), Some(secs)) = (t.from, t.in_state_secs) {
        metrics::histogram!(STEP_DURATION, "step" => label(from)).record(secs);
    }
    if t.to.is_terminal() {
        let age = t.age_secs.unwrap_or(0.0);
        metrics::histogram!(SAGA_DURATION, "outcome" => state).record(age);
    }
    if t.to == OrderStatus::Compensating && t.from != Some(OrderStatus::Compensating) {
        let kinds = [
            ("stock_release", t.awaiting.stock_release),
            ("refund", t.awaiting.refund),
        ];
        for (kind, asked) in kinds {
            if asked {
                metrics::counter!(COMPENSATIONS, "kind" => kind).increment(1);
            }
        }
    }
}

/// `PENDING` as `pending`: label values in Prometheus's own case.
fn label(status: OrderStatus) -> String {
    status.as_str().to_ascii_lowercase()
}

/// Orders in each state, and those waiting for an operator.
pub struct OrderGauges(pub Db);

#[async_trait]
impl Gauges for OrderGauges {
    async fn update(&self) {
        let Ok(counts) = store::status_counts(&self.0).await else {
            return;
        };
        for status in OrderStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(ORDERS, "state" => label(status)).set(n as f64);
            if status == OrderStatus::RequiresAttention {
                metrics::gauge!(REQUIRING_ATTENTION).set(n as f64);
            }
        }
    }
}
