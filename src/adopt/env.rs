//! What adopted code reads from its environment, for `services.toml`'s `env`
//! (and from there compose, Kubernetes and `.env.example`).

use std::collections::BTreeMap;

/// Variables msgen sets itself wherever it runs adopted code.
const MSGEN_ENV: &[&str] = &[
    "PORT",
    "RUST_LOG",
    "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The environment variables `files` read, each once, with the default the code
/// gives when one is written next to the read; without msgen's own and `also`.
pub(super) fn env_of<'a>(
    files: impl Iterator<Item = &'a str>,
    also: &[&str],
) -> Vec<crate::model::EnvVar> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    for text in files {
        for (name, default) in env_reads(text) {
            if MSGEN_ENV.contains(&name.as_str()) || also.contains(&name.as_str()) {
                continue;
            }
            let slot = out.entry(name).or_default();
            if slot.is_none() {
                *slot = default;
            }
        }
    }
    out.into_iter()
        .map(|(name, default)| crate::model::EnvVar { name, default })
        .collect()
}

/// `var("X")` / `var_os("X")` (std's, dotenvy's) and clap's `env = "X"` in a Rust
/// file, with the literal default that follows in the same statement or attribute
/// (`.unwrap_or_else(|_| "x".into())`, `.unwrap_or("x")`, `default_value = "x"`).
fn env_reads(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for pattern in ["var(\"", "var_os(\"", "env = \""] {
        for (i, _) in text.match_indices(pattern) {
            let rest = &text[i + pattern.len()..];
            let Some(end) = rest.find('"') else { continue };
            let name = &rest[..end];
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                continue;
            }
            let after = &rest[end + 1..];
            let mut stop = after
                .find(if pattern.starts_with("env") {
                    ")]"
                } else {
                    ";"
                })
                .unwrap_or(after.len())
                .min(300);
            while !after.is_char_boundary(stop) {
                stop -= 1;
            }
            let scope = &after[..stop];
            let default = [
                "unwrap_or_else(|_| \"",
                "unwrap_or(\"",
                "default_value = \"",
            ]
            .iter()
            .find_map(|m| {
                let from = scope.find(m)? + m.len();
                let lit = &scope[from..];
                let close = lit.find('"')?;
                let value = &lit[..close];
                (!value.contains('\\')).then(|| value.to_string())
            });
            out.push((name.to_string(), default));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_with_their_literal_defaults_each_once_without_msgens_own() {
        let a = r#"let url = std::env::var("FORUM_URL").unwrap_or_else(|_| "http://forum".into());
let key = env::var("FORUM_KEY").expect("set");
let port = std::env::var("PORT").unwrap_or("3000".into());
#[arg(long, env = "SHOP_MODE", default_value = "fast")]
let lower = std::env::var("not_a_var");"#;
        let b = r#"let again = std::env::var_os("FORUM_KEY").unwrap_or("k".into());"#;
        let got: Vec<(String, Option<String>)> = env_of([a, b].into_iter(), &["DATABASE_URL"])
            .into_iter()
            .map(|v| (v.name, v.default))
            .collect();
        assert_eq!(
            got,
            [
                ("FORUM_KEY".to_string(), Some("k".to_string())),
                ("FORUM_URL".to_string(), Some("http://forum".to_string())),
                ("SHOP_MODE".to_string(), Some("fast".to_string())),
            ]
        );
    }
}
