//! msgen's runtime for a generated project's `common` crate, compiled on its own.
//!
//! Every other file of this directory is rendered into projects byte for byte as
//! `common/src/<file>`; a project's own `common/src/lib.rs` is rendered from its
//! `services.toml` and declares these modules among those it needs. This file only
//! gathers them here, with the same paths (`crate::ApiError`, `crate::otel`, ...),
//! so msgen's CI compiles, lints and tests exactly what projects receive.

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "clients")]
pub mod client;
#[cfg(feature = "database")]
pub mod db;
pub mod envelope;
pub mod error;
#[cfg(feature = "events")]
pub mod events;
pub mod extract;
#[cfg(feature = "auth")]
pub mod jwt;
#[cfg(feature = "auth")]
pub mod limit;
pub mod metrics;
pub mod otel;
pub mod pagination;
#[cfg(feature = "database")]
pub mod query_spans;
pub mod server;
pub mod telemetry;
pub mod trace;
pub mod validate;

pub use envelope::{created, ok, ApiResponse, ApiResult};
pub use error::{ApiError, ErrorResponse};
