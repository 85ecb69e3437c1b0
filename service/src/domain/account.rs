use std::fmt;

use serde::Serialize;

use super::{ParseError, UserId};

/// A login name: 3 to 32 characters of `A-Z a-z 0-9 _ . -`, unique
/// without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Checks the rules of the contract.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let length = raw.chars().count();
        if !(3..=32).contains(&length) {
            return Err(ParseError::new("username must be 3 to 32 characters"));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ParseError::new(
                "username may contain only letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as the user typed it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and look-ups use.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1 to 100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks the rules of the contract.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.trim().is_empty() {
            return Err(ParseError::new("name must not be blank"));
        }
        if raw.chars().count() > 100 {
            return Err(ParseError::new("name must be at most 100 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(ParseError::new("name must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password in clear, 8 to 128 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the rules of the contract.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if !(8..=128).contains(&raw.chars().count()) {
            return Err(ParseError::new("password must be 8 to 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The clear text, for hashing and verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An account as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The account's id.
    pub id: UserId,
    /// The login name, in the case it was registered with.
    pub username: String,
    /// The display name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        for good in ["abc", "A.b-c_9", &"x".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"x".repeat(33),
            "with space",
            "émile",
            "a/b",
            "",
            "<script>",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_compare_without_case_through_canonical() {
        assert_eq!(
            Username::parse("Alice").unwrap().canonical(),
            Username::parse("aLICE").unwrap().canonical()
        );
    }

    #[test]
    fn names_must_not_be_blank_or_too_long() {
        assert!(DisplayName::parse("Ada Lovelace").is_ok());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"n".repeat(101)).is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_debug() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        let password = Password::parse("correct horse").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
