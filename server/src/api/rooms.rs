//! `/api/v1/rooms/*`: per-room settings, live rooms (ids, roles and counts, never names), join
//! tokens, ending a session and removing someone.

use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use circle_protocol::{FloorMode, ParticipantId, Role, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cluster::{self, Forwarded};
use super::error::{ApiError, Body};
use super::ApiState;
use crate::config::RoomSettings;
use crate::room::{PresenceState, RoomHandle, RoomView, Sent};
use crate::store::{rfc3339, Write};
use crate::token::{unix_now, valid_room_id, validate_claims, Claims};
use crate::webhooks::role_name;

/// `PUT /rooms/{room}`'s body; a field left out keeps the server's default.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    max_participants: Option<u32>,
    waiting_room: Option<bool>,
    /// Seconds per turn; 0 for no limit.
    turn_limit_seconds: Option<u32>,
    anonymity_threshold: Option<u32>,
}

/// A room's settings as they apply: the server's defaults with the room's own on top.
#[derive(Debug, Serialize)]
pub struct EffectiveSettings {
    max_participants: usize,
    waiting_room: bool,
    /// `null` for no limit.
    turn_limit_seconds: Option<u32>,
    anonymity_threshold: u32,
}

fn room_id(room: &str) -> Result<RoomId, ApiError> {
    if valid_room_id(room) {
        Ok(RoomId::from(room))
    } else {
        Err(ApiError::bad_request(
            "a room id is 1–64 characters of A–Z, a–z, 0–9, _ and -",
        ))
    }
}

/// The live room, or 404.
fn live(state: &ApiState, room: &str) -> Result<(RoomId, RoomHandle), ApiError> {
    let id = RoomId::from(room);
    state
        .registry
        .existing_room(&id)
        .map(|handle| (id, handle))
        .ok_or_else(|| ApiError::not_found("no live room with that id"))
}

fn effective(state: &ApiState, room: &RoomId) -> EffectiveSettings {
    let context = state.registry.context();
    let own = context.room_settings(room);
    let config = own.apply_to(context.settings().room.clone());
    EffectiveSettings {
        max_participants: config.max_participants,
        waiting_room: config.waiting_room,
        turn_limit_seconds: own.turn_limit_seconds.filter(|s| *s > 0),
        anonymity_threshold: config.anonymity_threshold,
    }
}

pub async fn put(
    State(state): State<ApiState>,
    Extension(forwarded): Extension<Forwarded>,
    uri: Uri,
    Path(room): Path<String>,
    Body(body): Body<SettingsBody>,
) -> Result<Json<EffectiveSettings>, ApiError> {
    let id = room_id(&room)?;
    if body
        .max_participants
        .is_some_and(|n| !(1..=100).contains(&n))
    {
        return Err(ApiError::bad_request("max_participants must be 1–100"));
    }
    if body.turn_limit_seconds.is_some_and(|s| s > 3600) {
        return Err(ApiError::bad_request(
            "turn_limit_seconds must be 0 (no limit) to 3600",
        ));
    }
    if body
        .anonymity_threshold
        .is_some_and(|n| !(1..=100).contains(&n))
    {
        return Err(ApiError::bad_request("anonymity_threshold must be 1–100"));
    }
    let settings = RoomSettings {
        max_participants: body.max_participants.map(|n| n as usize),
        waiting_room: body.waiting_room,
        turn_limit_seconds: body.turn_limit_seconds,
        anonymity_threshold: body.anonymity_threshold,
    };
    if let Some(store) = &state.store {
        store
            .put_room_settings(id.as_str(), &settings, unix_now() * 1000)
            .await?;
    }
    let context = state.registry.context();
    context.set_room_settings(id.clone(), settings.clone());
    if let Some(handle) = state.registry.existing_room(&id) {
        // A room that closed meanwhile takes them at its next start anyway.
        let _ = handle.configure(settings).await;
    }
    // Every node keeps the settings for the room's next start there, and its host applies
    // them live. A node that misses this reads them from the shared database at its start.
    let raw = serde_json::to_vec(&body).expect("settings serialise");
    for node in cluster::others(&state, forwarded).await {
        let sent = cluster::ask(&state, &node, Method::PUT, uri.path(), Some(raw.clone())).await;
        if !sent.is_ok_and(|(status, _, _)| status.is_success()) {
            tracing::warn!(
                "a node did not take a room's new settings; it has them at its next start"
            );
        }
    }
    Ok(Json(effective(&state, &id)))
}

fn floor_mode(mode: FloorMode) -> &'static str {
    match mode {
        FloorMode::Open => "open",
        FloorMode::Stick => "stick",
    }
}

fn presence(state: PresenceState) -> &'static str {
    match state {
        PresenceState::Present => "present",
        PresenceState::Waiting => "waiting",
        PresenceState::Reconnecting => "reconnecting",
    }
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(forwarded): Extension<Forwarded>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut rooms = Vec::new();
    // Every other node's rooms: each room runs on one node, so nothing is counted twice.
    for node in cluster::others(&state, forwarded).await {
        match cluster::ask(&state, &node, Method::GET, "/api/v1/rooms", None).await {
            Ok((status, _, body)) if status.is_success() => {
                let theirs: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(theirs) = theirs["rooms"].as_array() {
                    rooms.extend(theirs.iter().cloned());
                }
            }
            _ => tracing::warn!("a node did not list its rooms; the list lacks them"),
        }
    }
    for (id, handle) in state.registry.rooms() {
        // A room that closed since the look-up is no longer live.
        let Ok(view) = handle.describe().await else {
            continue;
        };
        let count = |wanted: PresenceState| {
            view.overview
                .participants
                .iter()
                .filter(|p| p.state == wanted)
                .count()
        };
        let facilitators = view
            .overview
            .participants
            .iter()
            .filter(|p| p.role == Role::Facilitator && p.state != PresenceState::Waiting)
            .count();
        rooms.push(json!({
            "id": id.as_str(),
            "session": view.session.as_str(),
            "started_at": view.started_at.map(rfc3339),
            "present": count(PresenceState::Present),
            "reconnecting": count(PresenceState::Reconnecting),
            "waiting": count(PresenceState::Waiting),
            "facilitators": facilitators,
            "locked": view.overview.locked,
            "floor_mode": floor_mode(view.overview.floor_mode),
        }));
    }
    rooms.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "rooms": rooms })))
}

pub async fn show(
    State(state): State<ApiState>,
    Extension(forwarded): Extension<Forwarded>,
    uri: Uri,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(node) = hosted_elsewhere(&state, &room, forwarded).await? {
        return cluster::forward(&state, &node, Method::GET, uri.path(), None).await;
    }
    let (id, handle) = live(&state, &room)?;
    let view: RoomView = handle
        .describe()
        .await
        .map_err(|_| ApiError::not_found("no live room with that id"))?;
    let participants: Vec<serde_json::Value> = view
        .overview
        .participants
        .iter()
        .map(|p| {
            let since = view
                .since
                .iter()
                .find(|(who, _)| who == &p.id)
                .map(|(_, at)| rfc3339(*at));
            json!({
                "id": p.id.as_str(),
                "role": role_name(p.role),
                "state": presence(p.state),
                "joined_at": since,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id.as_str(),
        "session": view.session.as_str(),
        "started_at": view.started_at.map(rfc3339),
        "locked": view.overview.locked,
        "floor_mode": floor_mode(view.overview.floor_mode),
        "settings": effective(&state, &id),
        "participants": participants,
    }))
    .into_response())
}

/// The node hosting `room` when it is live on another node of the cluster (and this request
/// may be forwarded there).
async fn hosted_elsewhere(
    state: &ApiState,
    room: &str,
    forwarded: Forwarded,
) -> Result<Option<crate::cluster::nodes::NodeInfo>, ApiError> {
    if state.registry.existing_room(&RoomId::from(room)).is_some() || !valid_room_id(room) {
        return Ok(None);
    }
    cluster::elsewhere(state, room, forwarded).await
}

/// `POST /rooms/{room}/tokens`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    sub: String,
    name: String,
    role: Role,
    ttl_seconds: Option<u64>,
}

/// Tokens last an hour unless asked otherwise, and never longer than the server accepts.
const DEFAULT_TTL: u64 = 3600;

pub async fn token(
    State(state): State<ApiState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Body(body): Body<TokenBody>,
) -> Result<Response, ApiError> {
    let id = room_id(&room)?;
    let context = state.registry.context();
    let max = context.keys().max_lifetime_secs();
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL.min(max));
    if !(60..=max).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "ttl_seconds must be 60–{max}"
        )));
    }
    let now = unix_now();
    let claims = Claims {
        sub: body.sub,
        room: id.as_str().to_owned(),
        role: body.role,
        name: body.name,
        exp: now + ttl,
        nbf: None,
        iat: Some(now),
    };
    // The document promises at most 64 characters as sent, before any trimming.
    if claims.name.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "the join token has a bad `name` claim",
        ));
    }
    validate_claims(&claims).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = context.keys().mint(&claims);
    let base = match &context.settings().operations.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::bad_request("no Host header to build the link from"))?;
            format!("http://{host}")
        }
    };
    if let Some(store) = &state.store {
        store
            .apply(&[Write::Audit {
                id: crate::webhooks::new_id(),
                at: now * 1000,
                room: id.as_str().to_owned(),
                session: None,
                actor: "api".to_owned(),
                action: "token_issued",
                target: Some(claims.sub.clone()),
            }])
            .await?;
    }
    let body = json!({
        "token": token,
        "link": format!("{base}/#token={token}"),
        "expires_at": rfc3339(claims.exp * 1000),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn end(
    State(state): State<ApiState>,
    Extension(forwarded): Extension<Forwarded>,
    uri: Uri,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(node) = hosted_elsewhere(&state, &room, forwarded).await? {
        return cluster::forward(&state, &node, Method::POST, uri.path(), None).await;
    }
    let (id, handle) = live(&state, &room)?;
    handle
        .end()
        .await
        .map_err(|_| ApiError::not_found("no live room with that id"))?;
    Ok(Json(json!({ "room": id.as_str(), "ended": true })).into_response())
}

pub async fn remove(
    State(state): State<ApiState>,
    Extension(forwarded): Extension<Forwarded>,
    uri: Uri,
    Path((room, participant)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if let Some(node) = hosted_elsewhere(&state, &room, forwarded).await? {
        return cluster::forward(&state, &node, Method::DELETE, uri.path(), None).await;
    }
    let (id, handle) = live(&state, &room)?;
    match handle
        .remove(ParticipantId::from(participant.as_str()))
        .await
    {
        Ok(()) => Ok(Json(json!({
            "room": id.as_str(),
            "participant": participant,
            "removed": true,
        }))
        .into_response()),
        Err(Sent::Closed) => Err(ApiError::not_found("no live room with that id")),
        Err(Sent::Refused(crate::room::RoomError::NotFound(_))) => {
            Err(ApiError::not_found("no such participant in this room"))
        }
        Err(Sent::Refused(e)) => Err(ApiError::conflict(e.to_string())),
    }
}
