//! Stock rules, free of I/O.

use std::collections::BTreeMap;

use agora_platform::events::LineItem;
use agora_platform::http::ApiError;
use agora_platform::validate::{self, Errors};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One product's stock. `initial + adjusted = available + reserved + sold`
/// always holds: units move between buckets, never appear or vanish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stock {
    pub product_id: Uuid,
    pub sku: String,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    /// Opening stock.
    pub initial: i64,
    /// Sum of all adjustments since.
    pub adjusted: i64,
}

impl Stock {
    pub fn is_conserved(&self) -> bool {
        self.initial + self.adjusted == self.available + self.reserved + self.sold
    }
}

/// An order's claim on stock, as operators and the audit see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reservation {
    pub order_id: Uuid,
    pub status: String,
    pub items: Vec<LineItem>,
    pub created_at: String,
    pub updated_at: String,
}

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Reserved,
    Rejected,
    Released,
    Sold,
    /// The order was cancelled before its reservation was attempted: a
    /// tombstone that stops a late `OrderCreated` from reserving.
    Cancelled,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Rejected => "REJECTED",
            Self::Released => "RELEASED",
            Self::Sold => "SOLD",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Reserved,
            Self::Rejected,
            Self::Released,
            Self::Sold,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// Merges lines of the same product and sorts by product id, so that every
/// reservation locks rows in the same order (no deadlocks between instances).
pub fn normalize(items: impl IntoIterator<Item = LineItem>) -> Vec<LineItem> {
    let mut merged: BTreeMap<Uuid, u32> = BTreeMap::new();
    for item in items {
        *merged.entry(item.product_id).or_default() += item.quantity;
    }
    merged
        .into_iter()
        .map(|(product_id, quantity)| LineItem {
            product_id,
            quantity,
        })
        .collect()
}

/// The largest single adjustment.
pub const MAX_ADJUSTMENT: i64 = 1_000_000;

/// `POST /inventory/{id}/adjust` as sent.
#[derive(Debug, Deserialize)]
pub struct AdjustmentRequest {
    pub delta: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adjustment {
    pub delta: i64,
    pub reason: String,
}

impl Adjustment {
    pub fn parse(req: AdjustmentRequest) -> Result<Adjustment, ApiError> {
        let mut errors = Errors::new();
        if req.delta == 0 || req.delta.abs() > MAX_ADJUSTMENT {
            errors.add(
                "delta",
                format!("must be non-zero and at most {MAX_ADJUSTMENT} either way"),
            );
        }
        let reason = errors.check("reason", validate::non_empty(&req.reason, 500));
        errors.finish()?;
        Ok(Adjustment {
            delta: req.delta,
            reason: reason.expect("checked"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_merges_and_sorts() {
        let a = Uuid::from_u128(2);
        let b = Uuid::from_u128(1);
        let items = normalize([
            LineItem {
                product_id: a,
                quantity: 1,
            },
            LineItem {
                product_id: b,
                quantity: 2,
            },
            LineItem {
                product_id: a,
                quantity: 3,
            },
        ]);
        assert_eq!(
            items,
            [
                LineItem {
                    product_id: b,
                    quantity: 2
                },
                LineItem {
                    product_id: a,
                    quantity: 4
                },
            ]
        );
    }

    #[test]
    fn adjustments_need_a_delta_and_a_reason() {
        let err = Adjustment::parse(AdjustmentRequest {
            delta: 0,
            reason: "".into(),
        })
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["delta", "reason"]);
        assert!(Adjustment::parse(AdjustmentRequest {
            delta: -5,
            reason: "damaged".into()
        })
        .is_ok());
    }

    #[test]
    fn conservation() {
        let stock = Stock {
            product_id: Uuid::nil(),
            sku: "X".into(),
            available: 5,
            reserved: 3,
            sold: 2,
            initial: 8,
            adjusted: 2,
        };
        assert!(stock.is_conserved());
        assert!(!Stock { sold: 3, ..stock }.is_conserved());
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["RESERVED", "REJECTED", "RELEASED", "SOLD", "CANCELLED"] {
            assert_eq!(ReservationStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
