//! The HTTP side of the one listening port: `/ws` upgrades to a client connection, `/healthz` answers,
//! `/api/v1/*` goes to the admin API's router, and everything else is the web client, embedded in
//! the binary at build time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use include_dir::{include_dir, Dir};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use crate::context::ConnectionSlot;
use crate::registry::Registry;

static WEB_CLIENT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../web-client");

/// The page may talk only to this server, and the browser may use camera and microphone here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// What every response's body is: the admin API's router answers with axum's.
type Body = axum::body::Body;

/// Accepts connections until `shutdown`, each served on its own task.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
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
        let context = registry.context();
        let Some(slot) = context.open_connection(peer.ip()) else {
            tracing::info!("refusing a connection over the per-address cap");
            context.tracker().spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tracker = context.tracker().clone();
        tracker.spawn(connection(
            stream,
            registry.clone(),
            api.clone(),
            shutdown.clone(),
            Arc::new(slot),
        ));
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
/// any WebSocket connection it upgraded to are over (hyper lets go of an upgraded connection).
async fn connection(
    stream: TcpStream,
    registry: Arc<Registry>,
    api: axum::Router,
    shutdown: CancellationToken,
    slot: Arc<ConnectionSlot>,
) {
    let header_read_timeout = registry.context().settings().header_read_timeout;
    match registry.context().settings().tls.clone() {
        None => serve_http(stream, registry, api, shutdown, slot).await,
        Some(tls) => {
            // The handshake gets the same time as a request head: a silent client holds
            // nothing longer over TLS than without it.
            let accepted =
                tokio::time::timeout(header_read_timeout, tls.acceptor().accept(stream)).await;
            match accepted {
                Ok(Ok(stream)) => serve_http(stream, registry, api, shutdown, slot).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/1.1 (with upgrades to WebSocket) over a plain or TLS stream.
async fn serve_http<S>(
    stream: S,
    registry: Arc<Registry>,
    api: axum::Router,
    shutdown: CancellationToken,
    slot: Arc<ConnectionSlot>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = registry.context().settings().header_read_timeout;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let registry = registry.clone();
        let slot = slot.clone();
        let api = api.clone();
        async move {
            let path = req.uri().path();
            if path.starts_with("/api/") || path == "/metrics" {
                use tower::ServiceExt;
                return api.oneshot(req.map(Body::new)).await;
            }
            Ok::<_, Infallible>(route(req, registry, slot).map(Body::new))
        }
    });
    // Without a timer hyper has no header-read timeout at all, and a silent or dribbling client
    // holds its socket (and a place under the per-address cap) forever. The timeout runs from
    // the moment hyper waits for a request head: on a new connection, and again on a kept-alive
    // one between requests, so it is the idle timeout too.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
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

/// Why a request to `/ws` is not a WebSocket handshake this server accepts (RFC 6455 §4.2.1).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum UpgradeError {
    #[error("expected a WebSocket handshake")]
    NotAnUpgrade,
    #[error("unsupported WebSocket version; this server speaks 13")]
    Version,
    #[error("malformed WebSocket handshake")]
    Malformed,
    #[error("this page's origin may not connect here")]
    Origin,
}

impl UpgradeError {
    fn status(&self) -> StatusCode {
        match self {
            UpgradeError::NotAnUpgrade | UpgradeError::Version => StatusCode::UPGRADE_REQUIRED,
            UpgradeError::Malformed => StatusCode::BAD_REQUEST,
            UpgradeError::Origin => StatusCode::FORBIDDEN,
        }
    }
}

/// Checks a `/ws` request's handshake headers and origin; the `Sec-WebSocket-Key` on success.
fn check_upgrade(
    headers: &hyper::HeaderMap,
    allowed_origins: &[String],
) -> Result<HeaderValue, UpgradeError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err(UpgradeError::NotAnUpgrade);
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(UpgradeError::Malformed);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err(UpgradeError::Version);
    }
    // The key must be 16 random bytes in base64: 24 characters ending in "==".
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| valid_websocket_key(k.as_bytes()))
        .ok_or(UpgradeError::Malformed)?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().map_err(|_| UpgradeError::Origin)?;
        if !origin_allowed(origin, host, allowed_origins) {
            return Err(UpgradeError::Origin);
        }
    }
    Ok(key.clone())
}

fn valid_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Whether a page from `origin` may open a WebSocket here. A browser sends `Origin` with every
/// WebSocket handshake, and a page on another site would otherwise use the visitor's network
/// position to reach this server (cross-site WebSocket hijacking). The server's own pages are
/// same-origin: their origin names the `Host` they were loaded from. Others must be listed
/// (the `--public-url` and `--allow-origin` settings). Without `Origin` the client is not a
/// browser, and carries nothing of anyone else's.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

fn upgrade(
    mut req: Request<Incoming>,
    registry: Arc<Registry>,
    slot: Arc<ConnectionSlot>,
) -> Response<Full<Bytes>> {
    let key = match check_upgrade(
        req.headers(),
        &registry.context().settings().allowed_origins,
    ) {
        Ok(key) => key,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket handshake refused");
            let mut response = plain(e.status(), "");
            *response.body_mut() = Full::new(Bytes::from(format!("{e}\n")));
            if e == UpgradeError::Version {
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            return response;
        }
    };
    // Another node of the cluster relaying a client: it proves it with the relay key.
    let relayed = match req.headers().get(crate::cluster::member::RELAY_HEADER) {
        None => false,
        Some(presented) => {
            let secret = &registry.context().settings().token_secret;
            if !crate::cluster::member::is_relay_key(secret, presented.as_bytes()) {
                tracing::debug!("WebSocket handshake with a wrong relay key refused");
                return plain(StatusCode::FORBIDDEN, "not a node of this cluster\n");
            }
            slot.exempt();
            true
        }
    };
    let accept = derive_accept_key(key.as_bytes());
    let tracker = registry.context().tracker().clone();
    tracker.spawn(async move {
        match hyper::upgrade::on(&mut req).await {
            Ok(upgraded) => {
                crate::connection::run(TokioIo::new(upgraded), registry, relayed).await;
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
/// client connections joined or joining, server-side peer connections, and tokio tasks alive. Nothing
/// here names a room, a person or an address.
fn stats(registry: &Registry) -> Response<Full<Bytes>> {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let body = format!(
        "{{\"rooms\":{},\"connections\":{},\"peers\":{},\"tasks\":{}}}\n",
        registry.room_count(),
        registry.context().connection_count(),
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
pub fn base_url(addr: SocketAddr, tls: bool) -> String {
    if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(extra: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in [
            ("host", "circle.example:8443"),
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            h.insert(
                header::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        for (k, v) in extra {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_well_formed_handshake_from_the_servers_own_page_or_a_tool_is_accepted() {
        assert!(check_upgrade(&handshake(&[]), &[]).is_ok());
        let own = handshake(&[("origin", "https://circle.example:8443")]);
        assert!(check_upgrade(&own, &[]).is_ok());
    }

    #[test]
    fn a_page_from_another_origin_is_refused_unless_listed() {
        let other = handshake(&[("origin", "https://evil.example")]);
        assert_eq!(check_upgrade(&other, &[]), Err(UpgradeError::Origin));
        let listed = vec!["https://evil.example".to_owned()];
        assert!(check_upgrade(&other, &listed).is_ok());
        let null = handshake(&[("origin", "null")]);
        assert_eq!(check_upgrade(&null, &[]), Err(UpgradeError::Origin));
    }

    #[test]
    fn malformed_handshakes_are_bad_requests() {
        for (name, value) in [
            ("sec-websocket-key", "short"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ!!"),
            ("connection", "keep-alive"),
        ] {
            let h = handshake(&[(name, value)]);
            let refused = check_upgrade(&h, &[]).unwrap_err();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{name}: {value}");
        }
        let mut no_key = handshake(&[]);
        no_key.remove(header::SEC_WEBSOCKET_KEY);
        assert_eq!(check_upgrade(&no_key, &[]), Err(UpgradeError::Malformed));
        let old = handshake(&[("sec-websocket-version", "8")]);
        assert_eq!(check_upgrade(&old, &[]), Err(UpgradeError::Version));
    }
}
