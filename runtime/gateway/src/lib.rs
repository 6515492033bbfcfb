//! msgen's runtime for a generated project's gateway, compiled on its own.
//!
//! Every other file of this directory is rendered into projects byte for byte as
//! `gateway/src/<file>`; the project's own `gateway/src/lib.rs` declares them next
//! to its routes and configuration. This file only gathers them here, so msgen's
//! CI compiles, lints and tests exactly what projects receive.

pub mod balance;
pub mod cidr;
pub mod openapi;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod startup;
