//! A small monolith in memory, for the unit tests of `split --from`'s stages:
//! `blog` is nested under `/api/blog` and uses the shared `error` module; `users`
//! is merged with routes of its own; `main.rs` listens on port 3000.

use super::Source;

pub(super) const MANIFEST: &str = r#"[package]
name = "shop"
version = "0.1.0"
edition = "2021"

[dependencies]
axum = "0.8"
sqlx = { version = "0.8", features = ["runtime-tokio", "postgres"] }
tokio = { version = "1", features = ["full"] }
"#;

pub(super) const MAIN: &str = r#"mod blog;
mod error;
mod users;

use axum::Router;

fn app() -> Router {
    Router::new()
        .nest("/api/blog", blog::router())
        .merge(users::routes())
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await.unwrap();
    axum::serve(listener, app()).await.unwrap();
}
"#;

pub(super) const BLOG: &str = r#"use axum::{routing::get, Router};

use crate::error::AppError;

pub fn router() -> Router {
    Router::new().route("/", get(list)).route("/{id}", get(one))
}

async fn list() -> Result<String, AppError> {
    Ok(String::new())
}

async fn one() -> Result<String, AppError> {
    Ok(String::new())
}
"#;

pub(super) const USERS: &str = r#"use axum::{routing::get, Router};

pub fn routes() -> Router {
    Router::new().route("/api/users", get(list))
}

async fn list() -> &'static str {
    "[]"
}
"#;

pub(super) const ERROR: &str = "pub struct AppError;\n";

/// The monolith with `main.rs` and the modules, each replaced where `with` says.
pub(super) fn source(with: &[(&str, &str)]) -> Source {
    let mut files: std::collections::BTreeMap<String, String> = [
        ("src/main.rs", MAIN),
        ("src/blog.rs", BLOG),
        ("src/users.rs", USERS),
        ("src/error.rs", ERROR),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    for (p, t) in with {
        files.insert(p.to_string(), t.to_string());
    }
    Source {
        manifest: MANIFEST.into(),
        files,
        migrations_dir: "migrations".into(),
        ..Source::default()
    }
}

/// The refusal of a stage that must refuse.
pub(super) fn refused<T>(r: Result<T, super::Refusal>) -> super::Refusal {
    match r {
        Ok(_) => panic!("the stage went on where it must refuse"),
        Err(e) => e,
    }
}
