//! Accounts and the rules of signing in, without storage or HTTP: the
//! values that parse (email, password, name), and the window that counts
//! failed sign-ins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agora_platform::auth::Role;
use agora_platform::validate::{self, Errors, Invalid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Shortest and longest password accepted. Long passphrases are welcome;
/// the upper bound only keeps one hash from costing more than it should.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// An email address as accounts are found by: trimmed and lowercased, so
/// that `Ann@Example.com` and `ann@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        validate::email(raw).map(|e| Email(e.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: never logged, never stored (only its hash).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, String> {
        let chars = raw.chars().count();
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
            return Err(format!(
                "must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not hold control characters".into());
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// An account as others see it (never its password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// For a customer, its customer id.
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// A disabled account cannot sign in, nor refresh its tokens.
    pub disabled: bool,
    pub created_at: String,
}

/// `POST /api/v1/auth/register`: a customer account, whose role is not
/// the registrant's to choose (an admin gives roles), so the body has none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada Lovelace"}))]
pub struct RegistrationRequest {
    /// The account's email: one account per address, whatever its case.
    #[schema(
        max_length = 254,
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]+@[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*\\.[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][\\s\\u0085]*$"
    )]
    pub email: String,
    /// 10 to 128 characters, no control characters.
    #[schema(
        min_length = 10,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub password: String,
    /// 1 to 100 characters.
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub name: String,
}

/// An admin's `POST /api/v1/admin/users`: an account of any role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "grace@example.com", "password": "a long operator passphrase", "name": "Grace Hopper", "role": "operator"}))]
pub struct NewAccountRequest {
    /// The account's email: one account per address, whatever its case.
    #[schema(
        max_length = 254,
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]+@[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*\\.[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s@.][\\s\\u0085]*$"
    )]
    pub email: String,
    /// 10 to 128 characters, no control characters.
    #[schema(
        min_length = 10,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub password: String,
    /// 1 to 100 characters.
    #[schema(
        pattern = "^[\\s\\u0085]*[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*$"
    )]
    pub name: String,
    /// `customer` unless told.
    #[serde(default)]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

impl From<RegistrationRequest> for NewAccountRequest {
    /// A registration is a customer's account.
    fn from(req: RegistrationRequest) -> Self {
        NewAccountRequest {
            email: req.email,
            password: req.password,
            name: req.name,
            role: None,
        }
    }
}

/// An account to create, every field checked.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: String,
    pub role: Role,
}

impl NewAccount {
    /// Checks every field, naming each one that is wrong. Without a role
    /// (self-registration) the account is a customer.
    pub fn parse(req: &NewAccountRequest) -> Result<NewAccount, Invalid> {
        let mut errors = Errors::new();
        let email = errors.check("email", Email::parse(&req.email));
        let password = errors.check("password", Password::parse(&req.password));
        let name = errors.check("name", validate::text(&req.name, 100));
        let role = match req.role.as_deref() {
            None => Some(Role::Customer),
            Some(raw) => errors.check("role", parse_role(raw)),
        };
        errors.finish()?;
        Ok(NewAccount {
            email: email.expect("checked"),
            password: password.expect("checked"),
            name: name.expect("checked"),
            role: role.expect("checked"),
        })
    }
}

pub fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| "must be one of customer, operator, admin".into())
}

/// `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "shopper@example.com", "password": "demo-shopper-password"}))]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// `PATCH /api/v1/admin/users/{id}`: what an admin changes (what is not
/// named stays as it is).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "operator", "disabled": false}))]
pub struct AccountChange {
    /// The account's new role; a new role ends its sessions.
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// `true` disables the account and ends its sessions.
    pub disabled: Option<bool>,
}

/// Failed sign-ins per key (an account, a client) within a window: past
/// `max` failures, the key is refused until the window of its first failure
/// has passed. Only failures count, so a user who signs in right is never
/// slowed down by it; a success clears the account's count.
pub struct FailureWindow {
    max: u32,
    window: Duration,
    failures: HashMap<String, (Instant, u32)>,
}

/// Keys tracked at most; past it the expired ones go, then the oldest.
const MAX_TRACKED: usize = 100_000;

impl FailureWindow {
    pub fn new(max: u32, window: Duration) -> FailureWindow {
        FailureWindow {
            max,
            window,
            failures: HashMap::new(),
        }
    }

    /// How long `key` must wait before it may try again, if it must.
    pub fn refused(&self, key: &str, now: Instant) -> Option<Duration> {
        let (since, count) = self.failures.get(key)?;
        let open_again = *since + self.window;
        (*count >= self.max && now < open_again).then(|| open_again - now)
    }

    pub fn failed(&mut self, key: &str, now: Instant) {
        if self.failures.len() >= MAX_TRACKED {
            let window = self.window;
            self.failures
                .retain(|_, (since, _)| now.duration_since(*since) < window);
            if self.failures.len() >= MAX_TRACKED {
                self.failures.clear();
            }
        }
        let entry = self.failures.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(email: &str, password: &str, name: &str, role: Option<&str>) -> NewAccountRequest {
        NewAccountRequest {
            email: email.into(),
            password: password.into(),
            name: name.into(),
            role: role.map(str::to_owned),
        }
    }

    #[test]
    fn emails_are_one_account_whatever_their_case() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap(),
            Email::parse("ann@example.com").unwrap()
        );
        assert!(Email::parse("not-an-email").is_err());
    }

    #[test]
    fn passwords_are_long_enough_and_printable() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(PASSWORD_MAX_CHARS + 1)).is_err());
        assert!(Password::parse("ten chars\u{0}!").is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("correct horse battery").unwrap()),
            "Password(…)",
            "a password never reaches a log through Debug"
        );
    }

    #[test]
    fn a_new_account_names_every_wrong_field() {
        let invalid = NewAccount::parse(&request("x", "short", "", Some("root"))).unwrap_err();
        let fields: Vec<&str> = invalid.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password", "name", "role"]);
    }

    #[test]
    fn a_registered_account_is_a_customer() {
        let new =
            NewAccount::parse(&request("a@example.com", "long enough pw", "Ann", None)).unwrap();
        assert_eq!(new.role, Role::Customer);
    }

    #[test]
    fn the_failure_past_the_limit_is_refused_until_the_window_passes() {
        let mut window = FailureWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(window.refused("ann", t0), None, "attempt {i} is allowed");
            window.failed("ann", t0);
        }
        let wait = window.refused("ann", t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(window.refused("bob", t0), None, "others are not held up");
        assert_eq!(window.refused("ann", t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_success_clears_the_count() {
        let mut window = FailureWindow::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        window.failed("ann", t0);
        window.succeeded("ann");
        window.failed("ann", t0);
        assert_eq!(window.refused("ann", t0), None);
    }
}
