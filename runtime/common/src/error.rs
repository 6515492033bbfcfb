//! [`ApiError`]: every failure a handler can return, rendered as the error envelope
//! `{"success": false, "error": "..."}` with the right status code. Internal errors
//! are logged in full and answered with a generic message, so nothing leaks.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself was malformed (bad JSON, bad query string, bad path).
    #[error("{1}")]
    Rejected(StatusCode, String),
    #[error("validation failed: {}", .0.join("; "))]
    Validation(Vec<String>),
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed: not the owner, or without the role.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts: answered with `Retry-After` (seconds).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// Another service failed or cannot be reached.
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal server error")]
    Internal(#[from] anyhow::Error),
}

/// The error envelope, as every failure is answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub success: bool,
    pub error: String,
    /// Every problem, for a failed validation (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<String>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Rejected(status, _) => *status,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(err) = &self {
            tracing::error!(error = ?err, "request failed");
        }
        let details = match &self {
            Self::Validation(d) => Some(d.clone()),
            _ => None,
        };
        let body = ErrorResponse {
            success: false,
            error: self.to_string(),
            details,
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyRequests { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}

/// Database errors as the client sees them: a missing row is a 404, a duplicate a
/// 409, a dangling reference a validation error; the rest are logged in full.
#[cfg(feature = "database")]
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound("not found".into()),
            sqlx::Error::PoolTimedOut => Self::Unavailable("database unavailable".into()),
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => Self::Conflict("already exists".into()),
                ErrorKind::ForeignKeyViolation => {
                    let problem = "refers to a record that does not exist";
                    Self::Validation(vec![match fk_column(db.as_ref()) {
                        Some(column) => format!("{column}: {problem}"),
                        None => problem.into(),
                    }])
                }
                // PostgreSQL's text cannot hold a NUL character: one in a filter, or in
                // a field that no check of its own refused.
                _ if db.code().as_deref() == Some("22021") => Self::Rejected(
                    StatusCode::BAD_REQUEST,
                    "text must not contain a NUL character (\\u0000)".into(),
                ),
                _ => Self::Internal(err.into()),
            },
            _ => Self::Internal(err.into()),
        }
    }
}

/// The column of a violated foreign key, as PostgreSQL's detail names it: `Key
/// (author_id)=(7) is not present in table "users".` (the column as it is now,
/// whatever the constraint is called). SQLite names none.
#[cfg(feature = "database")]
fn fk_column(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg.detail().and_then(key_column).map(str::to_string);
    }
    let _ = db;
    None
}

/// `author_id` of `Key (author_id)=(7) is not present ...`; `None` for a key of
/// several columns or another wording (a server's language).
#[cfg(feature = "postgres")]
fn key_column(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("Key (")?;
    let column = &rest[..rest.find(")=(")?];
    let plain = !column.is_empty() && !column.contains([',', '"', ' ']);
    plain.then_some(column)
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::key_column;

    #[test]
    fn a_foreign_keys_column_is_read_from_postgresqls_detail() {
        let detail = r#"Key (author_id)=(99) is not present in table "authors"."#;
        assert_eq!(key_column(detail), Some("author_id"));
        assert_eq!(
            key_column("Key (a, b)=(1, 2) is not present in table \"t\"."),
            None
        );
        assert_eq!(
            key_column("Schlüssel (author_id)=(99) ist nicht vorhanden"),
            None
        );
        assert_eq!(key_column("Key ()=(1)"), None);
        assert_eq!(key_column("Key (x"), None);
    }
}
