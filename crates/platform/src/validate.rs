//! Input checks shared by the services, collecting every problem with the
//! field it belongs to so one 422 names them all.

use crate::events::Address;
use crate::http::{ApiError, FieldError};

/// The most units of one product a single line may ask for.
pub const MAX_QUANTITY: i64 = 1_000;
/// The most lines in one order or cart.
pub const MAX_ITEMS: usize = 100;

#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the value if valid, else records the problem under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }

    /// `Ok` when nothing was recorded, else a 422 naming every field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.0))
        }
    }
}

pub fn non_empty(value: &str, max_len: usize) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err("must not be empty".into())
    } else if trimmed.chars().count() > max_len {
        Err(format!("must be at most {max_len} characters"))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// A plausible email address: one `@`, a non-empty local part and a dotted domain.
pub fn email(value: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value.len() <= 254
        && !value.contains(char::is_whitespace)
        && matches!(value.split_once('@'), Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be an email address like name@example.com".into())
    }
}

/// A phone number in international form: `+` then 7 to 15 digits.
pub fn phone(value: &str) -> Result<String, String> {
    let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(compact)
    } else {
        Err("must be an international phone number like +15551234567".into())
    }
}

pub fn quantity(value: i64) -> Result<u32, String> {
    if value < 1 {
        Err("must be at least 1".into())
    } else if value > MAX_QUANTITY {
        Err(format!("must be at most {MAX_QUANTITY}"))
    } else {
        Ok(value as u32)
    }
}

/// An ISO 4217 code: three upper-case letters.
pub fn currency(value: &str) -> Result<String, String> {
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value.to_owned())
    } else {
        Err("must be an ISO 4217 code like EUR".into())
    }
}

/// Checks every field of an address, naming them under `prefix`.
pub fn address(prefix: &str, value: &Address, errors: &mut Errors) {
    let field = |name: &str| format!("{prefix}.{name}");
    errors.check(&field("name"), non_empty(&value.name, 200));
    errors.check(&field("line1"), non_empty(&value.line1, 200));
    errors.check(&field("city"), non_empty(&value.city, 100));
    errors.check(&field("postal_code"), non_empty(&value.postal_code, 20));
    if !(value.country.len() == 2 && value.country.chars().all(|c| c.is_ascii_uppercase())) {
        errors.add(
            field("country"),
            "must be an ISO 3166-1 alpha-2 code like DE",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(email("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(quantity(0).is_err());
        assert!(quantity(-3).is_err());
        assert_eq!(quantity(1), Ok(1));
        assert!(quantity(MAX_QUANTITY + 1).is_err());
    }

    #[test]
    fn phones_and_currencies() {
        assert_eq!(phone("+49 30 1234567"), Ok("+49301234567".into()));
        assert!(phone("12345").is_err());
        assert!(currency("EUR").is_ok());
        assert!(currency("eur").is_err());
    }
}
