//! The `circle` command: serve (the default), or mint a join token for local use.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use circle_protocol::{IceServer, Role};
use circle_server::token::{unix_now, validate_claims, Claims, TokenKeys, MIN_SECRET_BYTES};
use circle_server::Settings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "circle",
    version,
    about = "Circle: live online group therapy, with a talking stick.",
    long_about = "Circle serves group sessions: a signalling server over WebSocket, the room's \
                  rules, and the web client, on one port.\n\nRun with no arguments to try it: it \
                  listens on 127.0.0.1:8080 with a random token secret and prints a facilitator \
                  link and a member link for a demo room.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Print a join token and a join link.
    Token(TokenArgs),
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address and port to listen on, for HTTP and WebSocket.
    #[arg(long, env = "CIRCLE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Secret for HS256 join tokens. Without one, a random secret is made and demo links printed.
    #[arg(long, env = "CIRCLE_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Whether members and observers wait to be admitted by a facilitator.
    #[arg(long, env = "CIRCLE_WAITING_ROOM", default_value = "on")]
    waiting_room: OnOff,
    /// Window over which anonymous reactions are counted before they are broadcast.
    #[arg(long, env = "CIRCLE_REACTION_WINDOW", default_value = "2s", value_parser = parse_duration)]
    reaction_window: Duration,
    /// Reactions one participant may send per second.
    #[arg(long, env = "CIRCLE_REACTION_RATE", default_value_t = 5)]
    reaction_rate: usize,
    /// Fewest answers for which a check-in's counts are published.
    #[arg(long, env = "CIRCLE_ANONYMITY_THRESHOLD", default_value_t = 3)]
    anonymity_threshold: u32,
    /// How long a dropped participant keeps their place (and the stick) while reconnecting.
    #[arg(long, env = "CIRCLE_RESUME_GRACE", default_value = "20s", value_parser = parse_duration)]
    resume_grace: Duration,
    /// Participants per room, counting those present and waiting.
    #[arg(long, env = "CIRCLE_MAX_PARTICIPANTS", default_value_t = 16)]
    max_participants: usize,
    /// Rooms this server runs at once.
    #[arg(long, env = "CIRCLE_MAX_ROOMS", default_value_t = 1000)]
    max_rooms: usize,
    /// Time a new connection has to send its first message.
    #[arg(long, env = "CIRCLE_HELLO_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    hello_timeout: Duration,
    /// Interval of WebSocket pings; two silent intervals drop the connection.
    #[arg(long, env = "CIRCLE_PING_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    ping_interval: Duration,
    /// Messages queued for one connection before it counts as too slow and is dropped.
    #[arg(long, env = "CIRCLE_OUTBOUND_QUEUE", default_value_t = 256)]
    outbound_queue: usize,
    /// Sustained messages per second one connection may send.
    #[arg(long, env = "CIRCLE_MESSAGE_RATE", default_value_t = 20)]
    message_rate: u32,
    /// Messages one connection may send in a burst.
    #[arg(long, env = "CIRCLE_MESSAGE_BURST", default_value_t = 60)]
    message_burst: u32,
    /// Open connections one IP address may hold (0: no cap; use 0 behind a reverse proxy).
    #[arg(long, env = "CIRCLE_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Longest lifetime a join token may claim (exp − iat); longer ones are refused. Removals
    /// are remembered this long, so no link valid at a removal outlives it.
    #[arg(long, env = "CIRCLE_MAX_TOKEN_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    max_token_lifetime: Duration,
    /// How long someone a facilitator denied waits before they may ask to join again.
    #[arg(long, env = "CIRCLE_KNOCK_COOLDOWN", default_value = "60s", value_parser = parse_duration)]
    knock_cooldown: Duration,
    /// Time a connection has to send a whole HTTP request head; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "CIRCLE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Another origin whose pages may connect here, e.g. https://clinic.example
    /// (repeatable). The server's own pages, and --public-url, always may.
    #[arg(
        long = "allow-origin",
        env = "CIRCLE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Local address the media server (SFU) binds its UDP sockets to: a concrete address.
    #[arg(long, env = "CIRCLE_MEDIA_IP", default_value = "127.0.0.1")]
    media_ip: std::net::IpAddr,
    /// Public address announced to browsers instead of --media-ip (a host behind 1:1 NAT).
    #[arg(long, env = "CIRCLE_ANNOUNCE_IP")]
    announce_ip: Option<std::net::IpAddr>,
    /// UDP port range for media, e.g. 40000-40199 (two ports per participant); any free port
    /// when not given.
    #[arg(long, env = "CIRCLE_UDP_PORTS", value_parser = parse_port_range)]
    udp_ports: Option<(u16, u16)>,
    /// Requested UDP socket buffer size in bytes (the kernel caps it at net.core.rmem_max).
    #[arg(long, env = "CIRCLE_UDP_BUFFER", default_value_t = 4 * 1024 * 1024)]
    udp_buffer: usize,
    /// STUN server handed to clients, as a URL (repeatable), e.g. stun:stun.example.org. TURN
    /// servers go in --turn-url, with their credentials.
    #[arg(long = "ice-server", env = "CIRCLE_ICE_SERVERS", value_delimiter = ',')]
    ice_servers: Vec<String>,
    /// TURN server URL handed to clients (repeatable), e.g.
    /// turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349?transport=tcp.
    #[arg(long = "turn-url", env = "CIRCLE_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// Shared secret of a TURN server using coturn's use-auth-secret (REST credentials): every
    /// client gets its own short-lived credentials.
    #[arg(long, env = "CIRCLE_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// Lifetime of the TURN credentials handed out; long enough for a whole session (a relay
    /// in use cannot be refreshed after they expire; a resume hands new ones).
    #[arg(long, env = "CIRCLE_TURN_TTL", default_value = "6h", value_parser = parse_duration)]
    turn_ttl: Duration,
    /// A static TURN username, for TURN services without the REST scheme (with --turn-credential).
    #[arg(long, env = "CIRCLE_TURN_USERNAME", hide_env_values = true)]
    turn_username: Option<String>,
    /// The static TURN password that goes with --turn-username.
    #[arg(long, env = "CIRCLE_TURN_CREDENTIAL", hide_env_values = true)]
    turn_credential: Option<String>,
    /// How long a shutdown waits for connections to close before exiting.
    #[arg(long, env = "CIRCLE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Base URL printed in demo links and in the join links the admin API hands out (defaults
    /// to http://LISTEN, or the host an API request came to).
    #[arg(long, env = "CIRCLE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Key for the admin API (/api/v1/*) and /metrics, 32 characters or more; several may be
    /// given comma-separated, to rotate. Without one the API answers 404.
    #[arg(
        long,
        env = "CIRCLE_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_key: Vec<String>,
    /// Where attendance and audit records live: sqlite://PATH (created on first start) or
    /// postgres://USER@HOST/DB.
    #[arg(long, env = "CIRCLE_DATABASE", default_value = "sqlite://circle.db")]
    database: String,
    /// Whether attendance and audit records are kept (off: nothing is written anywhere).
    #[arg(long, env = "CIRCLE_RECORDS", default_value = "on")]
    records: OnOff,
    /// Records older than this are deleted (checked at start and hourly), e.g. 2190d; kept
    /// forever when not given.
    #[arg(long, env = "CIRCLE_RECORDS_RETENTION", value_parser = parse_duration)]
    records_retention: Option<Duration>,
    /// URL the clinic's system receives events at (repeatable).
    #[arg(
        long = "webhook-url",
        env = "CIRCLE_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    webhook_urls: Vec<String>,
    /// A second address serving /metrics without a key, for a scraper on an internal network
    /// (e.g. 10.0.0.5:9100); on the main port /metrics needs the API key.
    #[arg(long, env = "CIRCLE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Key of the webhooks' HMAC signature (circle-signature header); required with a webhook URL.
    #[arg(long, env = "CIRCLE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// Room id: 1–64 characters of A–Z, a–z, 0–9, _ and -.
    #[arg(long)]
    room: String,
    /// facilitator, member or observer.
    #[arg(long)]
    role: RoleArg,
    /// Name the room will see.
    #[arg(long)]
    name: String,
    /// Participant id; random when not given. The same person reconnecting keeps the same one.
    #[arg(long)]
    sub: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    ttl: Duration,
    /// The secret the server checks tokens with.
    #[arg(long, env = "CIRCLE_TOKEN_SECRET", hide_env_values = true)]
    token_secret: String,
    /// Base URL of the server for the join link.
    #[arg(
        long,
        env = "CIRCLE_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    base_url: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Facilitator,
    Member,
    Observer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Facilitator => Role::Facilitator,
            RoleArg::Member => Role::Member,
            RoleArg::Observer => Role::Observer,
        }
    }
}

/// Parses `40000-40199`.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not a port range like 40000-40199"))?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("bad port `{lo}`"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("bad port `{hi}`"))?;
    if lo == 0 || lo > hi {
        return Err(format!("`{s}` is not a port range like 40000-40199"));
    }
    Ok((lo, hi))
}

/// Parses `500ms`, `20s`, `5m`, `2h`, `1d`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 20s, 5m or 2h"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("`{s}` is not a duration like 20s, 5m or 2h")),
    };
    Ok(Duration::from_millis(ms))
}

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

/// Refuses a token secret too short to resist an offline search from one join link.
fn check_secret(secret: &str) -> Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "the token secret is {} bytes; it must be at least {MIN_SECRET_BYTES} \
             (for example: openssl rand -base64 32)",
            secret.len()
        );
    }
    Ok(())
}

/// The origin (scheme://host[:port]) of a URL such as --public-url, which may carry a path.
fn origin_of(url: &str) -> String {
    let url = url.trim();
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i + 3], &rest[..end])
        }
        None => url.trim_end_matches('/').to_owned(),
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

    settings.operations = operations(&args)?;

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = args
        .public_url
        .clone()
        .unwrap_or_else(|| circle_server::http::base_url(addr));
    say!("circle listening on http://{addr}");
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
    if demo {
        print_demo_links(&secret, base.trim_end_matches('/'));
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    circle_server::run(listener, settings, shutdown, args.drain_timeout).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The TURN server from the flags: REST credentials with a secret, or a static pair.
fn turn(args: &ServeArgs) -> Result<Option<circle_server::config::TurnConfig>> {
    use circle_server::config::{TurnConfig, TurnCredentials};
    let urls: Vec<String> = args
        .turn_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    for url in &urls {
        if !(url.starts_with("turn:") || url.starts_with("turns:")) {
            bail!("--turn-url must be a turn: or turns: URL (STUN servers go in --ice-server)");
        }
    }
    for url in &args.ice_servers {
        if url.starts_with("turn:") || url.starts_with("turns:") {
            bail!("a TURN server needs credentials: give it with --turn-url and --turn-secret (or --turn-username and --turn-credential), not --ice-server");
        }
    }
    let secret = args.turn_secret.as_deref().filter(|s| !s.is_empty());
    let static_pair = (
        args.turn_username.as_deref(),
        args.turn_credential.as_deref(),
    );
    let credentials = match (secret, static_pair) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            bail!("give --turn-secret or --turn-username/--turn-credential, not both")
        }
        (Some(secret), _) => {
            if args.turn_ttl.is_zero() || args.turn_ttl > Duration::from_secs(7 * 86_400) {
                bail!("--turn-ttl must be more than zero and at most 7d");
            }
            TurnCredentials::Rest {
                secret: secret.as_bytes().to_vec(),
                ttl: args.turn_ttl,
            }
        }
        (None, (Some(username), Some(credential))) => TurnCredentials::Static {
            username: username.to_owned(),
            credential: credential.to_owned(),
        },
        (None, (None, None)) => {
            if !urls.is_empty() {
                bail!("--turn-url needs --turn-secret (or --turn-username and --turn-credential): browsers cannot use a TURN server without credentials");
            }
            return Ok(None);
        }
        (None, _) => bail!("--turn-username and --turn-credential go together"),
    };
    if urls.is_empty() {
        bail!("TURN credentials were given without --turn-url");
    }
    Ok(Some(TurnConfig { urls, credentials }))
}

/// The admin API, records and webhooks from the flags; refuses what would run unsafely.
fn operations(args: &ServeArgs) -> Result<circle_server::config::Operations> {
    let api_keys: Vec<String> = args
        .api_key
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if let Some(short) = api_keys.iter().find(|k| k.chars().count() < 32) {
        bail!(
            "--api-key must be at least 32 characters (one given has {}); make one with: \
             head -c 32 /dev/urandom | base64",
            short.chars().count()
        );
    }
    let webhook_urls: Vec<String> = args
        .webhook_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    for url in &webhook_urls {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--webhook-url must be an http:// or https:// URL");
        }
    }
    let webhook_secret = args.webhook_secret.clone().unwrap_or_default();
    if !webhook_urls.is_empty() && webhook_secret.is_empty() {
        bail!("--webhook-url needs --webhook-secret, the key receivers check signatures with");
    }
    let records = matches!(args.records, OnOff::On);
    Ok(circle_server::config::Operations {
        api_keys,
        database: records.then(|| args.database.clone()),
        records_retention: args.records_retention,
        webhook_urls,
        webhook_secret: webhook_secret.into_bytes(),
        public_url: args.public_url.clone(),
        metrics_listen: args.metrics_listen,
        ..Default::default()
    })
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
