//! The `circle` command: serve (the default), or mint a join token for local use.

use anyhow::{bail, Context, Result};
use circle_protocol::{IceServer, Role};
use circle_server::token::{unix_now, validate_claims, Claims, TokenKeys};
use circle_server::Settings;
use clap::Parser;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod flags;

use flags::{
    check_secret, operations, origin_of, tls, turn, Cli, Command, OnOff, ServeArgs, TokenArgs,
};

/// Prints a line for the operator. A server whose stdout was closed (a supervisor that read
/// the address and stopped listening) keeps serving: the line is lost, not the server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(args),
        Some(Command::Serve(args)) => serve(*args),
        None => serve(cli.serve),
    }
}

fn token(args: TokenArgs) -> Result<()> {
    check_secret(&args.token_secret)?;
    let sub = args.sub.unwrap_or_else(random_id);
    let now = unix_now();
    let claims = Claims {
        sub,
        room: args.room,
        role: args.role.into(),
        name: args.name,
        exp: now + args.ttl.as_secs(),
        nbf: None,
        iat: Some(now),
    };
    validate_claims(&claims).context("these claims would be refused at join")?;
    let token = TokenKeys::new(args.token_secret.as_bytes()).mint(&claims);
    println!("{token}");
    println!("{}/#token={token}", args.base_url.trim_end_matches('/'));
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    init_logging();
    if args.media_engine.is_some() {
        tracing::warn!("--media-engine is no longer needed: rtc is the only media engine");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve_async(args))
}

async fn serve_async(args: ServeArgs) -> Result<()> {
    if args.max_participants == 0 {
        bail!("--max-participants must be at least 1");
    }
    if args.header_timeout.is_zero() {
        bail!("--header-timeout must be longer than zero");
    }
    let (secret, demo) = match &args.token_secret {
        Some(s) if !s.is_empty() => {
            check_secret(s)?;
            (s.as_bytes().to_vec(), false)
        }
        _ => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            (bytes.to_vec(), true)
        }
    };
    let mut settings = Settings::with_secret(secret.clone());
    settings.room.waiting_room = matches!(args.waiting_room, OnOff::On);
    settings.room.reaction_window_ms = args.reaction_window.as_millis() as u64;
    settings.room.reactions_per_second = args.reaction_rate;
    settings.room.anonymity_threshold = args.anonymity_threshold;
    settings.room.resume_grace_ms = args.resume_grace.as_millis() as u64;
    settings.room.max_participants = args.max_participants;
    settings.max_rooms = args.max_rooms;
    settings.hello_timeout = args.hello_timeout;
    settings.ping_interval = args.ping_interval;
    settings.outbound_queue = args.outbound_queue.max(8);
    settings.message_rate = args.message_rate;
    settings.message_burst = args.message_burst;
    settings.max_connections_per_ip = args.max_connections_per_ip;
    settings.max_token_lifetime = args.max_token_lifetime;
    settings.room.knock_cooldown_ms = args.knock_cooldown.as_millis() as u64;
    settings.header_read_timeout = args.header_timeout;
    settings.allowed_origins = args
        .allowed_origins
        .iter()
        .chain(&args.public_url)
        .filter(|o| !o.is_empty())
        .map(|o| origin_of(o))
        .collect();
    settings.media.bind_ip = args.media_ip;
    settings.media.announce_ip = args.announce_ip;
    settings.media.udp_port = args.udp_port;
    settings.media.udp_ports = args.udp_ports;
    settings.media.socket_buffer_bytes = args.udp_buffer;
    settings.ice_servers = args
        .ice_servers
        .iter()
        .filter(|u| !u.is_empty())
        .map(|u| IceServer {
            urls: vec![u.clone()],
            username: None,
            credential: None,
        })
        .collect();
    settings.turn = turn(&args)?;
    settings.tls = tls(&args)?;

    settings.operations = operations(&args)?;
    settings.cluster = flags::cluster(&args, !demo, random_id)?;

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = args
        .public_url
        .clone()
        .unwrap_or_else(|| circle_server::http::base_url(addr, settings.tls.is_some()));
    // Listening for SIGHUP before saying we listen: a reload sent at once must not kill us.
    #[cfg(unix)]
    if let Some(tls) = &settings.tls {
        use tokio::signal::unix::{signal, SignalKind};
        let hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(reload_on_sighup(tls.clone(), hangups));
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    say!("circle listening on {scheme}://{addr}");
    if let Some(tls) = &settings.tls {
        say!("TLS certificate SHA-256 fingerprint: {}", tls.fingerprint());
        if args.tls_self_signed {
            if let Some(spki) = tls.spki_sha256() {
                say!("TLS public key SHA-256 (base64, for pinning): {spki}");
            }
        }
    }
    match &settings.operations.database {
        Some(url) => match circle_server::store::sqlite_path(url) {
            Some(path) => {
                let shown = std::path::absolute(&path).unwrap_or(path);
                say!("records: {}", shown.display());
            }
            None => say!("records: in the PostgreSQL database given by --database"),
        },
        None => say!("records: off"),
    }
    if let Some(cluster) = &settings.cluster {
        say!("cluster node {} (Redis at --redis-url)", cluster.node_id);
    }
    if demo {
        print_demo_links(&secret, base.trim_end_matches('/'));
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    circle_server::run(listener, settings, shutdown, args.drain_timeout).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP reads the certificate files again; live connections keep theirs, new ones get the new
/// one. A broken pair is logged and the old certificate stays.
#[cfg(unix)]
async fn reload_on_sighup(
    tls: std::sync::Arc<circle_server::tls::Tls>,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
            }
        }
    }
}

fn print_demo_links(secret: &[u8], base: &str) {
    let keys = TokenKeys::new(secret);
    let now = unix_now();
    let link = |role: Role, name: &str| {
        let claims = Claims {
            sub: random_id(),
            room: "demo".into(),
            role,
            name: name.into(),
            exp: now + 12 * 3600,
            nbf: None,
            iat: Some(now),
        };
        format!("{base}/#token={}", keys.mint(&claims))
    };
    say!("");
    say!("No token secret was configured, so this server made a random one.");
    say!("Try it: open these links in two browser windows (valid for 12 hours).");
    say!("  facilitator: {}", link(Role::Facilitator, "Facilitator"));
    say!("  member:      {}", link(Role::Member, "Member"));
    say!("");
}

fn random_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first signal drains; a second one exits at once.
async fn watch_signals(shutdown: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("shutting down: telling every connection; a second signal exits at once");
    shutdown.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The WebRTC library logs socket addresses in warnings; unless asked for by name, its crates log
/// errors only, so that no address reaches the logs at info or above.
const MEDIA_LIBRARY_QUIET: &str = "webrtc=error,rtc=error,rtc_ice=error,rtc_dtls=error,\
    rtc_srtp=error,rtc_sctp=error,rtc_rtp=error,rtc_rtcp=error,rtc_interceptor=error,\
    rtc_sdp=error,rtc_mdns=error,rtc_stun=error,rtc_turn=error,rtc_datachannel=error,\
    rtc_media=error,rtc_shared=error,rtc_crypto=error";

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let asked = std::env::var("CIRCLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let directives = if asked.contains("rtc") {
        asked
    } else {
        format!("{asked},{MEDIA_LIBRARY_QUIET}")
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
