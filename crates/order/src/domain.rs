//! Orders and the saga's state machine, free of I/O.
//!
//! [`decide`] is the whole orchestration policy: given the order's status and
//! what just happened, it says which status comes next and which events the
//! order service must emit. Everything else in this crate moves data in and
//! out of storage around it.

use agora_platform::events::{Address, CancelCode, LineItem, Money, PricedItem};
use agora_platform::validate::Invalid;
use agora_platform::validate::{self, Errors, MAX_ITEMS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where an order is in the saga: PENDING, RESERVED and PAID move on;
/// COMPENSATING and REQUIRES_ATTENTION wait for compensations to be
/// confirmed; COMPLETED, CANCELLED and REJECTED are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Accepted; waiting for stock.
    Pending,
    /// Stock held; waiting for payment.
    Reserved,
    /// Paid; waiting for a shipment.
    Paid,
    /// Shipped and done.
    Completed,
    /// Cancelled; waiting for the stock release and refund it asked for to
    /// be confirmed.
    Compensating,
    /// A compensation was not confirmed in time: an operator retries it or
    /// force-cancels the order.
    RequiresAttention,
    /// Ended by the customer or by a failed step; anything held was given back.
    Cancelled,
    /// Ended because the stock was not there; nothing was held.
    Rejected,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Pending,
        Self::Reserved,
        Self::Paid,
        Self::Completed,
        Self::Compensating,
        Self::RequiresAttention,
        Self::Cancelled,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Reserved => "RESERVED",
            Self::Paid => "PAID",
            Self::Completed => "COMPLETED",
            Self::Compensating => "COMPENSATING",
            Self::RequiresAttention => "REQUIRES_ATTENTION",
            Self::Cancelled => "CANCELLED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Rejected)
    }
}

/// Compensations an order waits to see confirmed before it is cancelled.
/// Shown in the API as a list: `["stock_release", "refund"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Awaiting {
    pub stock_release: bool,
    pub refund: bool,
}

impl Awaiting {
    pub const NONE: Awaiting = Awaiting {
        stock_release: false,
        refund: false,
    };

    pub fn is_empty(self) -> bool {
        self == Self::NONE
    }

    /// As stored: `stock_release,refund`, or empty.
    pub fn as_text(self) -> String {
        let mut parts = Vec::new();
        if self.stock_release {
            parts.push("stock_release");
        }
        if self.refund {
            parts.push("refund");
        }
        parts.join(",")
    }

    pub fn parse(s: &str) -> Awaiting {
        Awaiting {
            stock_release: s.split(',').any(|p| p == "stock_release"),
            refund: s.split(',').any(|p| p == "refund"),
        }
    }
}

impl Serialize for Awaiting {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.as_text();
        let parts: Vec<&str> = text.split(',').filter(|p| !p.is_empty()).collect();
        parts.serialize(serializer)
    }
}

/// As [`Awaiting`]'s `Serialize` writes it: a list of the names of the
/// compensations waited for, in this order, each at most once.
impl utoipa::PartialSchema for Awaiting {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["stock_release", "refund"])),
            )
            .unique_items(true)
            .max_items(Some(2))
            .description(Some(
                "Compensations not yet confirmed: `stock_release`, `refund`, \
                 both (in that order) or none.",
            ))
            .examples([serde_json::json!(["stock_release", "refund"])])
            .into()
    }
}

impl utoipa::ToSchema for Awaiting {}

/// What happened to an order: the inputs of the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    StockReserved,
    StockRejected {
        reason: String,
    },
    PaymentSucceeded,
    PaymentFailed {
        reason: String,
    },
    ShippingCreated {
        tracking_number: String,
    },
    CancelRequested {
        reason: String,
    },
    /// The current step took longer than its deadline.
    TimedOut,
    /// An operator asks to emit the compensation again.
    RetryCompensation,
    /// An operator ends the order without waiting for confirmations.
    ForceCancel,
    /// Stock released: a compensation's confirmation, or the inventory
    /// giving up a reservation that outlived its time to live.
    StockReleased,
    /// Confirmation of a compensation.
    PaymentRefunded,
}

/// An event the order service must emit after a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    PaymentRequested,
    ShippingRequested,
    OrderCompleted,
    OrderCancelled { reason: String, code: CancelCode },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Move to `to` (recording `reason`), emit `emit`, and wait for the
    /// confirmations in `awaiting`.
    Transition {
        to: OrderStatus,
        reason: Option<String>,
        emit: Vec<Emit>,
        awaiting: Awaiting,
        /// For the timeline when it says more than the reason.
        note: Option<String>,
    },
    /// Record `note` in the timeline; the status stays, `awaiting` is updated.
    Note { note: String, awaiting: Awaiting },
    /// A late or duplicate event: nothing changes.
    Ignore,
    /// A command that this status does not allow (a 409 for the client).
    Refuse(String),
}

/// The saga's policy. `awaiting` is what the order still waits to see
/// confirmed after a cancellation.
pub fn decide(status: OrderStatus, awaiting: Awaiting, input: &Input) -> Decision {
    use Input::*;
    use OrderStatus::*;
    // Cancelling gives back what is held: stock once reserved, the payment
    // once captured. With nothing to wait for, the order is cancelled at once.
    let cancel = |reason: String, code: CancelCode, awaiting: Awaiting| Decision::Transition {
        to: if awaiting.is_empty() {
            Cancelled
        } else {
            Compensating
        },
        reason: Some(reason.clone()),
        emit: vec![Emit::OrderCancelled { reason, code }],
        awaiting,
        note: None,
    };
    let holds = |status: OrderStatus| Awaiting {
        stock_release: matches!(status, Reserved | Paid),
        refund: status == Paid,
    };
    let step = |to: OrderStatus, emit: Emit| Decision::Transition {
        to,
        reason: None,
        emit: vec![emit],
        awaiting: Awaiting::NONE,
        note: None,
    };
    // A confirmation clears what it confirms; the last one ends the order.
    let confirm = |left: Awaiting, note: &str| {
        if left.is_empty() {
            // The reason stays the cancellation's; the note says what ended it.
            Decision::Transition {
                to: Cancelled,
                reason: None,
                emit: vec![],
                awaiting: left,
                note: Some(note.into()),
            }
        } else {
            Decision::Note {
                note: note.into(),
                awaiting: left,
            }
        }
    };
    match (status, input) {
        (Pending, StockReserved) => step(Reserved, Emit::PaymentRequested),
        (Pending, StockRejected { reason }) => Decision::Transition {
            to: Rejected,
            reason: Some(format!("stock rejected: {reason}")),
            emit: vec![Emit::OrderCancelled {
                reason: format!("stock rejected: {reason}"),
                code: CancelCode::OutOfStock,
            }],
            awaiting: Awaiting::NONE, note: None },
        (Reserved, PaymentSucceeded) => step(Paid, Emit::ShippingRequested),
        (Reserved, PaymentFailed { reason }) => cancel(format!("payment failed: {reason}"), CancelCode::PaymentDeclined, holds(Reserved)),
        (Paid, ShippingCreated { .. }) => step(Completed, Emit::OrderCompleted),
        (Pending | Reserved | Paid, CancelRequested { reason }) => cancel(reason.clone(), CancelCode::CustomerRequest, holds(status)),
        (Pending | Reserved | Paid, TimedOut) => {
            cancel(format!("timed out waiting in {}", status.as_str()), CancelCode::TimedOut, holds(status))
        }
        // The inventory gave the reservation up (it expired).
        (Reserved | Paid, StockReleased) => cancel(
            "the stock reservation expired".into(),
            CancelCode::ReservationExpired,
            Awaiting {
                stock_release: false,
                ..holds(status)
            },
        ),
        (Compensating | RequiresAttention, StockReleased) => confirm(
            Awaiting {
                stock_release: false,
                ..awaiting
            },
            "stock released",
        ),
        (Compensating | RequiresAttention, PaymentRefunded) => confirm(
            Awaiting {
                refund: false,
                ..awaiting
            },
            "payment refunded",
        ),
        (Compensating, TimedOut) => {
            let mut missing = Vec::new();
            if awaiting.stock_release {
                missing.push("stock release");
            }
            if awaiting.refund {
                missing.push("refund");
            }
            Decision::Transition {
                to: RequiresAttention,
                reason: Some(format!("not confirmed in time: {}", missing.join(", "))),
                emit: vec![],
                awaiting, note: None }
        }
        (RequiresAttention, RetryCompensation) => Decision::Transition {
            to: Compensating,
            reason: None,
            emit: vec![Emit::OrderCancelled {
                reason: "compensation retried by an operator".into(),
                code: CancelCode::CompensationRetried,
            }],
            awaiting, note: None },
        (Compensating | RequiresAttention, ForceCancel) => Decision::Transition {
            to: Cancelled,
            reason: Some("force-cancelled by an operator".into()),
            emit: vec![],
            awaiting: Awaiting::NONE, note: None },
        (_, RetryCompensation | ForceCancel) => Decision::Refuse(format!(
            "the order is {}; only an order whose compensation is pending can be retried or force-cancelled",
            status.as_str()
        )),
        (Compensating | RequiresAttention, CancelRequested { .. }) => {
            Decision::Refuse("the order is already being cancelled".into())
        }
        (Completed | Cancelled | Rejected, CancelRequested { .. }) => Decision::Refuse(format!(
            "the order is {} and can no longer be cancelled",
            status.as_str()
        )),
        (Cancelled | Rejected, StockReleased) => Decision::Note {
            note: "stock released".into(),
            awaiting: Awaiting::NONE,
        },
        (Cancelled | Rejected, PaymentRefunded) => Decision::Note {
            note: "payment refunded".into(),
            awaiting: Awaiting::NONE,
        },
        // Terminal states ignore late and duplicate events; a non-terminal
        // state ignores events that belong to another step.
        _ => Decision::Ignore,
    }
}

/// `POST /orders` as sent.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "email": "ada@example.com",
    "phone": "+15551234567",
    "items": [{"product_id": "00000000-0000-7000-8000-000000000001", "quantity": 2}],
    "shipping_address": {"name": "Ada Lovelace", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    "payment_token": "tok_visa"
}))]
pub struct PlaceOrderRequest {
    /// Filled in from the caller's token; one that names another customer
    /// is refused.
    #[serde(default)]
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub customer_id: Option<String>,
    /// Where the notifications go.
    #[schema(
        max_length = 254,
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]+@[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*\\.[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][\\s\\u0085]*$"
    )]
    pub email: String,
    /// International form (`+` and 7 to 15 digits; spaces and dashes are
    /// dropped): SMS notifications too. Blank is none.
    #[serde(default)]
    #[schema(pattern = "^[\\s\\u0085]*([ -]*\\+[ -]*([0-9][ -]*){7,15}[\\s\\u0085]*)?$")]
    pub phone: Option<String>,
    /// 1 to 100 lines; lines of the same product are merged.
    pub items: Vec<ItemRequest>,
    pub shipping_address: Address,
    /// The payment method, charged once the stock is held (`tok_decline`
    /// is always declined).
    #[schema(pattern = "^[!-~]{1,200}$")]
    pub payment_token: String,
}

/// A product and how many of it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemRequest {
    pub product_id: Uuid,
    /// 1 to 1,000 (of one product, over all its lines).
    pub quantity: i64,
}

/// An order request that passed every check, not priced yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub customer_id: String,
    pub email: String,
    pub phone: Option<String>,
    /// Merged per product, in request order of first appearance.
    pub items: Vec<LineItem>,
    pub shipping_address: Address,
    pub payment_token: String,
}

impl PlaceOrder {
    pub fn parse(req: PlaceOrderRequest) -> Result<PlaceOrder, Invalid> {
        let mut errors = Errors::new();
        let customer_id = errors.check(
            "customer_id",
            req.customer_id
                .as_deref()
                .ok_or_else(|| "is required".to_owned())
                .and_then(|c| validate::text(c, 100)),
        );
        let items = parse_items(&req.items, &mut errors);
        let purchase = validate::purchase(
            &req.email,
            req.phone.as_deref(),
            &req.shipping_address,
            &req.payment_token,
            &mut errors,
        );
        errors.finish()?;
        let purchase = purchase.expect("checked");
        Ok(PlaceOrder {
            customer_id: customer_id.expect("checked"),
            email: purchase.email,
            phone: purchase.phone,
            items,
            shipping_address: purchase.shipping_address,
            payment_token: purchase.payment_token,
        })
    }
}

/// Checks each line (naming `items[i].quantity`) and merges lines of the same
/// product.
pub fn parse_items(items: &[ItemRequest], errors: &mut Errors) -> Vec<LineItem> {
    if items.is_empty() {
        errors.add("items", "must contain at least one item");
    } else if items.len() > MAX_ITEMS {
        errors.add("items", format!("must contain at most {MAX_ITEMS} items"));
    }
    let mut merged: Vec<LineItem> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(quantity) = errors.check(
            &format!("items[{i}].quantity"),
            validate::quantity(item.quantity),
        ) else {
            continue;
        };
        match merged.iter_mut().find(|m| m.product_id == item.product_id) {
            Some(line) => line.quantity += quantity,
            None => merged.push(LineItem {
                product_id: item.product_id,
                quantity,
            }),
        }
    }
    for line in &merged {
        if i64::from(line.quantity) > validate::MAX_QUANTITY {
            errors.add(
                "items",
                format!("at most {} units of one product", validate::MAX_QUANTITY),
            );
        }
    }
    merged
}

/// An order as stored and as the API shows it.
// An `Option` serde always writes (as `null` when none) is `required` in
// the schema; utoipa makes every `Option` optional unless told.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: String,
    pub email: String,
    #[schema(required = true)]
    pub phone: Option<String>,
    pub status: OrderStatus,
    /// Why it was cancelled or rejected, or why it needs attention.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Compensations not yet confirmed (while COMPENSATING or REQUIRES_ATTENTION).
    pub awaiting: Awaiting,
    pub items: Vec<PricedItem>,
    pub total: Money,
    pub shipping_address: Address,
    #[serde(skip)]
    pub payment_token: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One state change (or note) in an order's life.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// RFC 3339.
    pub at: String,
    /// The status before; the same as `to` for a note. None for the order's
    /// creation.
    #[schema(required = true)]
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// The event type or API call that caused it.
    pub cause: String,
    /// The event that caused it, if an event did.
    #[schema(required = true)]
    pub event_id: Option<Uuid>,
    /// Who asked for it, for an API call (`"<role> <account id>"`): the
    /// audit trail of what customers and operators did to the order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub actor: Option<String>,
    #[schema(required = true)]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_give_the_rate_of_completions_and_the_percentiles_of_their_times() {
        let at = |secs: u32, ms: u32| format!("2026-12-01T10:00:{secs:02}.{ms:03}Z");
        let durations: Vec<(String, String)> = (0..100)
            .map(|i| (at(0, 0), at(i / 10, (i % 10) * 100)))
            .collect();
        let stats = OrderStats::new(
            10,
            &[(OrderStatus::Pending, 3)],
            &[(OrderStatus::Completed, 95), (OrderStatus::Cancelled, 5)],
            &durations,
        );
        assert_eq!(stats.completed_per_sec, 9.5);
        assert_eq!(stats.in_flight.get("PENDING"), Some(&3));
        assert_eq!(stats.ended.get("CANCELLED"), Some(&5));
        // 0, 100, …, 9,900 ms: the 50th and 99th percentiles by nearest rank.
        assert_eq!((stats.p50_ms, stats.p99_ms), (Some(5_000), Some(9_800)));
        assert_eq!(stats.sampled, 100);
        let none = OrderStats::new(60, &[], &[], &[]);
        assert_eq!(
            (none.p50_ms, none.p99_ms, none.completed_per_sec),
            (None, None, 0.0)
        );
    }
    use Input::*;
    use OrderStatus::*;

    fn to(decision: Decision) -> Option<OrderStatus> {
        match decision {
            Decision::Transition { to, .. } => Some(to),
            _ => None,
        }
    }

    fn every_input() -> Vec<Input> {
        vec![
            StockReserved,
            StockRejected { reason: "r".into() },
            PaymentSucceeded,
            PaymentFailed { reason: "r".into() },
            ShippingCreated {
                tracking_number: "t".into(),
            },
            CancelRequested { reason: "r".into() },
            TimedOut,
            StockReleased,
            PaymentRefunded,
            RetryCompensation,
            ForceCancel,
        ]
    }

    /// The whole table: (status, input) -> next status, or no transition.
    #[test]
    fn transition_table() {
        let r = || "r".to_owned();
        let table: Vec<(OrderStatus, Input, Option<OrderStatus>)> = vec![
            (Pending, StockReserved, Some(Reserved)),
            (Pending, StockRejected { reason: r() }, Some(Rejected)),
            (Pending, PaymentSucceeded, None),
            (Pending, CancelRequested { reason: r() }, Some(Cancelled)),
            (Reserved, PaymentSucceeded, Some(Paid)),
            (Reserved, PaymentFailed { reason: r() }, Some(Compensating)),
            (Reserved, StockReserved, None),
            (
                Reserved,
                CancelRequested { reason: r() },
                Some(Compensating),
            ),
            (
                Paid,
                ShippingCreated {
                    tracking_number: "t".into(),
                },
                Some(Completed),
            ),
            (Paid, PaymentSucceeded, None),
            (Paid, CancelRequested { reason: r() }, Some(Compensating)),
            (Pending, TimedOut, Some(Cancelled)),
            (Reserved, TimedOut, Some(Compensating)),
            (Paid, TimedOut, Some(Compensating)),
            (Pending, StockReleased, None),
            (Reserved, StockReleased, Some(Cancelled)),
            (Paid, StockReleased, Some(Compensating)),
            (Compensating, TimedOut, Some(RequiresAttention)),
            (Compensating, CancelRequested { reason: r() }, None),
            (Compensating, ForceCancel, Some(Cancelled)),
            (RequiresAttention, RetryCompensation, Some(Compensating)),
            (RequiresAttention, ForceCancel, Some(Cancelled)),
            (Paid, ForceCancel, None),
            (Compensating, RetryCompensation, None),
        ];
        for (status, input, expected) in table {
            assert_eq!(
                to(decide(status, holds(status), &input)),
                expected,
                "{status:?} + {input:?}"
            );
        }
    }

    /// What an order in `status` waits for once cancelled from there.
    fn holds(status: OrderStatus) -> Awaiting {
        match status {
            Compensating | RequiresAttention => Awaiting {
                stock_release: true,
                refund: true,
            },
            _ => Awaiting::NONE,
        }
    }

    #[test]
    fn terminal_states_never_move() {
        for status in [Completed, Cancelled, Rejected] {
            for input in every_input() {
                let decision = decide(status, Awaiting::NONE, &input);
                assert!(
                    !matches!(decision, Decision::Transition { .. }),
                    "{status:?} + {input:?} -> {decision:?}"
                );
            }
        }
    }

    #[test]
    fn cancelling_a_finished_order_is_refused() {
        for status in [
            Completed,
            Cancelled,
            Rejected,
            Compensating,
            RequiresAttention,
        ] {
            assert!(matches!(
                decide(
                    status,
                    Awaiting::NONE,
                    &CancelRequested { reason: "r".into() }
                ),
                Decision::Refuse(_)
            ));
        }
    }

    #[test]
    fn every_failure_emits_order_cancelled_with_a_reason_and_its_code() {
        let r = |s: &str| s.to_owned();
        let both = Awaiting {
            stock_release: true,
            refund: true,
        };
        for (status, awaiting, input, code) in [
            (
                Pending,
                Awaiting::NONE,
                StockRejected {
                    reason: r("no stock"),
                },
                CancelCode::OutOfStock,
            ),
            (
                Reserved,
                Awaiting::NONE,
                PaymentFailed {
                    reason: r("declined"),
                },
                CancelCode::PaymentDeclined,
            ),
            (
                Paid,
                Awaiting::NONE,
                CancelRequested {
                    reason: r("changed my mind"),
                },
                CancelCode::CustomerRequest,
            ),
            (Reserved, Awaiting::NONE, TimedOut, CancelCode::TimedOut),
            (
                Paid,
                Awaiting::NONE,
                StockReleased,
                CancelCode::ReservationExpired,
            ),
            (
                RequiresAttention,
                both,
                RetryCompensation,
                CancelCode::CompensationRetried,
            ),
        ] {
            let Decision::Transition { reason, emit, .. } = decide(status, awaiting, &input) else {
                panic!("{status:?} + {input:?} should transition");
            };
            let [Emit::OrderCancelled {
                reason: said,
                code: coded,
            }] = emit.as_slice()
            else {
                panic!("{status:?} + {input:?} emits {emit:?}");
            };
            assert_eq!(*coded, code, "{status:?} + {input:?}");
            if let Some(reason) = reason {
                assert_eq!(*said, reason);
            }
        }
    }

    #[test]
    fn cancelling_waits_for_what_was_held() {
        let awaits = |status| match decide(
            status,
            Awaiting::NONE,
            &CancelRequested { reason: "r".into() },
        ) {
            Decision::Transition { awaiting, .. } => awaiting,
            other => panic!("{other:?}"),
        };
        assert_eq!(awaits(Pending), Awaiting::NONE);
        assert_eq!(
            awaits(Reserved),
            Awaiting {
                stock_release: true,
                refund: false
            }
        );
        assert_eq!(
            awaits(Paid),
            Awaiting {
                stock_release: true,
                refund: true
            }
        );
    }

    #[test]
    fn confirmations_end_the_compensation() {
        let both = Awaiting {
            stock_release: true,
            refund: true,
        };
        let after_stock = decide(Compensating, both, &StockReleased);
        let Decision::Note { awaiting, .. } = after_stock else {
            panic!("{after_stock:?}")
        };
        assert_eq!(
            awaiting,
            Awaiting {
                stock_release: false,
                refund: true
            }
        );
        assert_eq!(
            to(decide(Compensating, awaiting, &PaymentRefunded)),
            Some(Cancelled)
        );
        // A confirmation that comes after an operator stepped in still ends it.
        assert_eq!(
            to(decide(
                RequiresAttention,
                Awaiting {
                    stock_release: false,
                    refund: true
                },
                &PaymentRefunded
            )),
            Some(Cancelled)
        );
    }

    #[test]
    fn an_unconfirmed_compensation_requires_attention_and_can_be_retried() {
        let waiting = Awaiting {
            stock_release: false,
            refund: true,
        };
        let Decision::Transition { to, reason, .. } = decide(Compensating, waiting, &TimedOut)
        else {
            panic!()
        };
        assert_eq!(to, RequiresAttention);
        assert_eq!(reason.as_deref(), Some("not confirmed in time: refund"));
        let Decision::Transition { emit, awaiting, .. } =
            decide(RequiresAttention, waiting, &RetryCompensation)
        else {
            panic!()
        };
        assert!(matches!(emit.as_slice(), [Emit::OrderCancelled { .. }]));
        assert_eq!(awaiting, waiting);
    }

    #[test]
    fn happy_path_emits_the_next_request() {
        let emits = |s, i| match decide(s, Awaiting::NONE, &i) {
            Decision::Transition { emit, .. } => emit,
            other => panic!("{other:?}"),
        };
        assert_eq!(emits(Pending, StockReserved), [Emit::PaymentRequested]);
        assert_eq!(emits(Reserved, PaymentSucceeded), [Emit::ShippingRequested]);
        assert_eq!(
            emits(
                Paid,
                ShippingCreated {
                    tracking_number: "t".into()
                }
            ),
            [Emit::OrderCompleted]
        );
    }

    #[test]
    fn compensations_are_noted_after_cancellation() {
        assert_eq!(
            decide(Cancelled, Awaiting::NONE, &StockReleased),
            Decision::Note {
                note: "stock released".into(),
                awaiting: Awaiting::NONE
            }
        );
        assert_eq!(
            decide(Cancelled, Awaiting::NONE, &PaymentRefunded),
            Decision::Note {
                note: "payment refunded".into(),
                awaiting: Awaiting::NONE
            }
        );
    }

    #[test]
    fn duplicate_lines_merge_and_bad_quantities_are_named() {
        let id = Uuid::now_v7();
        let mut errors = Errors::new();
        let items = parse_items(
            &[
                ItemRequest {
                    product_id: id,
                    quantity: 2,
                },
                ItemRequest {
                    product_id: id,
                    quantity: 3,
                },
                ItemRequest {
                    product_id: Uuid::now_v7(),
                    quantity: 0,
                },
            ],
            &mut errors,
        );
        assert_eq!(
            items,
            [LineItem {
                product_id: id,
                quantity: 5
            }]
        );
        let err = errors.finish().unwrap_err();
        assert_eq!(err.0[0].field, "items[2].quantity");
    }
}

/// The dashboard's figures of the orders: how many are in each state that
/// is not final, and of those that ended in the window, how many of each
/// final state, per second, and the time they took.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderStats {
    pub window_secs: u64,
    /// Orders in each state that is not final now (a state without any is absent).
    #[schema(schema_with = in_flight_schema)]
    pub in_flight: BTreeMap<&'static str, i64>,
    /// Orders that reached each final state in the window (a state without any is absent).
    #[schema(schema_with = ended_schema)]
    pub ended: BTreeMap<&'static str, i64>,
    /// COMPLETED orders in the window, per second.
    pub completed_per_sec: f64,
    /// From creation to the final state, over the latest ended orders
    /// (`sampled` of them); none when no order ended in the window.
    #[schema(required = true)]
    pub p50_ms: Option<i64>,
    #[schema(required = true)]
    pub p99_ms: Option<i64>,
    pub sampled: usize,
}

/// A count by status, as [`OrderStats`] writes it: an object whose keys
/// are some of `states` (those with orders), each a number of orders.
fn counts_schema(
    states: impl Iterator<Item = OrderStatus>,
    description: &str,
) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    states
        .fold(ObjectBuilder::new(), |object, status| {
            object.property(
                status.as_str(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(1)),
            )
        })
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(description))
        .build()
}

fn in_flight_schema() -> utoipa::openapi::schema::Object {
    counts_schema(
        OrderStatus::ALL.into_iter().filter(|s| !s.is_terminal()),
        "Orders in each state that is not final now (a state without any is absent).",
    )
}

fn ended_schema() -> utoipa::openapi::schema::Object {
    counts_schema(
        OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()),
        "Orders that reached each final state in the window (a state without any is absent).",
    )
}

impl OrderStats {
    /// From the counts by state (in flight; ended in the window) and the
    /// (created, ended) times of the latest ended orders.
    pub fn new(
        window_secs: u64,
        in_flight: &[(OrderStatus, i64)],
        ended: &[(OrderStatus, i64)],
        durations: &[(String, String)],
    ) -> OrderStats {
        let mut took: Vec<i64> = durations
            .iter()
            .filter_map(|(created, ended)| {
                let parse = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
                Some((parse(ended)? - parse(created)?).whole_milliseconds() as i64)
            })
            .collect();
        took.sort_unstable();
        let at = |q: f64| {
            (!took.is_empty()).then(|| took[((took.len() - 1) as f64 * q).round() as usize])
        };
        let completed = ended
            .iter()
            .filter(|(s, _)| *s == OrderStatus::Completed)
            .map(|(_, n)| *n)
            .sum::<i64>();
        OrderStats {
            window_secs,
            in_flight: in_flight.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
            ended: ended.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
            completed_per_sec: completed as f64 / window_secs as f64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            sampled: took.len(),
        }
    }
}

/// A line of a list of orders.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub total: Money,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}
