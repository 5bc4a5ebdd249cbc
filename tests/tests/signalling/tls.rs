//! HTTPS and WSS on the main port from PEM files: a WebSocket over TLS joins a room, SIGHUP
//! swaps the certificate for new connections while the live one carries on, and a broken pair
//! on reload keeps the old certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use circle_tests::process::{circle_bin, ServerProcess};
use circle_tests::token::Minter;
use circle_tests::{Role, SECRET};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// Writes a new self-signed pair for "localhost" over `dir`'s files; returns the certificate.
fn write_pair(dir: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("circle.crt"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("circle.key"), made.signing_key.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// A TLS connection trusting `roots`, and the certificate the server presented.
async fn tls_connect(
    addr: std::net::SocketAddr,
    roots: &[CertificateDer<'static>],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake succeeds");
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    (tls, presented)
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn a_certificate_reloaded_on_sighup_serves_new_connections_while_live_ones_carry_on() {
    let dir: PathBuf = std::env::temp_dir().join(format!("circle-tls-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = write_pair(&dir);
    let (cert, key) = (dir.join("circle.crt"), dir.join("circle.key"));
    let log = dir.join("circle.log");
    let server = ServerProcess::start(
        &circle_bin(),
        "127.0.0.1:0",
        SECRET,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--waiting-room",
            "off",
            "--records",
            "off",
        ],
        &[],
        &log,
    )
    .expect("circle starts with the certificate");

    // A member joins over WSS.
    let (tls, presented) = tls_connect(server.addr, std::slice::from_ref(&first)).await;
    assert_eq!(presented, first);
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .expect("the WebSocket handshake over TLS succeeds");
    let token = Minter::new(SECRET).token("secure", "m-1", Role::Member);
    ws.send(Message::text(
        json!({"type":"hello","protocol":1,"token": token}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");

    // The certificate is renewed on disk and the server told.
    let second = write_pair(&dir);
    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    hup(server.pid());
    let both = [first.clone(), second.clone()];
    let mut renewed = false;
    for _ in 0..100 {
        if tls_connect(server.addr, &both).await.1 == second {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renewed, "new connections still get the old certificate");

    // The live session was not dropped.
    ws.send(Message::text(json!({"type":"ping","id":7}).to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong");

    // A broken pair on the next reload keeps the certificate in use.
    std::fs::write(&key, "not a key").unwrap();
    hup(server.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tls_connect(server.addr, &both).await.1, second);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("not reloaded"), "{logged}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
