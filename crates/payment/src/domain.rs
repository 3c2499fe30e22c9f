//! The simulated payment gateway and payment states, free of I/O.

use agora_platform::events::Money;
use serde::Serialize;
use uuid::Uuid;

/// The token that the gateway always declines.
pub const DECLINE_TOKEN: &str = "tok_decline";

/// A deterministic stand-in for a card processor.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Amounts above this (minor units) are declined.
    pub decline_above: i64,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            decline_above: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Captured,
    Declined(String),
}

impl Gateway {
    pub fn charge(&self, token: &str, amount: &Money) -> Decision {
        if agora_platform::secrets::is_masked(token) {
            // A replay of an event kept past its payment: the token it
            // carried is gone, and a mask can never be charged.
            Decision::Declined("the payment token is no longer available".into())
        } else if token == DECLINE_TOKEN {
            Decision::Declined("card declined by the issuer".into())
        } else if amount.amount > self.decline_above {
            Decision::Declined(format!(
                "amount {} {} is above the limit of {}",
                amount.amount, amount.currency, self.decline_above
            ))
        } else {
            Decision::Captured
        }
    }
}

/// CAPTURED (charged), DECLINED (never charged) or REFUNDED (charged and
/// given back, its order cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Captured,
    Declined,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Captured => "CAPTURED",
            Self::Declined => "DECLINED",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Captured, Self::Declined, Self::Refunded]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// One order's payment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    /// Whose order it pays for; absent on payments recorded before it was
    /// kept.
    #[schema(required = true)]
    pub customer_id: Option<String>,
    pub amount: Money,
    pub status: PaymentStatus,
    /// Why it was declined.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An order cancelled before its payment was asked for. Recorded in the
/// place of its payment (one record per order), so that a late request
/// finds the order taken and never charges; it holds no amount, because
/// nothing was charged.
#[derive(Debug, Clone, PartialEq)]
pub struct Void {
    pub order_id: Uuid,
    /// Why the order was cancelled.
    pub reason: String,
    /// When the void was recorded (RFC 3339).
    pub at: String,
}

/// What the payment service holds for an order: its payment, or the void
/// that took its place.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Payment(Payment),
    Voided(Void),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money {
            amount,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn the_gateway_is_deterministic() {
        let gateway = Gateway {
            decline_above: 10_000,
        };
        assert_eq!(gateway.charge("tok_visa", &eur(10_000)), Decision::Captured);
        assert!(matches!(
            gateway.charge(DECLINE_TOKEN, &eur(1)),
            Decision::Declined(_)
        ));
        assert!(
            matches!(gateway.charge("tok_visa", &eur(10_001)), Decision::Declined(r) if r.contains("limit"))
        );
        let masked = agora_platform::secrets::mask("tok_visa");
        assert!(
            matches!(gateway.charge(&masked, &eur(1)), Decision::Declined(r) if r.contains("no longer"))
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["CAPTURED", "DECLINED", "REFUNDED"] {
            assert_eq!(PaymentStatus::parse(s).unwrap().as_str(), s);
        }
        // A void is a record of its own, not a payment's status.
        assert_eq!(PaymentStatus::parse("VOIDED"), None);
    }
}
