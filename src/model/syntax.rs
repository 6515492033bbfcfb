//! Diagnostics of a `services.toml` that serde cannot read: TOML syntax, unknown
//! keys and wrong types, each placed on its line and named by its key path; and
//! the blanking that lets one run report every such problem.

use std::collections::BTreeMap;
use std::path::Path;

use crate::diagnostic::{did_you_mean, Diagnostic, LineIndex};

/// `text` with the entry at byte `at` replaced by spaces: its line, or a whole
/// `[table]` (header to the next header). `None` when there is nothing to blank.
pub(super) fn blank_entry(text: &str, at: usize) -> Option<String> {
    let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = |from: usize| text[from..].find('\n').map_or(text.len(), |i| from + i);
    let first = &text[start..line_end(start)];
    if first.trim().is_empty() {
        return None;
    }
    let mut end = line_end(start);
    if first.trim_start().starts_with('[') {
        while end < text.len() {
            let next = end + 1;
            if text[next..].trim_start().starts_with('[') {
                break;
            }
            end = line_end(next);
        }
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    // One space per byte: every later offset stays where it was.
    for c in text[start..end].chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.push_str(&" ".repeat(c.len_utf8()));
        }
    }
    out.push_str(&text[end..]);
    Some(out)
}

/// `text` is the document serde read, `original` the file as written: blanking keeps
/// every offset, and only the original still has every table header.
pub(super) fn syntax_diagnostic(
    err: &toml::de::Error,
    text: &str,
    original: &str,
    path: &Path,
) -> Diagnostic {
    // A problem of the whole document (a missing table) is placed at its start.
    let location = Some(
        err.span()
            .map_or((1, 1), |s| LineIndex::new(text).locate(s.start)),
    );
    // serde names Rust types; the user wrote TOML.
    let mut message = err
        .message()
        .trim()
        .replace("expected i64", "expected a whole number")
        .replace("expected u16", "expected a whole number");
    let at = err.span().map(|s| s.start.min(text.len()));
    if message.is_empty() {
        // The parser said nothing: name what it stopped at.
        let found = at
            .and_then(|i| text.get(i..))
            .and_then(|t| t.chars().next());
        message = match found {
            Some(c) if c.is_control() => format!(
                "the control character {} is not allowed in TOML, not even in a comment or a string; accepted: tab, and printable characters (escape it in a string, e.g. \\u0000)",
                c.escape_unicode()
            ),
            Some(c) => format!("unexpected {c:?}; this is not TOML"),
            None => "unexpected end of the file; this is not TOML".into(),
        };
    }
    let (mut key, mut help) = unknown_field_help(&message);
    if key.is_empty() && message.contains("number too large") {
        // The value does not fit a 64-bit integer; name the key and its range.
        if let Some(i) = at {
            let start = text[..i].rfind('\n').map_or(0, |j| j + 1);
            let line = text[start..].lines().next().unwrap_or_default();
            if let Some((k, _)) = line.split_once('=') {
                key = k.trim().trim_matches('"').to_string();
            }
        }
        let accepted = if key.ends_with("port") {
            "1024..=65535".to_string()
        } else if key.ends_with("timeout_secs") {
            "1..=3600".to_string()
        } else {
            format!("a whole number between {} and {}", i64::MIN, i64::MAX)
        };
        message = format!("the number is too large; accepted: {accepted}");
    }
    if key.is_empty() && message.starts_with("invalid type") {
        // serde names the types, not the key: the key is the line's own.
        if let Some(span) = err.span() {
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line = text[start..].lines().next().unwrap_or_default();
            if let Some((k, _)) = line.split_once('=') {
                key = k.trim().trim_matches('"').to_string();
            }
        }
        help = if message.contains("expected a whole number") {
            Some("write a whole number without quotes, e.g. 3001".into())
        } else if message.contains("expected a boolean") {
            Some("write true or false, without quotes".into())
        } else if message.contains("expected a sequence") {
            Some("write a list, e.g. [\"a\", \"b\"]".into())
        } else if message.contains("expected a string") {
            Some("write a string in double quotes".into())
        } else {
            None
        };
    }
    if !key.is_empty() {
        // serde names the key alone: put it in its table, as other messages do.
        if let Some(section) = err.span().and_then(|s| section_at(original, s.start, &key)) {
            key = format!("{section}.{key}");
        }
    }
    Diagnostic {
        file: path.to_path_buf(),
        location,
        key,
        message,
        help,
    }
}

/// The table holding byte `offset` of `text`, as key paths name it: `project`,
/// `services[2]`, `services[0].resources[1]`; `None` at the top level.
/// `key` must be the first thing on `offset`'s line: a key inside an inline table
/// or a dotted key is named alone rather than put in the wrong table.
fn section_at(text: &str, offset: usize, key: &str) -> Option<String> {
    let line_start = text
        .get(..offset.min(text.len()))?
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].trim_start();
    let direct = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
        .is_some_and(|rest| rest.trim_start().starts_with('='));
    if !direct {
        return None;
    }
    let mut path: Vec<(String, Option<usize>)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        // Only the headers of lines before `offset`'s own: an unknown table is
        // named by its header, not inside itself.
        pos += line.len();
        if pos > offset {
            break;
        }
        let l = line.trim();
        let (header, array) = if let Some(h) = l.strip_prefix("[[") {
            (h.split("]]").next().unwrap_or_default(), true)
        } else if let Some(h) = l.strip_prefix('[') {
            (h.split(']').next().unwrap_or_default(), false)
        } else {
            continue;
        };
        let parts: Vec<String> = header
            .split('.')
            .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .collect();
        // A new `[[services]]` restarts the count of the `[[services.resources]]` in it.
        let full = parts.join(".");
        seen.retain(|k, _| !k.starts_with(&format!("{full}.")));
        let index = array.then(|| {
            let n = seen.entry(full.clone()).or_insert(0);
            *n += 1;
            *n - 1
        });
        // Keep the enclosing tables this header is inside of, by name.
        let keep = path
            .iter()
            .zip(&parts)
            .take_while(|((name, _), part)| name == *part)
            .count()
            .min(parts.len().saturating_sub(1));
        path.truncate(keep);
        while path.len() + 1 < parts.len() {
            path.push((parts[path.len()].clone(), None));
        }
        path.push((parts.last().cloned().unwrap_or_default(), index));
    }
    (!path.is_empty()).then(|| {
        path.iter()
            .map(|(name, index)| match index {
                Some(i) => format!("{name}[{i}]"),
                None => name.clone(),
            })
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a suggestion.
fn unknown_field_help(message: &str) -> (String, Option<String>) {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return (String::new(), None);
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return (String::new(), None);
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let help = did_you_mean(field, &candidates).map(|c| format!("did you mean `{c}`?"));
    (field.to_string(), help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_named_as_key_paths() {
        let text = "top = 1\n[project]\nname = \"x\"\n\n[[services]]\nname = \"a\"\n\n[[services]]\nname = \"b\"\n  [[services.resources]]\n  name = \"r\"\n  [[services.resources]]\n  name = \"s\"\n[[services]]\n  [[services.resources]]\n  x = 1\n";
        let at = |needle: &str, key: &str| section_at(text, text.find(needle).unwrap(), key);
        assert_eq!(at("top", "top"), None);
        assert_eq!(at("name = \"x\"", "name").as_deref(), Some("project"));
        assert_eq!(at("name = \"a\"", "name").as_deref(), Some("services[0]"));
        assert_eq!(at("name = \"b\"", "name").as_deref(), Some("services[1]"));
        assert_eq!(
            at("name = \"r\"", "name").as_deref(),
            Some("services[1].resources[0]")
        );
        assert_eq!(
            at("name = \"s\"", "name").as_deref(),
            Some("services[1].resources[1]")
        );
        assert_eq!(
            at("x = 1", "x").as_deref(),
            Some("services[2].resources[0]")
        );
        // Not the key that starts the line (an inline table, a header): named alone.
        assert_eq!(at("x = 1", "y"), None);
        assert_eq!(at("[[services.resources]]\n  x", "services"), None);
    }
}
