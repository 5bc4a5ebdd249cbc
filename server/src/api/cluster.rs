//! The admin API across a cluster's nodes: any node answers for every room. A request about a
//! room another node hosts is forwarded there, and the list of live rooms gathers every node's.
//! Nodes ask each other with the cluster's relay key in place of an API key; a forwarded request
//! is never forwarded again.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ApiState;
use crate::cluster::member::{relay_key, Host, RELAY_HEADER};
use crate::cluster::nodes::NodeInfo;

/// A node of the cluster asked this one, on behalf of a client of its own API.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded(pub bool);

/// How long a node waits for another before answering without it.
const ASK_WAIT: Duration = Duration::from_secs(3);

/// The node that hosts `room`, when that is another node and this request may be forwarded.
pub async fn elsewhere(
    state: &ApiState,
    room: &str,
    forwarded: Forwarded,
) -> Result<Option<NodeInfo>, ApiError> {
    if forwarded.0 {
        return Ok(None);
    }
    let Some(cluster) = state.registry.cluster() else {
        return Ok(None);
    };
    match tokio::time::timeout(ASK_WAIT, cluster.host_of(room)).await {
        Ok(Ok(Some(Host::Node(node)))) => Ok(Some(node)),
        Ok(Ok(_)) => Ok(None),
        Ok(Err(e)) => Err(ApiError::internal(&e)),
        Err(_) => Err(ApiError::internal(&"the cluster's Redis did not answer")),
    }
}

/// The other live nodes, when this request may ask them.
pub async fn others(state: &ApiState, forwarded: Forwarded) -> Vec<NodeInfo> {
    let Some(cluster) = state.registry.cluster().filter(|_| !forwarded.0) else {
        return Vec::new();
    };
    match tokio::time::timeout(ASK_WAIT, cluster.other_nodes()).await {
        Ok(Ok(nodes)) => nodes,
        _ => {
            tracing::warn!("the admin API could not list the other nodes; answering for this one");
            Vec::new()
        }
    }
}

/// Sends the request on to `node` as it came (method, path and query, JSON body) and answers
/// with what `node` answered.
pub async fn forward(
    state: &ApiState,
    node: &NodeInfo,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, ApiError> {
    let (status, headers, bytes) = ask(state, node, method, path_and_query, body)
        .await
        .map_err(|e| ApiError::internal(&format!("the room's node did not answer: {e}")))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(kind) = headers.get(axum::http::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, kind.clone());
    }
    Ok(response.into_response())
}

/// One request to another node's admin API.
pub async fn ask(
    state: &ApiState,
    node: &NodeInfo,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
    let key = relay_key(&state.registry.context().settings().token_secret);
    let url = format!("{}{path_and_query}", node.http.trim_end_matches('/'));
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .expect("an HTTP method is an HTTP method");
    let mut request = state
        .http
        .request(method, url)
        .timeout(ASK_WAIT)
        .header(RELAY_HEADER, HeaderValue::from_str(&key).expect("hex"));
    if let Some(body) = body {
        request = request
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let response = request.send().await?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if let Some(kind) = response.headers().get(reqwest::header::CONTENT_TYPE) {
        if let Ok(kind) = HeaderValue::from_bytes(kind.as_bytes()) {
            headers.insert(axum::http::header::CONTENT_TYPE, kind);
        }
    }
    let bytes = response.bytes().await?.to_vec();
    Ok((status, headers, bytes))
}
