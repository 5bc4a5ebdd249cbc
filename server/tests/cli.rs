//! The `circle` binary as a newcomer and an operator meet it: started with no configuration it
//! prints links that really let people in; `circle token` mints tokens the server accepts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use circle_server::token::TokenKeys;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `circle` with these arguments, its log (stderr) going to `log` when given and returns it with every stdout line up to the blank
/// line that ends the banner (or just the first line when no links are printed).
fn start(args: &[&str], env: &[(&str, &str)]) -> (Server, Vec<String>) {
    start_logging(args, env, None)
}

fn start_logging(
    args: &[&str],
    env: &[(&str, &str)],
    log: Option<std::fs::File>,
) -> (Server, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_circle"));
    cmd.args(args)
        .env_remove("CIRCLE_TOKEN_SECRET")
        .env_remove("RUST_LOG")
        // Records on, in a file of this run's own rather than the working directory.
        .env(
            "CIRCLE_DATABASE",
            format!(
                "sqlite://{}/circle-cli-test-{}-{}.db",
                std::env::temp_dir().display(),
                std::process::id(),
                rand_suffix()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("circle starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let line = line.trim_end().to_owned();
        let banner_done = !lines.is_empty() && line.is_empty() && lines.len() > 2;
        lines.push(line);
        if banner_done || (env.iter().any(|(k, _)| *k == "CIRCLE_TOKEN_SECRET") && lines.len() == 1)
        {
            break;
        }
    }
    (server, lines)
}

fn addr_of(lines: &[String]) -> String {
    lines[0]
        .strip_prefix("circle listening on http://")
        .expect("the first line names the address")
        .to_owned()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_and_hello(addr: &str, token: &str) -> (Ws, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let hello = serde_json::json!({"type":"hello","protocol":1,"token": token});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reply = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    (ws, reply)
}

async fn hello(addr: &str, token: &str) -> serde_json::Value {
    connect_and_hello(addr, token).await.1
}

#[tokio::test]
async fn started_with_no_configuration_it_prints_demo_links_that_let_people_in() {
    let (_server, lines) = start(&["--listen", "127.0.0.1:0"], &[]);
    let addr = addr_of(&lines);
    let link = |role: &str| {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{role}:")))
            .unwrap_or_else(|| panic!("no {role} link in {lines:?}"));
        let url = line.split_whitespace().last().unwrap().to_owned();
        assert!(url.starts_with(&format!("http://{addr}/#token=")), "{url}");
        url.split("#token=").nth(1).unwrap().to_owned()
    };
    let facilitator = hello(&addr, &link("facilitator")).await;
    assert_eq!(facilitator["type"], "welcome");
    assert_eq!(facilitator["you"]["role"], "facilitator");
    assert_eq!(facilitator["room"]["id"], "demo");
    let member = hello(&addr, &link("member")).await;
    assert_eq!(
        member["type"], "waiting",
        "members wait for the facilitator by default"
    );
}

#[tokio::test]
async fn the_token_command_mints_what_the_server_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_circle"))
        .args([
            "token", "--room", "tuesday", "--role", "member", "--name", "River", "--sub", "m-7",
        ])
        .args(["--ttl", "30m", "--base-url", "https://circle.example.org/"])
        .env("CIRCLE_TOKEN_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap();
    assert_eq!(
        lines.next().unwrap(),
        format!("https://circle.example.org/#token={token}")
    );
    let identity = TokenKeys::new(b"s3cret-s3cret-s3cret-s3cret-s3cret")
        .verify(token)
        .unwrap();
    assert_eq!(identity.participant.as_str(), "m-7");
    assert_eq!(identity.room.as_str(), "tuesday");

    let (_server, lines) = start(
        &["serve", "--listen", "127.0.0.1:0", "--waiting-room", "off"],
        &[("CIRCLE_TOKEN_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")],
    );
    assert_eq!(
        lines.len(),
        1,
        "no demo links with a configured secret: {lines:?}"
    );
    let welcome = hello(&addr_of(&lines), token).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["you"]["name"], "River");
}

#[test]
fn the_token_command_refuses_claims_the_server_would_refuse() {
    let out = Command::new(env!("CARGO_BIN_EXE_circle"))
        .args([
            "token",
            "--room",
            "no spaces",
            "--role",
            "member",
            "--name",
            "A",
        ])
        .env("CIRCLE_TOKEN_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_token_secret_shorter_than_32_bytes_stops_start_up_with_a_clear_message() {
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["token", "--room", "r", "--role", "member", "--name", "A"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_circle"))
            .args(&args)
            .env("CIRCLE_TOKEN_SECRET", "x")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} ran with a one-byte secret");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("at least 32"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_retired_webrtc_engine_stops_start_up_with_what_to_do_instead() {
    for (args, env) in [
        (vec!["serve", "--media-engine", "webrtc"], vec![]),
        (vec!["serve"], vec![("CIRCLE_MEDIA_ENGINE", "webrtc")]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_circle"))
            .args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started the retired engine");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("retired"), "{args:?}: {stderr}");
        assert!(stderr.contains("--udp-port"), "{args:?}: {stderr}");
    }
}

#[test]
fn unsafe_operations_settings_stop_start_up_with_a_message_naming_the_problem() {
    let secret = "0123456789abcdef0123456789abcdef";
    for (extra, expected) in [
        (
            vec!["--api-key", "too-short"],
            "--api-key must be at least 32 characters",
        ),
        (
            vec!["--api-key", &format!("{secret},short")],
            "--api-key must be at least 32 characters",
        ),
        (
            vec!["--webhook-url", "http://127.0.0.1:9/hook"],
            "--webhook-url needs --webhook-secret",
        ),
        (
            vec!["--webhook-url", "ftp://x", "--webhook-secret", "s"],
            "--webhook-url must be an http:// or https:// URL",
        ),
        (vec!["--database", "mysql://x"], "sqlite:// or postgres://"),
        (
            vec![
                "--tls-cert",
                "/nonexistent/circle.crt",
                "--tls-key",
                "/nonexistent/circle.key",
            ],
            "cannot read /nonexistent/circle.crt",
        ),
        (
            vec!["--turn-url", "turn:127.0.0.1:3478"],
            "--turn-url needs --turn-secret",
        ),
        (
            vec!["--ice-server", "turn:127.0.0.1:3478"],
            "a TURN server needs credentials",
        ),
        (
            vec!["--turn-url", "stun:127.0.0.1", "--turn-secret", "s"],
            "--turn-url must be a turn: or turns: URL",
        ),
        (
            vec!["--turn-url", "turn:h", "--turn-username", "u"],
            "--turn-username and --turn-credential go together",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_circle"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&extra)
            .env("CIRCLE_TOKEN_SECRET", secret)
            .env_remove("CIRCLE_API_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("too-short"),
            "the key was echoed: {stderr}"
        );
    }
}

#[test]
fn a_metrics_address_already_in_use_stops_start_up_and_says_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_circle"))
        .args(["serve", "--listen", "127.0.0.1:0", "--records", "off"])
        .args(["--metrics-listen", &addr])
        .env("CIRCLE_TOKEN_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for metrics on {addr}")),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_circle"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "CIRCLE_LISTEN",
        "--token-secret",
        "CIRCLE_TOKEN_SECRET",
        "--waiting-room",
        "--reaction-window",
        "--anonymity-threshold",
        "--resume-grace",
        "--max-participants",
        "--hello-timeout",
        "--outbound-queue",
        "--message-rate",
        "--ice-server",
        "--drain-timeout",
        "--max-token-lifetime",
        "--knock-cooldown",
        "--header-timeout",
        "--allow-origin",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[tokio::test]
async fn logs_at_info_name_nobody_and_carry_no_token() {
    let path = std::env::temp_dir().join(format!("circle-log-{}.txt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let (server, lines) = start_logging(
        &["--listen", "127.0.0.1:0", "--waiting-room", "off"],
        &[
            ("CIRCLE_TOKEN_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret"),
            ("CIRCLE_TURN_URLS", "turn:127.0.0.1:3478?transport=udp"),
            ("CIRCLE_TURN_SECRET", "turn-shared-secret-9911"),
            ("CIRCLE_LOG", "info"),
        ],
        Some(file),
    );
    let addr = addr_of(&lines);
    let keys = TokenKeys::new(b"s3cret-s3cret-s3cret-s3cret-s3cret");
    let token = |sub: &str, name: &str, role| {
        keys.mint(&circle_server::token::Claims {
            sub: sub.into(),
            room: "private-room".into(),
            role,
            name: name.into(),
            exp: circle_server::token::unix_now() + 600,
            nbf: None,
            iat: None,
        })
    };
    let f_token = token(
        "sub-facilitator-4711",
        "Dr Quinn Facilitator",
        circle_protocol::Role::Facilitator,
    );
    let m_token = token(
        "sub-member-4712",
        "Zelda Privacy",
        circle_protocol::Role::Member,
    );
    let (mut f, _) = connect_and_hello(&addr, &f_token).await;
    let (mut m, welcome) = connect_and_hello(&addr, &m_token).await;
    let turn = &welcome["ice_servers"][0];
    let turn_username = turn["username"].as_str().unwrap().to_owned();
    let turn_credential = turn["credential"].as_str().unwrap().to_owned();
    for text in [
        r#"{"type":"raise_hand","note":"my secret note"}"#,
        r#"{"type":"react","kind":"heart"}"#,
        r#"{"type":"need_help","note":"I feel unsafe"}"#,
        "not json at all",
    ] {
        m.send(Message::text(text)).await.unwrap();
    }
    f.send(Message::text(r#"{"type":"grant_next"}"#))
        .await
        .unwrap();
    m.send(Message::text(r#"{"type":"leave"}"#)).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while m.next().await.is_some() {}
    })
    .await;
    drop(f);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        log.contains("connection joined"),
        "the log was not captured: {log}"
    );
    for secret in [
        "Zelda",
        "Quinn",
        "my secret note",
        "I feel unsafe",
        "sub-member-4712",
        "sub-facilitator-4711",
        &m_token,
        &f_token,
        "heart",
        "turn-shared-secret-9911",
        &turn_username,
        &turn_credential,
    ] {
        assert!(
            !log.contains(secret),
            "the log at info carries {secret:?}:\n{log}"
        );
    }
}

/// A different file name for every server a test starts.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
