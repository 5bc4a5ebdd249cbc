//! The HTTP side of the one listening port: `/ws` upgrades to a session, `/healthz` answers,
//! and everything else is the web client, embedded in the binary at build time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use include_dir::{include_dir, Dir};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::registry::{ConnectionSlot, Registry};

static WEB_CLIENT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../web-client");

/// The page may talk only to this server, and the browser may use camera and microphone here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Accepts connections until `shutdown`, each served on its own task.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = registry.open_connection(peer.ip()) else {
            tracing::info!("refusing a connection over the per-address cap");
            registry.tracker().spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        let shutdown = shutdown.clone();
        registry
            .tracker()
            .clone()
            .spawn(connection(stream, registry, shutdown, Arc::new(slot)));
    }
}

/// Answers a connection over the cap with 429 and closes it, without reading the request.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let response =
        b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(response),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// Serves one TCP connection. `slot` counts it against its address's cap until both this and
/// any WebSocket session it upgraded to are over (hyper lets go of an upgraded connection).
async fn connection(
    stream: TcpStream,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    slot: Arc<ConnectionSlot>,
) {
    let service = hyper::service::service_fn(move |req| {
        let registry = registry.clone();
        let slot = slot.clone();
        async move { Ok::<_, Infallible>(route(req, registry, slot)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn route(
    req: Request<Incoming>,
    registry: Arc<Registry>,
    slot: Arc<ConnectionSlot>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ws") => upgrade(req, registry, slot),
        (&Method::GET, "/healthz") => plain(StatusCode::OK, "ok\n"),
        (&Method::GET, "/stats") => stats(&registry),
        (&Method::GET | &Method::HEAD, path) => static_file(path),
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

/// The WebSocket settings every session gets: protocol.md's 256 KiB cap on a message, and a
/// small read buffer. tungstenite zero-fills its whole read buffer before each read, so the
/// default 128 KiB was resident for every idle session; nearly every message fits in 4 KiB,
/// and a larger frame (an SDP is 3–6 KiB) grows the buffer to its own length.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(circle_protocol::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(circle_protocol::MAX_MESSAGE_BYTES))
}

fn upgrade(
    mut req: Request<Incoming>,
    registry: Arc<Registry>,
    slot: Arc<ConnectionSlot>,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket handshake\n");
    };
    if !is_upgrade || !version_ok {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket handshake\n",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let tracker = registry.tracker().clone();
    tracker.spawn(async move {
        match hyper::upgrade::on(&mut req).await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(websocket_config()),
                )
                .await;
                crate::session::run(ws, registry).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
        drop(slot);
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response
}

fn static_file(path: &str) -> Response<Full<Bytes>> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    // include_dir paths never contain "..", so a traversal attempt simply finds nothing.
    let Some(file) = WEB_CLIENT.get_file(relative) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut response = Response::new(Full::new(Bytes::from_static(file.contents())));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(relative)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    response
}

fn security_headers(h: &mut hyper::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"),
    );
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Counts only, for watching a running server for leaks (the soak tool reads it): rooms open,
/// sessions joined or joining, server-side peer connections, and tokio tasks alive. Nothing
/// here names a room, a person or an address.
fn stats(registry: &Registry) -> Response<Full<Bytes>> {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let body = format!(
        "{{\"rooms\":{},\"sessions\":{},\"peers\":{},\"tasks\":{}}}\n",
        registry.room_count(),
        registry.session_count(),
        crate::media::live_peers(),
        tasks
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The address a bound listener serves, for printing links.
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
