//! Stock rules, free of I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agora_platform::events::{LineItem, Shortage};
use agora_platform::validate::{self, Errors};
use agora_platform::validate::{FieldError, Invalid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One product's stock. `initial + adjusted = available + reserved + sold`
/// always holds: units move between buckets, never appear or vanish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stock {
    pub product_id: Uuid,
    pub sku: String,
    /// Units that may be reserved now.
    pub available: i64,
    /// Units held for orders in progress.
    pub reserved: i64,
    /// Units of completed orders.
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reservation {
    pub order_id: Uuid,
    #[schema(value_type = ReservationStatus)]
    pub status: String,
    pub items: Vec<LineItem>,
    pub created_at: String,
    pub updated_at: String,
}

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "UPPERCASE")]
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

/// The three buckets of one product's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
}

/// A bucket of [`Level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Available,
    Reserved,
    Sold,
}

impl Level {
    fn bucket(&mut self, bucket: Bucket) -> &mut i64 {
        match bucket {
            Bucket::Available => &mut self.available,
            Bucket::Reserved => &mut self.reserved,
            Bucket::Sold => &mut self.sold,
        }
    }
}

/// The stock levels a transaction holds (read and locked at its start) and
/// moves units in, remembering which changed: units move between buckets
/// here, and the changed levels are written back once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels {
    levels: BTreeMap<Uuid, Level>,
    changed: BTreeSet<Uuid>,
}

impl Levels {
    /// Adds a product's level as stored (unchanged).
    pub fn insert(&mut self, product_id: Uuid, level: Level) {
        self.levels.insert(product_id, level);
    }

    pub fn get(&self, product_id: Uuid) -> Option<Level> {
        self.levels.get(&product_id).copied()
    }

    /// The products of `items` it holds no level for.
    pub fn missing(&self, items: &[LineItem]) -> BTreeSet<Uuid> {
        items
            .iter()
            .map(|item| item.product_id)
            .filter(|id| !self.levels.contains_key(id))
            .collect()
    }

    /// Adds the levels of `other` it does not hold yet.
    pub fn add(&mut self, other: Levels) {
        for (id, level) in other.levels {
            self.levels.entry(id).or_insert(level);
        }
    }

    /// Moves every item from available to reserved, or none: the
    /// shortages when any item has not enough (an unknown product has
    /// nothing available).
    pub fn reserve(&mut self, items: &[LineItem]) -> Result<(), Vec<Shortage>> {
        let shortages: Vec<Shortage> = items
            .iter()
            .filter_map(|item| {
                let available = self.get(item.product_id).unwrap_or_default().available;
                (available < i64::from(item.quantity)).then_some(Shortage {
                    product_id: item.product_id,
                    requested: item.quantity,
                    available,
                })
            })
            .collect();
        if !shortages.is_empty() {
            return Err(shortages);
        }
        self.shift(items, Bucket::Available, Bucket::Reserved);
        Ok(())
    }

    /// Moves each item's quantity from `from` to `to` where `from` holds
    /// enough (a held reservation's items always are: it put them there).
    pub fn shift(&mut self, items: &[LineItem], from: Bucket, to: Bucket) {
        for item in items {
            let quantity = i64::from(item.quantity);
            if let Some(level) = self.levels.get_mut(&item.product_id) {
                if *level.bucket(from) >= quantity {
                    *level.bucket(from) -= quantity;
                    *level.bucket(to) += quantity;
                    self.changed.insert(item.product_id);
                }
            }
        }
    }

    /// The levels changed since read, in product order; afterwards none is.
    pub fn take_changed(&mut self) -> Vec<(Uuid, Level)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|id| (id, self.levels[&id]))
            .collect()
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

/// `POST /inventory/{id}/adjust` as sent; checked by [`Adjustment::parse`].
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"delta": -2, "reason": "damaged in the warehouse"}))]
pub struct AdjustmentRequest {
    /// Units added (positive) or taken (negative): non-zero, at most
    /// 1,000,000 either way.
    pub delta: i64,
    /// Why: 1 to 500 characters.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adjustment {
    pub delta: i64,
    pub reason: String,
}

impl Adjustment {
    pub fn parse(req: AdjustmentRequest) -> Result<Adjustment, Invalid> {
        let mut errors = Errors::new();
        if req.delta == 0 || req.delta.unsigned_abs() > MAX_ADJUSTMENT.unsigned_abs() {
            errors.add(
                "delta",
                format!("must be non-zero and at most {MAX_ADJUSTMENT} either way"),
            );
        }
        let reason = errors.check("reason", validate::text(&req.reason, 500));
        errors.finish()?;
        Ok(Adjustment {
            delta: req.delta,
            reason: reason.expect("checked"),
        })
    }
}

/// The lines that ask for more than is available, as per-field errors
/// (`items[i].quantity`): the fast stock check before an order is accepted.
/// A product without stock has none.
pub fn shortages(items: &[LineItem], available: &HashMap<Uuid, i64>) -> Vec<FieldError> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let have = available.get(&item.product_id).copied().unwrap_or(0);
            (i64::from(item.quantity) > have).then(|| {
                FieldError::new(
                    format!("items[{i}].quantity"),
                    format!("only {have} in stock"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortages_name_the_lines_beyond_the_stock() {
        let product_id = Uuid::now_v7();
        let line = |quantity| LineItem {
            product_id,
            quantity,
        };
        let available = HashMap::from([(product_id, 3)]);
        assert!(shortages(&[line(3)], &available).is_empty());
        let errors = shortages(&[line(4)], &available);
        assert_eq!(errors[0].field, "items[0].quantity");
        assert!(errors[0].message.contains("only 3"));
        assert_eq!(
            shortages(&[line(1)], &HashMap::new()).len(),
            1,
            "unknown stock is none"
        );
    }

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
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["delta", "reason"]);
        assert!(Adjustment::parse(AdjustmentRequest {
            delta: -5,
            reason: "damaged".into()
        })
        .is_ok());
    }

    fn levels(available: i64) -> (Levels, Uuid, Uuid) {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut levels = Levels::default();
        for id in [a, b] {
            levels.insert(
                id,
                Level {
                    available,
                    ..Level::default()
                },
            );
        }
        (levels, a, b)
    }

    fn line(product_id: Uuid, quantity: u32) -> LineItem {
        LineItem {
            product_id,
            quantity,
        }
    }

    #[test]
    fn a_reservation_takes_every_item_or_none() {
        let (mut levels, a, b) = levels(3);
        let unknown = Uuid::from_u128(3);

        let refused = levels.reserve(&[line(a, 2), line(b, 4), line(unknown, 1)]);
        let taken = levels.reserve(&[line(a, 2), line(b, 3)]);

        let short: Vec<_> = refused
            .unwrap_err()
            .iter()
            .map(|s| (s.product_id, s.requested, s.available))
            .collect();
        assert_eq!(short, [(b, 4, 3), (unknown, 1, 0)]);
        assert_eq!(taken, Ok(()));
        assert_eq!(
            levels.get(a).unwrap(),
            Level {
                available: 1,
                reserved: 2,
                sold: 0
            }
        );
        assert_eq!(
            levels.get(b).unwrap(),
            Level {
                available: 0,
                reserved: 3,
                sold: 0
            }
        );
    }

    #[test]
    fn units_move_between_buckets_and_only_changed_levels_are_written() {
        let (mut levels, a, b) = levels(5);
        levels.reserve(&[line(a, 4)]).unwrap();

        levels.shift(&[line(a, 3)], Bucket::Reserved, Bucket::Sold);
        levels.shift(&[line(a, 2)], Bucket::Reserved, Bucket::Available);
        let changed = levels.take_changed();

        assert_eq!(
            changed,
            [(
                a,
                Level {
                    available: 1,
                    reserved: 1,
                    sold: 3
                }
            )]
        );
        assert!(!changed.iter().any(|(id, _)| *id == b));
        assert!(levels.take_changed().is_empty());
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
