//! A `WHERE` clause of only the filters a request gives.
//!
//! Written as `($1 IS NULL OR order_id = $1)`, an optional filter keeps the
//! planner from the index: SQLite plans the statement once, for any value,
//! and PostgreSQL's generic plan does the same, so a lookup by order id
//! became a scan of the whole table, slower with every order. Each filter
//! here is in the statement only when it is given, and its value is a
//! parameter like any other.

use super::Value;

#[derive(Debug, Default)]
pub struct Conditions {
    terms: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    pub fn new() -> Conditions {
        Conditions::default()
    }

    /// A condition that always applies, with no parameter.
    pub fn always(mut self, sql: &str) -> Conditions {
        self.terms.push(sql.to_owned());
        self
    }

    /// `template` (its parameter written `$?`) when `value` is given.
    pub fn given(mut self, template: &str, value: impl Into<Value>) -> Conditions {
        let value = value.into();
        if !value.is_null() {
            self.params.push(value);
            let n = self.params.len();
            self.terms.push(template.replace("$?", &format!("${n}")));
        }
        self
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn clause(&self) -> String {
        match self.terms.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", self.terms.join(" AND ")),
        }
    }

    /// The placeholder the next parameter after the conditions' gets.
    pub fn next(&self) -> usize {
        self.params.len() + 1
    }

    /// The conditions' parameters, then `more`.
    pub fn params(mut self, more: impl IntoIterator<Item = Value>) -> Vec<Value> {
        self.params.extend(more);
        self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_filters_are_in_the_clause_numbered_in_order() {
        let none: Option<String> = None;
        let c = Conditions::new()
            .always("status <> 'VOIDED'")
            .given("order_id = $?", none)
            .given("customer_id = $?", Some("c1"))
            .given("id < $?", Some("z"));
        assert_eq!(
            c.clause(),
            " WHERE status <> 'VOIDED' AND customer_id = $1 AND id < $2"
        );
        assert_eq!(c.next(), 3);
        assert_eq!(c.params([Value::from(10_i64)]).len(), 3);
        assert_eq!(Conditions::new().clause(), "");
    }
}
