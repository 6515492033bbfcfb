//! Raw, unvalidated shape of `services.toml`, exactly as serde reads it.
//!
//! Every value that validation may complain about is wrapped in [`Spanned`] so the
//! error can point at its line and column. Enumerations (database kinds, templates,
//! field types) stay strings here: the model reports every bad value at once, with
//! the accepted set and a close-match suggestion, instead of stopping at the first
//! one as serde would.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub project: Spanned<RawProject>,
    #[serde(default)]
    pub gateway: Option<Spanned<RawGateway>>,
    /// A modular monolith holding the services marked `monolith = true`.
    #[serde(default)]
    pub monolith: Option<Spanned<RawMonolith>>,
    #[serde(default)]
    pub services: Vec<Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonolith {
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Directory of a monolith msgen did not generate (adopted by `split --from`):
    /// msgen routes to it and never renders or rewrites it.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// Cargo package (and binary) name of that monolith.
    #[serde(default)]
    pub package: Option<Spanned<String>>,
    /// Environment variables that monolith reads: `NAME` or `NAME=default`.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Spanned<String>,
    /// Database kind of every service that does not name one.
    #[serde(default)]
    pub database: Option<Spanned<String>>,
    /// Major version of axum the generated crates use ("0.7" or "0.8").
    #[serde(default)]
    pub axum: Option<Spanned<String>>,
    /// Major version of sqlx the generated crates use ("0.8" or "0.9").
    #[serde(default)]
    pub sqlx: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Seconds the gateway waits for an upstream's response head.
    #[serde(default)]
    pub timeout_secs: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub database: Option<Spanned<String>>,
    #[serde(default)]
    pub template: Option<Spanned<String>>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// When true the gateway lets requests through without a JWT.
    #[serde(default)]
    pub public: Option<Spanned<bool>>,
    /// A module of the monolith rather than a service of its own.
    #[serde(default)]
    pub monolith: Option<Spanned<bool>>,
    /// Set by `msgen split`: the service was extracted from the monolith, so the
    /// gateway keeps serving its old `/api/...` paths.
    #[serde(default)]
    pub split_from: Option<Spanned<String>>,
    /// Code moved out of a monolith msgen did not generate (`split --from`): msgen
    /// renders its deployment and gateway routes, never its code.
    #[serde(default)]
    pub adopted: Option<Spanned<bool>>,
    /// Path prefixes the gateway forwards unchanged to an adopted service.
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    /// Exact routes (axum's syntax: `/api/things/{id}/children`) the gateway forwards
    /// to an adopted service: for a module that shares a prefix with another.
    #[serde(default)]
    pub routes: Vec<Spanned<String>>,
    /// Environment variables an adopted service reads: `NAME` or `NAME=default`.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    /// The PostgreSQL schema of the adopted monolith's database that holds an
    /// adopted service's tables (instead of a database of its own).
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    /// Event subjects this service publishes, e.g. `post.created`.
    #[serde(default)]
    pub publishes: Vec<Spanned<String>>,
    /// Event subjects this service consumes (a durable JetStream consumer each).
    #[serde(default)]
    pub consumes: Vec<Spanned<String>>,
    #[serde(default)]
    pub resources: Vec<Spanned<RawResource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub name: Spanned<String>,
    #[serde(default)]
    pub plural: Option<Spanned<String>>,
    /// `field = "type"` or `field = { type = "...", default = ..., renamed_from = "..." }`,
    /// in declaration order.
    #[serde(default)]
    pub fields: IndexMap<String, Spanned<RawField>>,
    /// Rows carry the id of the user who created them; only they or an admin
    /// change them.
    #[serde(default)]
    pub owned: Option<Spanned<bool>>,
    /// Operation (`read`, `create`, `update`, `delete`) → the role it needs.
    #[serde(default)]
    pub roles: Option<Spanned<IndexMap<String, Spanned<String>>>>,
}

/// A field: its type alone, or a table with what a schema change needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RawField {
    pub ty: String,
    /// The value existing rows get when the field is added or made required.
    pub default: Option<toml::Value>,
    /// The field's former name: the column is renamed, its values kept.
    pub renamed_from: Option<String>,
}

/// Keys of a field written as a table.
pub const FIELD_KEYS: &[&str] = &["type", "default", "renamed_from"];

impl<'de> Deserialize<'de> for RawField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    r#"a type such as "string", or a table such as { type = "i32", default = 0 }"#,
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawField, E> {
                Ok(RawField {
                    ty: v.to_string(),
                    default: None,
                    renamed_from: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawField, A::Error> {
                use serde::de::Error;
                let (mut ty, mut default, mut renamed_from) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => ty = Some(map.next_value::<String>()?),
                        "default" => default = Some(map.next_value::<toml::Value>()?),
                        "renamed_from" => renamed_from = Some(map.next_value::<String>()?),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a field; accepted: {}",
                                FIELD_KEYS.join(", ")
                            )))
                        }
                    }
                }
                let ty = ty.ok_or_else(|| A::Error::custom(r#"a field written as a table needs `type`, e.g. { type = "string", default = "" }"#))?;
                Ok(RawField {
                    ty,
                    default,
                    renamed_from,
                })
            }
        }
        d.deserialize_any(V)
    }
}
