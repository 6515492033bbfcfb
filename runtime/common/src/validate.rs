//! Input checks shared by the generated resources. [`Errors`] collects every
//! problem of a request body so the client sees them all in one answer.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use serde::{Deserialize, Deserializer};

use crate::ApiError;

/// `#[serde(default, deserialize_with = "common::validate::given")]` on an
/// `Option<Option<T>>` field of a PATCH body: absent is `None` (keep the value),
/// `null` is `Some(None)` (clear it).
pub fn given<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `#[serde(default, deserialize_with = "common::validate::not_null")]` on an
/// `Option<T>` field of a PATCH body for a required field: absent is `None` (keep
/// the value), `null` is refused like any value of the wrong type.
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[derive(Debug, Default)]
pub struct Errors(Vec<String>);

impl Errors {
    /// A required, single-line string: not blank, at most 255 characters.
    pub fn string(&mut self, field: &str, v: &str) {
        if self.nul(field, v) {
            return;
        }
        if v.trim().is_empty() {
            self.0.push(format!("{field} must not be empty"));
        } else if v.chars().count() > 255 {
            self.0
                .push(format!("{field} must be at most 255 characters"));
        }
    }

    pub fn text(&mut self, field: &str, v: &str) {
        if self.nul(field, v) {
            return;
        }
        if v.chars().count() > 65_535 {
            self.0
                .push(format!("{field} must be at most 65535 characters"));
        }
    }

    pub fn email(&mut self, field: &str, v: &str) {
        if self.nul(field, v) {
            return;
        }
        if !is_email(v) {
            self.0.push(format!("{field} must be an email address"));
        }
    }

    /// PostgreSQL's text cannot hold a NUL character; SQLite's could, but a
    /// resource takes the same values on either.
    fn nul(&mut self, field: &str, v: &str) -> bool {
        let found = v.contains('\0');
        if found {
            self.0.push(format!(
                "{field} must not contain a NUL character (\\u0000)"
            ));
        }
        found
    }

    pub fn finite(&mut self, field: &str, v: &f64) {
        if !v.is_finite() {
            self.0.push(format!("{field} must be a finite number"));
        }
    }

    pub fn positive_id(&mut self, field: &str, v: &i64) {
        if *v <= 0 {
            self.0.push(format!("{field} must be a positive id"));
        }
    }

    pub fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A deliberately plain check: one `@`, a non-empty local part, a dotted domain.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && v.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.chars().any(|c| c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_email("ada@example.com"));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a@b",
            "a b@c.d",
            "a@b@c.d",
            "a\0@b.c",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn a_nul_character_is_refused_by_name() {
        let mut e = Errors::default();
        e.string("title", "a\0b");
        e.text("body", "\0");
        e.email("contact", "a\0@b.c");
        e.string("fine", "a b");
        match e.finish() {
            Err(ApiError::Validation(v)) => assert_eq!(
                v,
                [
                    "title must not contain a NUL character (\\u0000)",
                    "body must not contain a NUL character (\\u0000)",
                    "contact must not contain a NUL character (\\u0000)",
                ]
            ),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn collects_every_problem() {
        let mut e = Errors::default();
        e.string("title", " ");
        e.email("email", "nope");
        e.positive_id("author_id", &0);
        match e.finish() {
            Err(ApiError::Validation(v)) => assert_eq!(v.len(), 3),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }
}
