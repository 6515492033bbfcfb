//! Who is calling, checked by every service itself: the gateway is not the only
//! door (a pod of the cluster, or a process of the host, can call a service
//! directly), so a protected route
//! verifies the bearer token again with the shared [`Verifier`](crate::jwt::Verifier)
//! and hands the handler a [`CurrentUser`]. Calls between services carry a token of
//! the calling service ([`ServiceToken`]), signed with the same secret.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::jwt::{self, Claims, Verifier};
use crate::ApiError;

/// The caller of a protected route, from its verified token: a user (`id` is the
/// auth service's user id) or another service (`service:<name>`).
///
/// ```ignore
/// async fn mine(user: common::auth::CurrentUser) -> ApiResult<String> {
///     Ok(ok(user.id))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: String,
    pub email: String,
    /// [`USER`] for every signed-in user, and [`ADMIN`] for an admin.
    pub roles: Vec<String>,
}

/// The role of every signed-in user.
pub const USER: &str = "user";
/// The role that may do anything: granted by the auth service's `grant-admin`.
pub const ADMIN: &str = "admin";

impl CurrentUser {
    /// A call made by another service of the system, not by a user.
    pub fn is_service(&self) -> bool {
        self.id.starts_with(SERVICE_PREFIX)
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN)
    }

    /// 403 in the envelope unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }

    /// For reads that need the admin role: 403 in the envelope unless the caller
    /// is an admin or another service of the system (checking a reference, say,
    /// for a request of a user it has checked itself).
    pub fn require_admin_or_service(&self) -> Result<(), ApiError> {
        if self.is_service() {
            Ok(())
        } else {
            self.require_admin()
        }
    }

    /// 403 in the envelope unless the caller owns `what` (its `owner` is the
    /// caller's id) or is an admin. A row without an owner (made before its
    /// resource was owned) is an admin's to change.
    pub fn require_owner(&self, owner: Option<&str>, what: &str) -> Result<(), ApiError> {
        if self.is_admin() || owner == Some(self.id.as_str()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only the owner of {what} or an admin may change it"
            )))
        }
    }
}

/// `sub` of the tokens services sign for their calls to each other.
pub const SERVICE_PREFIX: &str = "service:";

#[cfg_attr(feature = "axum07", axum::async_trait)]
impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Put there by `require_token`; a route without it has no caller to give.
        match parts.extensions.get::<Verified>() {
            Some(Verified(claims)) => Ok(Self {
                id: claims.sub.clone(),
                email: claims.email.clone(),
                roles: claims.roles.clone(),
            }),
            None => Err(ApiError::Unauthorized("missing bearer token".into())),
        }
    }
}

/// The claims `require_token` verified, in the request's extensions: shared with
/// the verifier's memory, copied into a [`CurrentUser`] only for a handler that
/// asks for one.
#[derive(Clone)]
struct Verified(Arc<Claims>);

/// The layer of the protected routes: 401 in the envelope without a valid token
/// (missing, forged, expired, or of another algorithm), the caller for the
/// handler otherwise.
///
/// ```ignore
/// router.route_layer(common::auth::require_token(verifier))
/// ```
pub fn require_token(verifier: Arc<Verifier>) -> RequireTokenLayer {
    RequireTokenLayer { verifier }
}

/// See [`require_token`].
#[derive(Clone)]
pub struct RequireTokenLayer {
    verifier: Arc<Verifier>,
}

impl<S> Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> RequireToken<S> {
        RequireToken {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// The service of [`RequireTokenLayer`]. A tower service rather than
/// `axum::middleware::from_fn`, which boxes a future and clones the route on
/// every request: this runs on every protected request of every service.
#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> Service<Request> for RequireToken<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        Either<Ready<Result<Response, S::Error>>, TaskLocalFuture<Arc<Claims>, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let claims = jwt::bearer(request.headers())
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))
            .and_then(|token| self.verifier.verify(token));
        match claims {
            Ok(claims) => {
                request
                    .extensions_mut()
                    .insert(Verified(Arc::clone(&claims)));
                Either::Right(CALLER.scope(claims, self.inner.call(request)))
            }
            Err(err) => Either::Left(ready(Ok(err.into_response()))),
        }
    }
}

tokio::task_local! {
    static CALLER: Arc<Claims>;
}

/// The id of who made the request being handled (a user, or `service:<name>`),
/// for what it causes beyond its answer: the events it publishes carry it as
/// `actor`. `None` outside a protected route.
pub fn current_caller() -> Option<String> {
    CALLER.try_with(|claims| claims.sub.clone()).ok()
}

/// The token a service sends with its calls to the others: `sub` is
/// `service:<name>`, short-lived, signed again before it expires.
pub struct ServiceToken {
    service: &'static str,
    secret: String,
    current: Mutex<Option<(String, Instant)>>,
}

// By hand: the secret and the token must never reach a log line.
impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl ServiceToken {
    /// How long a token lives; a new one is signed when half of it is left.
    const TTL: Duration = Duration::from_secs(300);

    pub fn new(service: &'static str, secret: &str) -> Self {
        Self {
            service,
            secret: secret.to_string(),
            current: Mutex::new(None),
        }
    }

    pub fn bearer(&self) -> Result<String, ApiError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, renew_at)) = current.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(format!("Bearer {token}"));
            }
        }
        let token = jwt::issue(
            &self.secret,
            &format!("{SERVICE_PREFIX}{}", self.service),
            "",
            Self::TTL,
        )?;
        let bearer = format!("Bearer {token}");
        *current = Some((token, Instant::now() + Self::TTL / 2));
        Ok(bearer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn app() -> Router {
        let verifier = Arc::new(Verifier::new(SECRET));
        Router::new()
            .route("/who", get(|user: CurrentUser| async move { user.id }))
            .route(
                "/caller",
                get(|| async { current_caller().unwrap_or_default() }),
            )
            .route_layer(require_token(verifier))
    }

    async fn status(token: Option<String>) -> (StatusCode, String) {
        let mut request = Request::get("/who");
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, t);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn only_a_valid_token_gets_through() {
        let token = jwt::issue(SECRET, "7", "ada@example.com", Duration::from_secs(60)).unwrap();
        assert_eq!(
            status(Some(format!("Bearer {token}"))).await,
            (StatusCode::OK, "7".to_string())
        );
        let (code, body) = status(None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"success\":false"), "{body}");
        let forged = jwt::issue(
            "another-secret-another-secret-xx",
            "7",
            "ada@example.com",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            status(Some(format!("Bearer {forged}"))).await.0,
            StatusCode::UNAUTHORIZED
        );
        // alg=none: the claims of a good token, unsigned.
        let claims = token.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
        assert_eq!(
            status(Some(format!("Bearer {none}"))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn owners_and_admins_change_what_is_theirs() {
        let user = |id: &str, roles: &[&str]| CurrentUser {
            id: id.into(),
            email: String::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        let ada = user("7", &[USER]);
        assert!(ada.require_owner(Some("7"), "post 1").is_ok());
        let err = ada.require_owner(Some("8"), "post 1").unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(ada.require_owner(None, "post 1").is_err());
        assert!(ada.require_admin().is_err());
        let admin = user("9", &[USER, ADMIN]);
        assert!(admin.require_owner(Some("7"), "post 1").is_ok());
        assert!(admin.require_owner(None, "post 1").is_ok());
        assert!(admin.require_admin().is_ok());
        let blog = user("service:blog-service", &[]);
        assert!(blog.require_admin().is_err());
        assert!(blog.require_admin_or_service().is_ok());
        assert!(ada.require_admin_or_service().is_err());
    }

    #[tokio::test]
    async fn what_a_request_causes_knows_its_caller() {
        assert_eq!(current_caller(), None);
        let token = jwt::issue(SECRET, "7", "ada@example.com", Duration::from_secs(60)).unwrap();
        let request = Request::get("/caller")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"7");
    }

    #[tokio::test]
    async fn a_service_token_is_a_caller_too() {
        let token = ServiceToken::new("blog", SECRET);
        assert!(!format!("{token:?}").contains(SECRET), "{token:?}");
        let bearer = token.bearer().unwrap();
        assert_eq!(bearer, token.bearer().unwrap(), "signed once, reused");
        let (code, body) = status(Some(bearer)).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "service:blog"));
    }
}
