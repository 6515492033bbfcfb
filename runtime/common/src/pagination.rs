//! `?page=N&per_page=M` query parameters and the page they select.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use serde::{Deserialize, Serialize};

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

/// Any other parameter is refused (400, naming these two): a `?limit=5` that was
/// silently ignored would return a page the client did not ask for.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page (default 20, at most 100).
    pub per_page: Option<u32>,
}

impl PageParams {
    /// 1-based page number.
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    pub fn per_page(&self) -> u32 {
        self.per_page
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page())
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page() - 1) * self.limit()
    }
}

/// `owner=me` of an owned resource's list: only the caller's own rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OwnerFilter {
    Me,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, params: PageParams, total: i64) -> Self {
        Self {
            items,
            page: params.page(),
            per_page: params.per_page(),
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_parameters_are_refused_naming_the_accepted_ones() {
        let err = serde_json::from_str::<PageParams>(r#"{"limit": 5}"#).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`page` or `per_page`"), "{message}");
    }

    #[test]
    fn clamps_and_offsets() {
        let p = PageParams {
            page: Some(3),
            per_page: Some(1000),
        };
        assert_eq!(p.per_page(), MAX_PER_PAGE);
        assert_eq!(p.offset(), 200);
        let p = PageParams::default();
        assert_eq!(
            (p.page(), p.per_page(), p.offset()),
            (1, DEFAULT_PER_PAGE, 0)
        );
    }
}
