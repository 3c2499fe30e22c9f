//! Secrets that pass through the system (payment tokens): kept in clear
//! only as long as a step needs them, masked everywhere else.

/// What is kept of a secret once it is no longer needed: its last four
/// characters behind a fixed prefix (`****visa`), enough for a person to
/// tell two apart, never enough to use one.
pub fn mask(secret: &str) -> String {
    let tail: String = if secret.chars().count() >= 8 {
        let skip = secret.chars().count() - 4;
        secret.chars().skip(skip).collect()
    } else {
        String::new()
    };
    format!("{MASK}{tail}")
}

/// The prefix of every masked secret: no real payment token starts so.
pub const MASK: &str = "****";

/// Whether `value` is a masked secret (so it must not be used as one).
pub fn is_masked(value: &str) -> bool {
    value.starts_with(MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_secret_keeps_only_its_last_four_characters() {
        assert_eq!(mask("tok_visa"), "****visa");
        assert_eq!(mask("tok_1234567890"), "****7890");
        assert_eq!(mask("short"), "****");
        assert!(is_masked(&mask("tok_visa")));
        assert!(!is_masked("tok_visa"));
    }
}
