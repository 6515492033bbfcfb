//! The response envelope of every API: `{"success": true, "data": ...}` on success,
//! `{"success": false, "error": "..."}` on failure (see [`crate::error`]).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

/// What a handler returns: the envelope, or an [`ApiError`](crate::ApiError).
pub type ApiResult<T> = Result<Json<ApiResponse<T>>, crate::ApiError>;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiResponse<T> {
    pub success: bool,
    pub data: T,
}

/// `200 OK` with `data` in the envelope.
pub fn ok<T: Serialize>(data: T) -> Json<ApiResponse<T>> {
    Json(ApiResponse {
        success: true,
        data,
    })
}

/// `201 Created` with `data` in the envelope.
pub fn created<T: Serialize>(data: T) -> (StatusCode, Json<ApiResponse<T>>) {
    (StatusCode::CREATED, ok(data))
}
