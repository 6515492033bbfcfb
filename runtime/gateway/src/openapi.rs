//! `GET /openapi.json`: one document for the whole system, merged from the services'
//! own documents (each derived from its handlers), keeping the paths this gateway
//! routes to each service. A service that does not answer, or not in time, is listed
//! under `x-unavailable` rather than failing the whole document.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::proxy::GatewayState;
use crate::route::{self, Route};

/// Larger documents are not read.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

pub async fn openapi(State(state): State<Arc<GatewayState>>) -> Json<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut unavailable = Vec::new();
    // Asked all at once, each within the upstream timeout: a service that stalls
    // costs the document one timeout, however many there are.
    let asked: Vec<_> = state
        .upstreams
        .keys()
        .map(|name| {
            let (state, name) = (Arc::clone(&state), name.clone());
            tokio::spawn(async move {
                tokio::time::timeout(state.upstream_timeout, fetch(&state, &name)).await
            })
        })
        .collect();
    for (name, doc) in state.upstreams.keys().zip(asked) {
        match doc.await {
            Ok(Ok(Some(doc))) => merge(state.routes, name, &doc, &mut paths, &mut schemas),
            _ => unavailable.push(name.clone()),
        }
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": state.api_title,
            "description": "Every path the gateway serves, from the services' own documents.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                BEARER: { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
        },
        "x-unavailable": unavailable,
    }))
}

/// A service's own document, or `None` when it does not answer with one.
async fn fetch(state: &GatewayState, name: &str) -> Option<Value> {
    let target = state.upstreams.get(name)?;
    let request = Request::get("/openapi.json").body(Body::empty()).ok()?;
    let response = target.pool.send(request).await.ok()?;
    if response.status() != StatusCode::OK {
        tracing::warn!(upstream = name, status = %response.status(), "no OpenAPI document");
        return None;
    }
    let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_DOCUMENT_BYTES)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The security scheme of the routes whose JWT the gateway checks.
const BEARER: &str = "bearerAuth";

/// Adds the paths of `doc` that the gateway sends to `name` unchanged, and its schemas.
/// Operations behind a route that needs a token say so: the bearer scheme, and the
/// gateway's 401.
fn merge(
    routes: &'static [Route],
    name: &str,
    doc: &Value,
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
) {
    if let Some(own) = doc["paths"].as_object() {
        for (path, item) in own {
            let Some(route) = route::find(routes, path) else {
                continue;
            };
            if route.upstream != name || route.rewrite.is_some() {
                continue;
            }
            let mut item = item.clone();
            if route.protected {
                require_token(&mut item);
            }
            paths.insert(path.clone(), item);
        }
    }
    if let Some(own) = doc["components"]["schemas"].as_object() {
        for (schema, body) in own {
            schemas.insert(schema.clone(), body.clone());
        }
    }
}

fn require_token(item: &mut Value) {
    let Some(operations) = item.as_object_mut() else {
        return;
    };
    for (method, operation) in operations.iter_mut() {
        let http = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        if !http.contains(&method.as_str()) {
            continue;
        }
        operation["security"] = json!([{ BEARER: [] }]);
        if let Some(responses) = operation["responses"].as_object_mut() {
            responses.entry("401").or_insert_with(|| {
                json!({ "description": "Missing, invalid or expired bearer token (checked by the gateway)" })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_paths_routed_to_the_service_and_its_schemas() {
        const ROUTES: &[Route] = &[
            Route {
                prefix: "/api/v1/things",
                exact: false,
                pattern: false,
                rewrite: None,
                upstream: "things",
                protected: true,
            },
            Route {
                prefix: "/api/things",
                exact: false,
                pattern: false,
                rewrite: Some("/api/v1/things"),
                upstream: "things",
                protected: false,
            },
        ];
        let route = &ROUTES[0];
        let doc = json!({
            "paths": {
                route.prefix: { "get": {} },
                "/api/things": { "get": {} },
                "/health/ready": { "get": {} },
            },
            "components": { "schemas": { "Thing": { "type": "object" } } },
        });
        let (mut paths, mut schemas) = (Map::new(), Map::new());
        merge(ROUTES, route.upstream, &doc, &mut paths, &mut schemas);
        assert!(paths.contains_key(route.prefix));
        assert!(paths[route.prefix]["get"]["security"].is_array());
        // A path the gateway rewrites, and one it does not route, are not kept.
        assert!(!paths.contains_key("/api/things"));
        assert!(!paths.contains_key("/health/ready"));
        assert!(schemas.contains_key("Thing"));
    }

    #[test]
    fn protected_operations_need_the_bearer_token() {
        let mut item = json!({
            "get": { "responses": { "200": { "description": "ok" } } },
            "parameters": [],
        });
        require_token(&mut item);
        assert_eq!(item["get"]["security"], json!([{ "bearerAuth": [] }]));
        assert!(item["get"]["responses"]["401"].is_object());
        assert!(item["parameters"].is_array());
    }
}
