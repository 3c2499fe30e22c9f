//! Input checks shared by the services, collecting every problem with the
//! field it belongs to so that one answer names them all. Nothing here knows
//! HTTP: a refusal is an [`Invalid`], which the routes answer with a 422.

use serde::Serialize;

use crate::events::Address;

/// The most units of one product a single line may ask for.
pub const MAX_QUANTITY: i64 = 1_000;
/// The most lines in one order or cart.
pub const MAX_ITEMS: usize = 100;

/// A problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Input refused, with every field's problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    /// A refusal naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid(vec![FieldError::new(field, message)])
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        write!(f, "invalid input ({})", fields.join("; "))
    }
}

impl std::error::Error for Invalid {}

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

    /// `Ok` when nothing was recorded, else a refusal naming every field.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

/// Whether `c` may appear in a text field: no control characters (NUL
/// among them, which PostgreSQL refuses to store), no bidirectional
/// overrides or isolates (which make a text display other than it reads)
/// and no line or paragraph separators.
fn allowed(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'))
}

/// The character rule shared by every text field, naming the first
/// offending character by its code point.
fn characters(value: &str, also_allowed: &[char]) -> Result<(), String> {
    match value
        .chars()
        .find(|c| !allowed(*c) && !also_allowed.contains(c))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "must not contain control or formatting characters (found U+{:04X})",
            c as u32
        )),
    }
}

/// A required single-line text: trimmed, 1 to `max_len` characters, no
/// control or formatting characters.
pub fn text(value: &str, max_len: usize) -> Result<String, String> {
    let trimmed = value.trim();
    characters(trimmed, &[])?;
    if trimmed.is_empty() {
        Err("must not be empty".into())
    } else if trimmed.chars().count() > max_len {
        Err(format!("must be at most {max_len} characters"))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// An optional single-line text: absent or blank is `None`, anything else
/// follows [`text`].
pub fn optional_text(value: Option<&str>, max_len: usize) -> Result<Option<String>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(v, max_len).map(Some),
    }
}

/// A text of several lines (a description): like [`text`], but line
/// breaks and tabs are allowed, and it may be empty.
pub fn multiline_text(value: &str, max_len: usize) -> Result<String, String> {
    let trimmed = value.trim();
    characters(trimmed, &['\n', '\r', '\t'])?;
    if trimmed.chars().count() > max_len {
        Err(format!("must be at most {max_len} characters"))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// An opaque token (a payment token): 1 to `max_len` visible ASCII
/// characters.
pub fn token(value: &str, max_len: usize) -> Result<String, String> {
    let value = value.trim();
    if crate::secrets::is_masked(value) {
        return Err("must be a token, not a masked one".into());
    }
    if (1..=max_len).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err(format!("must be 1 to {max_len} visible ASCII characters"))
    }
}

/// A plausible email address: one `@`, a non-empty local part and a
/// dotted domain, at most 254 characters as sent (the document's
/// `maxLength`, which counts what is sent: the spaces around it too).
pub fn email(value: &str) -> Result<String, String> {
    let sent = value.chars().count();
    let value = value.trim();
    let valid = sent <= 254
        && !value.contains(char::is_whitespace)
        && value.chars().all(allowed)
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

/// Checks every field of an address, naming them under `prefix`, and
/// returns it trimmed (or `None` if a field is wrong).
pub fn address(prefix: &str, value: &Address, errors: &mut Errors) -> Option<Address> {
    let field = |name: &str| format!("{prefix}.{name}");
    let name = errors.check(&field("name"), text(&value.name, 200));
    let line1 = errors.check(&field("line1"), text(&value.line1, 200));
    let line2 = errors.check(&field("line2"), optional_text(value.line2.as_deref(), 200));
    let city = errors.check(&field("city"), text(&value.city, 100));
    let postal_code = errors.check(&field("postal_code"), text(&value.postal_code, 20));
    let country = value.country.trim();
    let country = if country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase()) {
        Some(country.to_owned())
    } else {
        errors.add(
            field("country"),
            "must be an ISO 3166-1 alpha-2 code like DE",
        );
        None
    };
    Some(Address {
        name: name?,
        line1: line1?,
        line2: line2?,
        city: city?,
        postal_code: postal_code?,
        country: country?,
    })
}

/// Who buys, where it goes and how it is paid: the part of an order and
/// of a cart checkout that the customer types in, checked once for both.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    pub email: String,
    pub phone: Option<String>,
    pub shipping_address: Address,
    pub payment_token: String,
}

/// Checks the purchase fields, naming each one that is wrong.
pub fn purchase(
    email_value: &str,
    phone_value: Option<&str>,
    shipping_address: &Address,
    payment_token: &str,
    errors: &mut Errors,
) -> Option<Purchase> {
    let email = errors.check("email", email(email_value));
    let phone = match phone_value.map(str::trim) {
        None | Some("") => Some(None),
        Some(p) => errors.check("phone", phone(p)).map(Some),
    };
    let shipping_address = address("shipping_address", shipping_address, errors);
    let payment_token = errors.check("payment_token", token(payment_token, 200));
    Some(Purchase {
        email: email?,
        phone: phone?,
        shipping_address: shipping_address?,
        payment_token: payment_token?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(text("  Ada  ", 10), Ok("Ada".into()));
        assert!(text("   ", 10).is_err());
        assert!(text("abcdef", 5).is_err());
        assert_eq!(text("Ünïcödé ✓", 20), Ok("Ünïcödé ✓".into()));
        for bad in [
            "a\u{0}b",
            "a\u{7}b",
            "line\nbreak",
            "tab\there",
            "a\u{202E}b",
            "a\u{2028}b",
            "\u{9F}",
        ] {
            let err = text(bad, 100).unwrap_err();
            assert!(err.contains("control"), "{bad:?}: {err}");
        }
        assert_eq!(optional_text(Some("  "), 5), Ok(None));
        assert_eq!(optional_text(None, 5), Ok(None));
        assert!(optional_text(Some("a\u{0}"), 5).is_err());
        assert_eq!(multiline_text(" two\nlines\t", 50), Ok("two\nlines".into()));
        assert!(multiline_text("nul\u{0}", 50).is_err());
        assert!(token("tok_visa", 200).is_ok());
        assert!(token("tok visa", 200).is_err());
        assert!(token("tok\u{0}", 200).is_err());
        assert!(
            token("****4111111111111111", 200).is_err(),
            "would never be masked"
        );
    }

    #[test]
    fn addresses_are_trimmed_and_every_field_is_checked() {
        let raw = Address {
            name: " Ada ".into(),
            line1: "1 Analytical St ".into(),
            line2: Some("  ".into()),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        };
        let mut errors = Errors::new();
        let clean = address("a", &raw, &mut errors).unwrap();
        assert_eq!(
            (clean.name.as_str(), clean.line1.as_str(), clean.line2),
            ("Ada", "1 Analytical St", None)
        );
        let mut errors = Errors::new();
        let bad = Address {
            line2: Some("\u{0}".into()),
            ..raw
        };
        assert!(address("a", &bad, &mut errors).is_none());
        assert_eq!(errors.finish().unwrap_err().0[0].field, "a.line2");
    }

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
            "a\u{0}@example.com",
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
