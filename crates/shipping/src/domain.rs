//! Shipments and how a carrier and tracking number are chosen, free of I/O.

use agora_platform::events::{Address, LineItem};
use serde::Serialize;
use uuid::Uuid;

/// CREATED, or CANCELLED with its order after it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShipmentStatus {
    Created,
    /// Cancelled with its order after it was created.
    Cancelled,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Created, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// One order's shipment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Shipment {
    pub id: Uuid,
    pub order_id: Uuid,
    /// Whose order it ships; absent on shipments recorded before it was
    /// kept.
    #[schema(required = true)]
    pub customer_id: Option<String>,
    pub status: ShipmentStatus,
    /// DHL within Germany, UPS elsewhere.
    #[schema(example = "DHL")]
    pub carrier: String,
    #[schema(example = "AG0123456789012")]
    pub tracking_number: String,
    /// Where it goes; absent on shipments recorded before it was kept.
    #[schema(required = true)]
    pub address: Option<Address>,
    pub items: Vec<LineItem>,
    /// RFC 3339.
    pub created_at: String,
}

/// An order cancelled before shipping was asked for. Recorded in the place
/// of its shipment (one record per order), so that a late request finds
/// the order taken and never ships; it holds no carrier, tracking number
/// or items, because nothing was shipped. Not listed by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Void {
    pub order_id: Uuid,
    /// When the void was recorded (RFC 3339).
    pub at: String,
}

/// What the shipping service holds for an order: its shipment, or the
/// void that took its place. Read once per event and matched at once, so
/// the small void's unused room costs nothing worth a box.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Shipment(Shipment),
    Voided(Void),
}

/// Domestic parcels go with one carrier, the rest with another.
pub fn carrier_for(country: &str) -> &'static str {
    if country == "DE" {
        "DHL"
    } else {
        "UPS"
    }
}

/// A tracking number derived from the shipment id: stable and unique.
pub fn tracking_number(shipment_id: Uuid) -> String {
    let digits = shipment_id.as_u128() % 10_000_000_000_000;
    format!("AG{digits:013}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriers_by_country() {
        assert_eq!(carrier_for("DE"), "DHL");
        assert_eq!(carrier_for("FR"), "UPS");
    }

    #[test]
    fn tracking_numbers_are_stable_and_shaped() {
        let id = Uuid::now_v7();
        assert_eq!(tracking_number(id), tracking_number(id));
        assert_eq!(tracking_number(id).len(), 15);
        assert!(tracking_number(id).starts_with("AG"));
    }
}
