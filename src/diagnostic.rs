//! Errors about the user's input, with the place they come from.
//!
//! A [`Diagnostic`] names the file, line and column, the key, the bad value and what
//! would be accepted. Validation collects them all so a user fixes every problem in
//! one round trip; [`ConfigError`] is what loading `services.toml` returns.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column, where the problem has a place.
    pub location: Option<(usize, usize)>,
    /// Dotted key path, e.g. `services[2].port`.
    pub key: String,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and values come from the user's file: printed safe (no terminal
        // escapes) and short (a 10 MB value is not echoed whole).
        write!(f, "{}", clean(&self.file.display().to_string()))?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", clean(&self.message))?;
        } else {
            write!(f, ": `{}`: {}", clean(&self.key), clean(&self.message))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", clean(help))?;
        }
        Ok(())
    }
}

/// Longest run of a quoted value echoed in a message, in characters.
const MAX_ECHO: usize = 80;

/// `text` fit for a terminal: control characters written as escapes (`\u{1b}`),
/// and every quoted part (between `"` or `` ` ``) longer than [`MAX_ECHO`]
/// characters shortened, saying how much was left out.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut quoted: Option<char> = None;
    let mut run = 0usize;
    let mut skipped = 0usize;
    let flush = |out: &mut String, skipped: &mut usize| {
        if *skipped > 0 {
            out.push_str(&format!("… ({} more characters)", *skipped));
            *skipped = 0;
        }
    };
    for c in text.chars() {
        match quoted {
            Some(q) if c == q => {
                flush(&mut out, &mut skipped);
                quoted = None;
            }
            None if c == '"' || c == '`' => {
                quoted = Some(c);
                run = 0;
            }
            Some(_) => {
                run += 1;
                if run > MAX_ECHO {
                    skipped += 1;
                    continue;
                }
            }
            None => {}
        }
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    flush(&mut out, &mut skipped);
    out
}

#[cfg(test)]
mod clean_tests {
    use super::clean;

    #[test]
    fn control_characters_are_escaped_and_long_values_shortened() {
        assert_eq!(clean("key `\u{1b}]0;x\u{7}`"), "key `\\u{1b}]0;x\\u{7}`");
        let long = format!("\"{}\" is not valid; accepted: a name", "a".repeat(1000));
        let shown = clean(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(
            shown.contains("… (920 more characters)\" is not valid; accepted: a name"),
            "{shown}"
        );
        assert_eq!(
            clean("plain text, accepted: 1024..=65535"),
            "plain text, accepted: 1024..=65535"
        );
    }
}

/// Why `services.toml` could not be turned into a model.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(d) => d,
            ConfigError::Read { .. } => &[],
        }
    }
}

fn render_all(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&d.to_string());
    }
    if diags.len() > 1 {
        out.push_str(&format!("\n{} problems found", diags.len()));
    }
    out
}

/// Maps byte offsets of a source text to 1-based line and column (in characters).
pub struct LineIndex<'a> {
    text: &'a str,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // Offsets from the parser always fall on char boundaries; clamp defensively.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// Where a schema problem's key, `services.<service>[.resources.<resource>[.fields.<field>]]`,
/// is written in `text` (a `services.toml`), as (line, column): the deepest part
/// that is there, so a field that was dropped is found at its resource. `None`
/// for a key of another form or text that does not parse.
pub fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    use toml_edit::{Item, TableLike};

    let rest = key.strip_prefix("services.")?;
    let (service, rest) = match rest.split_once(".resources.") {
        Some((service, rest)) => (service, Some(rest)),
        None => (rest.split(' ').next()?, None),
    };
    let (resource, field) = match rest.map(|r| r.split_once(".fields.")) {
        Some(Some((resource, field))) => (Some(resource), Some(field)),
        Some(None) => (rest, None),
        None => (None, None),
    };
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    // The element of an array of tables (or of an inline array) whose `name` is `name`.
    fn named<'d>(item: &'d Item, name: &str) -> Option<(&'d dyn TableLike, usize)> {
        let is = |t: &dyn TableLike| t.get("name").and_then(Item::as_str) == Some(name);
        if let Some(tables) = item.as_array_of_tables() {
            let t = tables.iter().find(|t| is(*t))?;
            return Some((t as &dyn TableLike, t.span()?.start));
        }
        let v = item
            .as_array()?
            .iter()
            .find(|v| v.as_inline_table().is_some_and(|t| is(t)))?;
        Some((v.as_inline_table()? as &dyn TableLike, v.span()?.start))
    }
    let (service, mut at) = named(doc.as_table().get("services")?, service)?;
    if let Some((resource, start)) = resource.and_then(|r| named(service.get("resources")?, r)) {
        at = start;
        let key = field.and_then(|f| resource.get("fields")?.as_table_like()?.get_key_value(f));
        if let Some(start) = key.and_then(|(k, _)| k.span()) {
            at = start.start;
        }
    }
    Some(LineIndex::new(text).locate(at))
}

/// Locates the first invalid byte of a non-UTF-8 file.
pub fn utf8_error(path: &Path, bytes: &[u8], err: &std::str::Utf8Error) -> Diagnostic {
    let valid = &bytes[..err.valid_up_to()];
    // The prefix is valid UTF-8 by definition of valid_up_to.
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let (line, col) = LineIndex::new(text).locate(text.len());
    Diagnostic {
        file: path.to_path_buf(),
        location: Some((line, col)),
        key: String::new(),
        message: format!(
            "the file is not valid UTF-8 (invalid byte 0x{:02x})",
            bytes.get(err.valid_up_to()).copied().unwrap_or(0)
        ),
        help: Some("save services.toml as UTF-8".into()),
    }
}

/// Closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'c>(value: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        // Optimal string alignment: swapping two neighbouring characters is one
        // edit, so `blgo` is one typo away from `blog`.
        .map(|c| (strsim::osa_distance(value, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(value.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_keys_are_found_where_they_are_written() {
        let text = "[project]\nname = \"p\"\n\n[[services]]\nname = \"shop\"\n\n  [[services.resources]]\n  name = \"order\"\n  fields = { title = \"string\", qty = \"i32\" }\n";
        let at = |key: &str| locate_key(text, key);
        assert_eq!(
            at("services.shop.resources.order.fields.qty"),
            Some((9, 32))
        );
        // A dropped field: its resource; a table of the service: the service.
        assert_eq!(
            at("services.shop.resources.order.fields.gone"),
            Some((7, 3))
        );
        assert_eq!(at("services.shop (table `orders`)"), Some((4, 1)));
        assert_eq!(at("services.other.resources.order.fields.qty"), None);
        assert_eq!(at("table `orders`"), None);
        // Inline arrays of inline tables too.
        let inline = "services = [{ name = \"shop\", resources = [{ name = \"order\", fields = { qty = \"i32\" } }] }]\n";
        assert_eq!(
            locate_key(inline, "services.shop.resources.order.fields.qty"),
            Some((1, 72))
        );
        assert_eq!(locate_key("not toml [", "services.shop"), None);
    }

    #[test]
    fn locates_lines_and_columns() {
        let idx = LineIndex::new("a = 1\nbb = 2\n");
        assert_eq!(idx.locate(0), (1, 1));
        assert_eq!(idx.locate(6), (2, 1));
        assert_eq!(idx.locate(9), (2, 4));
    }

    #[test]
    fn suggests_close_matches_only() {
        assert_eq!(
            did_you_mean("postgress", &["postgres", "sqlite", "none"]),
            Some("postgres")
        );
        assert_eq!(did_you_mean("mysql", &["postgres", "sqlite", "none"]), None);
        assert_eq!(
            did_you_mean("blgo", &["auth", "user", "blog"]),
            Some("blog")
        );
        assert_eq!(did_you_mean("ab", &["ba", "abcd"]), Some("ba"));
    }
}
