//! The `circle` command's flags (each with its environment variable) and the settings they
//! make, with the checks that stop start-up on anything unsafe or unusable.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use circle_protocol::Role;
use circle_server::token::MIN_SECRET_BYTES;
use clap::{Args, Parser, Subcommand, ValueEnum};

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Print a join token and a join link.
    Token(TokenArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on, for HTTP and WebSocket.
    #[arg(long, env = "CIRCLE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Secret for HS256 join tokens. Without one, a random secret is made and demo links printed.
    #[arg(long, env = "CIRCLE_TOKEN_SECRET", hide_env_values = true)]
    pub(crate) token_secret: Option<String>,
    /// Whether members and observers wait to be admitted by a facilitator.
    #[arg(long, env = "CIRCLE_WAITING_ROOM", default_value = "on")]
    pub(crate) waiting_room: OnOff,
    /// Window over which anonymous reactions are counted before they are broadcast.
    #[arg(long, env = "CIRCLE_REACTION_WINDOW", default_value = "2s", value_parser = parse_duration)]
    pub(crate) reaction_window: Duration,
    /// Reactions one participant may send per second.
    #[arg(long, env = "CIRCLE_REACTION_RATE", default_value_t = 5)]
    pub(crate) reaction_rate: usize,
    /// Fewest answers for which a check-in's counts are published.
    #[arg(long, env = "CIRCLE_ANONYMITY_THRESHOLD", default_value_t = 3)]
    pub(crate) anonymity_threshold: u32,
    /// How long a dropped participant keeps their place (and the stick) while reconnecting.
    #[arg(long, env = "CIRCLE_RESUME_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub(crate) resume_grace: Duration,
    /// Participants per room, counting those present and waiting.
    #[arg(long, env = "CIRCLE_MAX_PARTICIPANTS", default_value_t = 16)]
    pub(crate) max_participants: usize,
    /// Rooms this server runs at once.
    #[arg(long, env = "CIRCLE_MAX_ROOMS", default_value_t = 1000)]
    pub(crate) max_rooms: usize,
    /// Time a new connection has to send its first message.
    #[arg(long, env = "CIRCLE_HELLO_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) hello_timeout: Duration,
    /// Interval of WebSocket pings; two silent intervals drop the connection.
    #[arg(long, env = "CIRCLE_PING_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub(crate) ping_interval: Duration,
    /// Messages queued for one connection before it counts as too slow and is dropped.
    #[arg(long, env = "CIRCLE_OUTBOUND_QUEUE", default_value_t = 256)]
    pub(crate) outbound_queue: usize,
    /// Sustained messages per second one connection may send.
    #[arg(long, env = "CIRCLE_MESSAGE_RATE", default_value_t = 20)]
    pub(crate) message_rate: u32,
    /// Messages one connection may send in a burst.
    #[arg(long, env = "CIRCLE_MESSAGE_BURST", default_value_t = 60)]
    pub(crate) message_burst: u32,
    /// Open connections one IP address may hold (0: no cap; use 0 behind a reverse proxy).
    #[arg(long, env = "CIRCLE_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub(crate) max_connections_per_ip: usize,
    /// Longest lifetime a join token may claim (exp − iat); longer ones are refused. Removals
    /// are remembered this long, so no link valid at a removal outlives it.
    #[arg(long, env = "CIRCLE_MAX_TOKEN_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    pub(crate) max_token_lifetime: Duration,
    /// How long someone a facilitator denied waits before they may ask to join again.
    #[arg(long, env = "CIRCLE_KNOCK_COOLDOWN", default_value = "60s", value_parser = parse_duration)]
    pub(crate) knock_cooldown: Duration,
    /// Time a connection has to send a whole HTTP request head; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "CIRCLE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) header_timeout: Duration,
    /// Another origin whose pages may connect here, e.g. https://clinic.example
    /// (repeatable). The server's own pages, and --public-url, always may.
    #[arg(
        long = "allow-origin",
        env = "CIRCLE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,
    /// Local address the media server (SFU) binds its UDP sockets to: a concrete address.
    #[arg(long, env = "CIRCLE_MEDIA_IP", default_value = "127.0.0.1")]
    pub(crate) media_ip: std::net::IpAddr,
    /// Public address announced to browsers instead of --media-ip (a host behind 1:1 NAT).
    #[arg(long, env = "CIRCLE_ANNOUNCE_IP")]
    pub(crate) announce_ip: Option<std::net::IpAddr>,
    /// Kept so that settings naming the one engine still start: `rtc` is the only media engine
    /// (the webrtc engine, a socket and a task per connection, was retired after issue 14).
    #[arg(long, env = "CIRCLE_MEDIA_ENGINE", value_parser = parse_media_engine, hide = true)]
    pub(crate) media_engine: Option<String>,
    /// The one UDP port all media uses (open it in the firewall).
    /// When not given, the first free port of --udp-ports, or any free port.
    #[arg(long, env = "CIRCLE_UDP_PORT")]
    pub(crate) udp_port: Option<u16>,
    /// UDP port range, e.g. 40000-40199, to take the media port from when --udp-port is not
    /// given: the first free one of them; any free port when neither is given.
    #[arg(long, env = "CIRCLE_UDP_PORTS", value_parser = parse_port_range)]
    pub(crate) udp_ports: Option<(u16, u16)>,
    /// Requested UDP socket buffer size in bytes (the kernel caps it at net.core.rmem_max).
    #[arg(long, env = "CIRCLE_UDP_BUFFER", default_value_t = 4 * 1024 * 1024)]
    pub(crate) udp_buffer: usize,
    /// STUN server handed to clients, as a URL (repeatable), e.g. stun:stun.example.org. TURN
    /// servers go in --turn-url, with their credentials.
    #[arg(long = "ice-server", env = "CIRCLE_ICE_SERVERS", value_delimiter = ',')]
    pub(crate) ice_servers: Vec<String>,
    /// PEM certificate (chain) for HTTPS and WSS on the main port; reloaded on SIGHUP.
    #[arg(long, env = "CIRCLE_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CIRCLE_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Serve HTTPS with a certificate made at start, for trying Circle on a LAN; prints its
    /// SHA-256 fingerprint to check in the browser's warning.
    #[arg(long, env = "CIRCLE_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub(crate) tls_self_signed: bool,
    /// TURN server URL handed to clients (repeatable), e.g.
    /// turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349?transport=tcp.
    #[arg(long = "turn-url", env = "CIRCLE_TURN_URLS", value_delimiter = ',')]
    pub(crate) turn_urls: Vec<String>,
    /// Shared secret of a TURN server using coturn's use-auth-secret (REST credentials): every
    /// client gets its own short-lived credentials.
    #[arg(long, env = "CIRCLE_TURN_SECRET", hide_env_values = true)]
    pub(crate) turn_secret: Option<String>,
    /// Lifetime of the TURN credentials handed out; long enough for a whole session (a relay
    /// in use cannot be refreshed after they expire; a resume hands new ones).
    #[arg(long, env = "CIRCLE_TURN_TTL", default_value = "6h", value_parser = parse_duration)]
    pub(crate) turn_ttl: Duration,
    /// A static TURN username, for TURN services without the REST scheme (with --turn-credential).
    #[arg(long, env = "CIRCLE_TURN_USERNAME", hide_env_values = true)]
    pub(crate) turn_username: Option<String>,
    /// The static TURN password that goes with --turn-username.
    #[arg(long, env = "CIRCLE_TURN_CREDENTIAL", hide_env_values = true)]
    pub(crate) turn_credential: Option<String>,
    /// How long a shutdown waits for connections to close before exiting.
    #[arg(long, env = "CIRCLE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub(crate) drain_timeout: Duration,
    /// Base URL printed in demo links and in the join links the admin API hands out (defaults
    /// to http://LISTEN, or the host an API request came to).
    #[arg(long, env = "CIRCLE_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Key for the admin API (/api/v1/*) and /metrics, 32 characters or more; several may be
    /// given comma-separated, to rotate. Without one the API answers 404.
    #[arg(
        long,
        env = "CIRCLE_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) api_key: Vec<String>,
    /// Where attendance and audit records live: sqlite://PATH (created on first start) or
    /// postgres://USER@HOST/DB.
    #[arg(long, env = "CIRCLE_DATABASE", default_value = "sqlite://circle.db")]
    pub(crate) database: String,
    /// Whether attendance and audit records are kept (off: nothing is written anywhere).
    #[arg(long, env = "CIRCLE_RECORDS", default_value = "on")]
    pub(crate) records: OnOff,
    /// Records older than this are deleted (checked at start and hourly), e.g. 2190d; kept
    /// forever when not given.
    #[arg(long, env = "CIRCLE_RECORDS_RETENTION", value_parser = parse_duration)]
    pub(crate) records_retention: Option<Duration>,
    /// URL the clinic's system receives events at (repeatable).
    #[arg(
        long = "webhook-url",
        env = "CIRCLE_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub(crate) webhook_urls: Vec<String>,
    /// A second address serving /metrics without a key, for a scraper on an internal network
    /// (e.g. 10.0.0.5:9100); on the main port /metrics needs the API key.
    #[arg(long, env = "CIRCLE_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Key of the webhooks' HMAC signature (circle-signature header); required with a webhook URL.
    #[arg(long, env = "CIRCLE_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) webhook_secret: Option<String>,
    /// Joins the cluster of nodes sharing this Redis (redis://host:6379); every node must have
    /// the same --token-secret and database.
    #[arg(long, env = "CIRCLE_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// This node's name in the cluster; random when not given.
    #[arg(long, env = "CIRCLE_NODE_ID")]
    pub(crate) node_id: Option<String>,
    /// Where the other nodes reach this node's port, e.g. http://10.0.0.5:8080 (default: the
    /// --listen address, which must then not be 0.0.0.0).
    #[arg(long, env = "CIRCLE_NODE_URL")]
    pub(crate) node_url: Option<String>,
}

/// The cluster settings, when `--redis-url` is given. `random_id` names a node given no id.
pub(crate) fn cluster(
    args: &ServeArgs,
    shared_secret: bool,
    random_id: impl FnOnce() -> String,
) -> Result<Option<circle_server::config::ClusterSettings>> {
    let Some(url) = args.redis_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        bail!("--redis-url must be a redis:// or rediss:// URL");
    }
    if !shared_secret {
        bail!("a cluster's nodes must share one --token-secret: give it to every node");
    }
    if args.tls_cert.is_some() || args.tls_self_signed {
        // The nodes relay to each other over plain HTTP on their own network.
        bail!("a cluster node serves plain HTTP to the other nodes: terminate TLS at the load balancer, not with --tls-cert or --tls-self-signed");
    }
    let id = match args.node_id.as_deref().map(str::trim) {
        Some("") | None => random_id(),
        Some(id)
            if id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') =>
        {
            id.to_owned()
        }
        Some(_) => bail!("--node-id takes 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
    };
    let mut settings = circle_server::config::ClusterSettings::new(url, id);
    if let Some(node_url) = args.node_url.as_deref().filter(|u| !u.is_empty()) {
        if !node_url.starts_with("http://") {
            bail!("--node-url must be an http:// URL on the cluster's own network");
        }
        settings.node_url = Some(node_url.trim_end_matches('/').to_owned());
    }
    Ok(Some(settings))
}

#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// Room id: 1–64 characters of A–Z, a–z, 0–9, _ and -.
    #[arg(long)]
    pub(crate) room: String,
    /// facilitator, member or observer.
    #[arg(long)]
    pub(crate) role: RoleArg,
    /// Name the room will see.
    #[arg(long)]
    pub(crate) name: String,
    /// Participant id; random when not given. The same person reconnecting keeps the same one.
    #[arg(long)]
    pub(crate) sub: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub(crate) ttl: Duration,
    /// The secret the server checks tokens with.
    #[arg(long, env = "CIRCLE_TOKEN_SECRET", hide_env_values = true)]
    pub(crate) token_secret: String,
    /// Base URL of the server for the join link.
    #[arg(
        long,
        env = "CIRCLE_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) base_url: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum RoleArg {
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

/// Accepts `rtc`, the one engine, and refuses `webrtc` with what to do instead.
fn parse_media_engine(name: &str) -> Result<String, String> {
    match name {
        "rtc" => Ok(name.to_owned()),
        "webrtc" => Err(
            "the webrtc media engine was retired; rtc is the only engine, on one UDP \
                         port (--udp-port): remove --media-engine / CIRCLE_MEDIA_ENGINE"
                .to_owned(),
        ),
        other => Err(format!(
            "unknown media engine {other:?}: rtc is the only one"
        )),
    }
}

/// Parses `40000-40199`.
pub(crate) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
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
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
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

/// Refuses a token secret too short to resist an offline search from one join link.
pub(crate) fn check_secret(secret: &str) -> Result<()> {
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
pub(crate) fn origin_of(url: &str) -> String {
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

/// The main port's TLS from the flags; a missing, unreadable or mismatched file stops start-up
/// with a message naming it.
pub(crate) fn tls(args: &ServeArgs) -> Result<Option<std::sync::Arc<circle_server::tls::Tls>>> {
    use circle_server::tls::{Tls, TlsSource};
    let source = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true) => {
            let mut names = vec!["localhost".to_owned(), args.listen.ip().to_string()];
            if let Some(url) = &args.public_url {
                names.push(
                    origin_of(url)
                        .split("://")
                        .nth(1)
                        .unwrap_or_default()
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            names.retain(|n| !n.is_empty() && n != "0.0.0.0" && n != "::");
            names.dedup();
            TlsSource::SelfSigned { names }
        }
        _ => return Ok(None),
    };
    Ok(Some(std::sync::Arc::new(Tls::new(source)?)))
}

/// The TURN server from the flags: REST credentials with a secret, or a static pair.
pub(crate) fn turn(args: &ServeArgs) -> Result<Option<circle_server::config::TurnConfig>> {
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
pub(crate) fn operations(args: &ServeArgs) -> Result<circle_server::config::Operations> {
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
