//! What is said to the customer, and on which channels, free of I/O.

use agora_platform::events::CancelCode;
use serde::Serialize;
use uuid::Uuid;

/// How a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Sms => "SMS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Email, Self::Sms]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// The moments of an order the customer hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum Moment {
    Created,
    Confirmed,
    Shipped {
        carrier: String,
        tracking_number: String,
    },
    /// Said in fixed words chosen by the code: the reason's free text
    /// (which may be anyone's) is never sent to the customer.
    Cancelled {
        code: CancelCode,
    },
}

impl Moment {
    pub fn kind(&self) -> &'static str {
        match self {
            Moment::Created => "ORDER_CREATED",
            Moment::Confirmed => "ORDER_CONFIRMED",
            Moment::Shipped { .. } => "ORDER_SHIPPED",
            Moment::Cancelled { .. } => "ORDER_CANCELLED",
        }
    }

    pub fn message(&self, order_id: Uuid) -> String {
        match self {
            Moment::Created => format!("We received your order {order_id}."),
            Moment::Confirmed => format!("Payment received: order {order_id} is confirmed."),
            Moment::Shipped {
                carrier,
                tracking_number,
            } => {
                format!("Order {order_id} has shipped with {carrier}, tracking {tracking_number}.")
            }
            Moment::Cancelled { code } => match code {
                CancelCode::CustomerRequest => {
                    format!("Order {order_id} was cancelled as you asked.")
                }
                CancelCode::OutOfStock => {
                    format!("Order {order_id} was cancelled: an item is out of stock.")
                }
                CancelCode::PaymentDeclined => {
                    format!("Order {order_id} was cancelled: the payment did not go through.")
                }
                CancelCode::TimedOut | CancelCode::ReservationExpired => {
                    format!("Order {order_id} was cancelled: it could not be completed in time.")
                }
                CancelCode::CompensationRetried | CancelCode::Other => {
                    format!("Order {order_id} was cancelled.")
                }
            },
        }
    }
}

impl Moment {
    /// Whether the customer hears of it: not of an operator sending a
    /// compensation again, which they were told of when it first went out.
    pub fn is_told(&self) -> bool {
        !matches!(
            self,
            Moment::Cancelled {
                code: CancelCode::CompensationRetried
            }
        )
    }
}

/// Email always; SMS too when a phone number was given.
pub fn recipients(email: &str, phone: Option<&str>) -> Vec<(Channel, String)> {
    let mut to = vec![(Channel::Email, email.to_owned())];
    if let Some(phone) = phone {
        to.push((Channel::Sms, phone.to_owned()));
    }
    to
}

/// A message sent (recorded) about an order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub order_id: Uuid,
    pub channel: Channel,
    /// The email address or phone number it went to.
    pub recipient: String,
    /// Which moment of the order it tells of: `ORDER_CREATED`,
    /// `ORDER_CONFIRMED`, `ORDER_SHIPPED` or `ORDER_CANCELLED`.
    #[schema(example = "ORDER_SHIPPED")]
    pub kind: String,
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_only_with_a_phone() {
        assert_eq!(recipients("a@b.co", None).len(), 1);
        let both = recipients("a@b.co", Some("+15551234567"));
        assert_eq!(both[1], (Channel::Sms, "+15551234567".to_owned()));
    }

    #[test]
    fn messages_name_the_order_and_the_details() {
        let id = Uuid::now_v7();
        let shipped = Moment::Shipped {
            carrier: "DHL".into(),
            tracking_number: "AG1".into(),
        };
        assert!(shipped.message(id).contains("AG1"));
        assert!(shipped.message(id).contains(&id.to_string()));
        assert_eq!(Moment::Created.kind(), "ORDER_CREATED");
    }

    #[test]
    fn a_cancellation_is_told_in_fixed_words_per_code() {
        let id = Uuid::now_v7();
        let said = |code| Moment::Cancelled { code }.message(id);
        assert!(said(CancelCode::CustomerRequest).contains("as you asked"));
        assert!(said(CancelCode::OutOfStock).contains("out of stock"));
        assert!(said(CancelCode::PaymentDeclined).contains("payment"));
        assert!(said(CancelCode::Other).ends_with("was cancelled."));
        assert!(!Moment::Cancelled {
            code: CancelCode::CompensationRetried
        }
        .is_told());
        assert!(Moment::Created.is_told());
    }
}
