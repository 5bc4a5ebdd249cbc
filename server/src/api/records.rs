//! `/api/v1/sessions/*` and `/api/v1/audit`: attendance records and the audit trail, newest
//! first, a page at a time.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::ApiState;
use crate::store::{attendance_csv, parse_rfc3339, SessionQuery, Store};
use crate::webhooks::deliver::now_ms;

/// A list's query string: `room`, `from`, `to` (RFC 3339), `limit` (1–500), `cursor`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    room: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn store(state: &ApiState) -> Result<&Store, ApiError> {
    state
        .store
        .as_ref()
        .ok_or_else(|| ApiError::not_found("records are off on this server"))
}

/// The list's query string, or 400 for one that does not parse.
type Params = Result<Query<ListParams>, axum::extract::rejection::QueryRejection>;

fn query(params: Params) -> Result<SessionQuery, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let time = |name: &str, value: Option<String>| -> Result<Option<u64>, ApiError> {
        value
            .map(|v| {
                parse_rfc3339(&v).ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` must be an RFC 3339 time"))
                })
            })
            .transpose()
    };
    let limit = match params.limit {
        None => 0,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=500) => n,
            _ => return Err(ApiError::bad_request("`limit` must be 1–500")),
        },
    };
    Ok(SessionQuery {
        room: params.room,
        from: time("from", params.from)?,
        to: time("to", params.to)?,
        limit,
        // An empty cursor is the first page, as no cursor is.
        cursor: params.cursor.filter(|c| !c.is_empty()),
    })
}

pub async fn list(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = query(params)?;
    let page = store(&state)?
        .sessions(&query, now_ms())
        .await?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "sessions": page.items,
        "next_cursor": page.next_cursor,
    })))
}

pub async fn show(
    State(state): State<ApiState>,
    Path(session): Path<String>,
) -> Result<Json<crate::store::SessionRecord>, ApiError> {
    store(&state)?
        .session(&session, now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no session with that id"))
}

pub async fn csv(
    State(state): State<ApiState>,
    Path(session): Path<String>,
) -> Result<Response, ApiError> {
    let record = store(&state)?
        .session(&session, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("no session with that id"))?;
    let disposition = format!("attachment; filename=\"attendance-{}.csv\"", record.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        attendance_csv(&record),
    )
        .into_response())
}

pub async fn audit(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = query(params)?;
    let page = store(&state)?
        .audit(&query)
        .await?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "events": page.items,
        "next_cursor": page.next_cursor,
    })))
}
