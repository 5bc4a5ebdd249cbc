//! The admin API (`/api/v1/*`, operations.md) and `/metrics` on the main port: an axum router
//! the HTTP layer hands those paths to. Every request but the OpenAPI document needs one of
//! the configured keys (or, from another node of the cluster, its relay key); with none
//! configured, every path answers 404. In a cluster, `cluster` makes any node answer for every
//! room.

mod cluster;
mod error;
mod records;
mod rooms;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

pub use error::ApiError;

use crate::registry::Registry;
use crate::store::Store;

/// Request bodies larger than this are refused with 413 (operations.md).
pub const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI 3 document of this API, served at `/api/v1/openapi.json` with this server's own
/// limits filled in.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The document as this server serves it: a token's longest lifetime is a setting.
fn openapi_document(max_token_lifetime: u64) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("the document is JSON");
    doc["components"]["schemas"]["TokenRequest"]["properties"]["ttl_seconds"]["maximum"] =
        max_token_lifetime.into();
    doc.to_string()
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// `None` with records off: the record endpoints answer 404.
    pub store: Option<Store>,
    /// For asking the cluster's other nodes.
    pub http: reqwest::Client,
}

/// The router for `/api/v1/*` and `/metrics`.
pub fn router(state: ApiState) -> Router {
    let keys = Arc::new(
        state
            .registry
            .context()
            .settings()
            .operations
            .api_keys
            .clone(),
    );
    let document: Arc<str> =
        openapi_document(state.registry.context().keys().max_lifetime_secs()).into();
    let protected = Router::new()
        .route("/api/v1/rooms", get(rooms::list))
        .route("/api/v1/rooms/{room}", get(rooms::show).put(rooms::put))
        .route("/api/v1/rooms/{room}/tokens", post(rooms::token))
        .route("/api/v1/rooms/{room}/end", post(rooms::end))
        .route(
            "/api/v1/rooms/{room}/participants/{participant}",
            delete(rooms::remove),
        )
        .route("/api/v1/sessions", get(records::list))
        .route("/api/v1/sessions/{session}", get(records::show))
        .route(
            "/api/v1/sessions/{session}/attendance.csv",
            get(records::csv),
        )
        .route("/api/v1/audit", get(records::audit))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Keys {
                api: keys.clone(),
                token_secret: state
                    .registry
                    .context()
                    .settings()
                    .token_secret
                    .clone()
                    .into(),
            },
            authorize,
        ));
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        document.to_string(),
                    )
                }
            }),
        )
        .merge(protected)
        .layer(middleware::from_fn_with_state(keys, enabled))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// With no key configured the API does not exist: 404 for every path, the document included.
async fn enabled(State(keys): State<Arc<Vec<String>>>, request: Request, next: Next) -> Response {
    if keys.is_empty() {
        return ApiError::not_found("not found").into_response();
    }
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What a request may prove itself with.
#[derive(Clone)]
struct Keys {
    api: Arc<Vec<String>>,
    /// Another node of the cluster shows the relay key derived from it.
    token_secret: Arc<[u8]>,
}

/// `Authorization: Bearer <key>` with one of the configured keys (several during a rotation),
/// or another node of the cluster forwarding a request (the `circle-relay` key).
async fn authorize(State(keys): State<Keys>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let by_key = presented.is_some_and(|p| keys.api.iter().any(|k| constant_time_eq(k, p)));
    let by_node = !by_key
        && request
            .headers()
            .get(crate::cluster::member::RELAY_HEADER)
            .is_some_and(|k| {
                crate::cluster::member::is_relay_key(&keys.token_secret, k.as_bytes())
            });
    request.extensions_mut().insert(cluster::Forwarded(by_node));
    let allowed = by_key || by_node;
    if !allowed {
        let mut response = ApiError::unauthorized("a valid API key is required").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

/// Compares without an early exit on the first differing byte, so response times do not
/// reveal how much of a guessed key is right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The Prometheus exposition, behind the API key on the main port.
async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.registry.context().metrics().encode(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_only_when_identical() {
        assert!(constant_time_eq(
            "a-key-of-32-characters-or-more!!",
            "a-key-of-32-characters-or-more!!"
        ));
        assert!(!constant_time_eq(
            "a-key-of-32-characters-or-more!!",
            "a-key-of-32-characters-or-more!?"
        ));
        assert!(!constant_time_eq("short", "shorter"));
    }

    #[test]
    fn the_openapi_document_is_json_and_names_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/openapi.json",
            "/api/v1/rooms",
            "/api/v1/rooms/{room}",
            "/api/v1/rooms/{room}/tokens",
            "/api/v1/rooms/{room}/end",
            "/api/v1/rooms/{room}/participants/{participant}",
            "/api/v1/sessions",
            "/api/v1/sessions/{session}",
            "/api/v1/sessions/{session}/attendance.csv",
            "/api/v1/audit",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
    }
}
