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
                    Self::Validation(vec![match fk_column(db.table(), db.constraint()) {
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

/// The column of a foreign key that PostgreSQL named as it names them,
/// `<table>_<column>_fkey`, the names migrations get. SQLite names neither.
#[cfg(feature = "database")]
fn fk_column<'a>(table: Option<&str>, constraint: Option<&'a str>) -> Option<&'a str> {
    constraint?
        .strip_prefix(table?)?
        .strip_prefix('_')?
        .strip_suffix("_fkey")
        .filter(|column| !column.is_empty())
}

#[cfg(all(test, feature = "database"))]
mod tests {
    use super::fk_column;

    #[test]
    fn a_foreign_keys_column_is_read_from_postgresqls_name_for_it() {
        let column = |table, constraint| fk_column(Some(table), Some(constraint));
        assert_eq!(column("posts", "posts_author_id_fkey"), Some("author_id"));
        assert_eq!(
            column("user_groups", "user_groups_owner_group_id_fkey"),
            Some("owner_group_id")
        );
        assert_eq!(column("posts", "posts_author_id_check"), None);
        assert_eq!(column("posts", "comments_post_id_fkey"), None);
        assert_eq!(column("posts", "posts__fkey"), None);
        assert_eq!(fk_column(None, Some("posts_author_id_fkey")), None);
        assert_eq!(fk_column(Some("posts"), None), None);
    }
}
