//! The HTTP client under every generated service client: base URL from
//! `<NAME>_SERVICE_URL`, timeouts, the envelope decoded, failures mapped to
//! [`ApiError`] (502 when the other service fails, 504 when it is too slow).
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

#[cfg(feature = "auth")]
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{service} service did not answer in time")]
    Timeout { service: &'static str },
    #[error("{service} service is unavailable")]
    Unavailable {
        service: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{service} service answered {status}: {message}")]
    Status {
        service: &'static str,
        status: u16,
        message: String,
    },
}

impl From<ClientError> for ApiError {
    fn from(err: ClientError) -> Self {
        tracing::warn!(error = %err, "call to another service failed");
        match err {
            ClientError::Timeout { .. } => ApiError::GatewayTimeout(err.to_string()),
            _ => ApiError::BadGateway(err.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    data: Option<T>,
    error: Option<String>,
}

/// A client of one other service.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    service: &'static str,
    base_url: String,
    http: reqwest::Client,
    /// Sent with every call to a protected service: who is calling.
    #[cfg(feature = "auth")]
    token: Option<Arc<crate::auth::ServiceToken>>,
}

impl ServiceClient {
    pub fn new(service: &'static str, base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()?;
        Ok(Self {
            service,
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            #[cfg(feature = "auth")]
            token: None,
        })
    }

    /// Calls carry `token`: the other service checks it like a user's.
    #[cfg(feature = "auth")]
    pub fn with_token(mut self, token: Arc<crate::auth::ServiceToken>) -> Self {
        self.token = Some(token);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn classify(&self, err: reqwest::Error) -> ClientError {
        if err.is_timeout() {
            ClientError::Timeout {
                service: self.service,
            }
        } else {
            ClientError::Unavailable {
                service: self.service,
                source: err,
            }
        }
    }

    /// `GET path`; `Ok(None)` when the other service answers 404. When spans are
    /// exported the call is one, between the caller's span and the other service's.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let span = crate::otel::client_span("GET", &url, self.service);
        let mut status = None;
        let result = self.send_get(&url, span.as_ref(), &mut status).await;
        if let Some(span) = span {
            let error = result.as_ref().err().map(ToString::to_string);
            crate::otel::finish_client(span, status, error);
        }
        result
    }

    /// [`get`](Self::get) as the call's `span` (if exported), noting in `status` what
    /// the other service answered.
    async fn send_get<T: DeserializeOwned>(
        &self,
        url: &str,
        span: Option<&crate::otel::Span>,
        status: &mut Option<u16>,
    ) -> Result<Option<T>, ClientError> {
        let mut request = self.http.get(url);
        // The call is part of the request being handled: same trace.
        if let Some(traceparent) = crate::trace::outgoing_header(span) {
            request = request.header(crate::trace::TRACEPARENT, traceparent);
        }
        if let Some(state) = crate::trace::outgoing_state() {
            request = request.header(crate::trace::TRACESTATE, state.header_value().clone());
        }
        #[cfg(feature = "auth")]
        if let Some(token) = &self.token {
            let bearer = token.bearer().map_err(|e| ClientError::Status {
                service: self.service,
                status: 500,
                message: format!("cannot sign this service's token: {e}"),
            })?;
            request = request.header(reqwest::header::AUTHORIZATION, bearer);
        }
        let response = request.send().await.map_err(|e| self.classify(e))?;
        let answered = response.status();
        *status = Some(answered.as_u16());
        if answered == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: Envelope<T> = response.json().await.map_err(|e| self.classify(e))?;
        match body {
            Envelope {
                success: true,
                data: Some(data),
                ..
            } => Ok(Some(data)),
            Envelope { error, .. } => Err(ClientError::Status {
                service: self.service,
                status: answered.as_u16(),
                message: error.unwrap_or_else(|| "no error message".into()),
            }),
        }
    }
}
