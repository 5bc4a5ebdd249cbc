//! The server's Prometheus metrics (operations.md, "Metrics"): one [`Metrics`] per server, held
//! by the context, counted where things happen and encoded on each scrape. No label carries a
//! room id, a participant id, a name or an address: every label value is one of a fixed set
//! written in this file or the media module.
//!
//! Counts that the room and connection paths change are `prometheus-client` metrics whose
//! handles are resolved once, here, so counting is one atomic add with no label look-up. What
//! the media path counts stays in the media module's own atomics
//! ([`MediaCounters`](crate::media::MediaCounters)) and is
//! read at scrape time by a collector, so the per-packet path knows nothing of this crate.
//!
//! Layout: this file holds [`Metrics`] and the labels; `rooms` the gauges each room's task
//! feeds; `media` the collector that reads the media plane's counts.

mod media;
mod rooms;
#[cfg(test)]
mod tests;

use std::time::Duration;

use circle_protocol::{ErrorCode, Role};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::media::Media;
use media::MediaCollector;
use rooms::RoomGaugeSet;
pub use rooms::{Presence, RoomGauges};

/// The content type of [`Metrics::encode`]'s text: OpenMetrics 1.0, which Prometheus asks for
/// and reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label, with a value from a fixed set.
type Label = [(&'static str, &'static str); 1];

/// The roles in the order of the per-role gauge arrays.
const ROLES: [Role; 3] = [Role::Facilitator, Role::Member, Role::Observer];

/// What webhook delivery reports (see [`Metrics::webhook_delivery`]); listed so that each
/// series exists from the start, at zero.
const WEBHOOK_RESULTS: [&str; 4] = ["delivered", "retried", "dropped", "failed"];

/// Upper bounds of the join-time buckets, in seconds: a join is a token check and a round trip
/// to the room's task, normally a millisecond or two; the top buckets show a server that is
/// falling behind.
const JOIN_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a `hello` ended. The discriminants index `Metrics::joins`, in the order of `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinResult {
    /// Welcomed into the room proper.
    Admitted,
    /// Put in the waiting room.
    Waiting,
    /// Answered with an error (its code is counted in `circle_errors_sent_total`).
    Refused,
}

impl JoinResult {
    const ALL: [JoinResult; 3] = [
        JoinResult::Admitted,
        JoinResult::Waiting,
        JoinResult::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            JoinResult::Admitted => "admitted",
            JoinResult::Waiting => "waiting",
            JoinResult::Refused => "refused",
        }
    }
}

/// The server's metrics. Every method is cheap and never blocks: one relaxed atomic add, or
/// (for the rare webhook report) one short read lock.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rooms: RoomGaugeSet,
    /// By [`JoinResult`] in the order of `JoinResult::ALL`.
    joins: [Counter; 3],
    join_seconds: Histogram,
    ws_messages_received: Counter,
    /// By [`ErrorCode`] in the order of [`ERROR_CODES`].
    errors_sent: [Counter; ERROR_CODES.len()],
    floor_changes: Counter,
    webhook_deliveries: Family<Label, Counter>,
    cluster: ClusterGauges,
}

/// The whole cluster as this node last read the directory (every node's own report), so that
/// any node's `/metrics` sees the cluster; zero on a node of its own.
#[derive(Debug, Default)]
struct ClusterGauges {
    nodes: Gauge,
    rooms: Gauge,
    participants: Gauge,
}

/// The cluster's size as the directory shows it, for [`Metrics::set_cluster`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterSize {
    pub nodes: u64,
    pub rooms: u64,
    pub participants: u64,
}

impl Metrics {
    /// Metrics for a server whose media plane is `media` (its counts are read on each scrape).
    pub fn new(media: Media) -> Self {
        let mut registry = Registry::default();

        // Counters are registered without `_total`: the OpenMetrics encoding appends it to the
        // samples (`circle_joins` is exposed as `circle_joins_total`).
        //
        // Each labelled series is created here, so that it shows from the start at zero, and
        // its handle kept: a clone shares the series' atomic.
        let participants = Family::<Label, Gauge>::default();
        let rooms = RoomGaugeSet {
            rooms: Gauge::default(),
            participants: ROLES
                .map(|role| participants.get_or_create_owned(&[("role", role_label(role))])),
            waiting: Gauge::default(),
            sessions_open: Gauge::default(),
        };
        registry.register("circle_rooms", "Rooms open", rooms.rooms.clone());
        registry.register(
            "circle_participants",
            "Participants admitted to a room (present, or reconnecting within the resume grace), by role",
            participants,
        );
        registry.register(
            "circle_waiting",
            "People in waiting rooms",
            rooms.waiting.clone(),
        );
        registry.register(
            "circle_sessions_open",
            "Group sessions in progress: rooms whose first admission happened and whose session has not finished",
            rooms.sessions_open.clone(),
        );

        let family = Family::<Label, Counter>::default();
        let joins = JoinResult::ALL
            .map(|result| family.get_or_create_owned(&[("result", result.as_str())]));
        registry.register(
            "circle_joins",
            "Hellos and how they ended: admitted, waiting or refused",
            family,
        );
        let join_seconds = Histogram::new(JOIN_BUCKETS);
        registry.register(
            "circle_join_seconds",
            "Seconds from a hello's arrival to its welcome or waiting",
            join_seconds.clone(),
        );
        let ws_messages_received = Counter::default();
        registry.register(
            "circle_ws_messages_received",
            "WebSocket text and binary messages received from clients",
            ws_messages_received.clone(),
        );
        let family = Family::<Label, Counter>::default();
        let errors_sent =
            ERROR_CODES.map(|code| family.get_or_create_owned(&[("code", error_code_label(code))]));
        registry.register(
            "circle_errors_sent",
            "Protocol errors sent to clients, by code",
            family,
        );
        let floor_changes = Counter::default();
        registry.register(
            "circle_floor_changes",
            "Changes of the talking stick's holder or of a room's floor mode",
            floor_changes.clone(),
        );
        let webhook_deliveries = Family::<Label, Counter>::default();
        for result in WEBHOOK_RESULTS {
            webhook_deliveries.get_or_create_owned(&[("result", result)]);
        }
        registry.register(
            "circle_webhook_deliveries",
            "Webhook delivery attempts and how they ended",
            webhook_deliveries.clone(),
        );
        registry.register(
            "circle_build",
            "The server's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(MediaCollector(media)));
        let cluster = ClusterGauges::default();
        registry.register(
            "circle_cluster_nodes",
            "Live nodes of this node's cluster (0 outside a cluster)",
            cluster.nodes.clone(),
        );
        registry.register(
            "circle_cluster_rooms",
            "Rooms running on all the cluster's live nodes, as each last reported",
            cluster.rooms.clone(),
        );
        registry.register(
            "circle_cluster_participants",
            "People in the rooms of all the cluster's live nodes, as each last reported",
            cluster.participants.clone(),
        );

        Self {
            registry,
            rooms,
            joins,
            join_seconds,
            ws_messages_received,
            errors_sent,
            floor_changes,
            webhook_deliveries,
            cluster,
        }
    }

    /// The cluster as the directory showed it just now.
    pub fn set_cluster(&self, size: ClusterSize) {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.cluster.nodes, size.nodes);
        gauge(&self.cluster.rooms, size.rooms);
        gauge(&self.cluster.participants, size.participants);
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`; serve it with
    /// [`CONTENT_TYPE`] (`application/openmetrics-text; version=1.0.0; charset=utf-8`).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        text
    }

    /// Counts a room from now until the returned guard drops; the room reports through it who
    /// is in it and whether its session is open.
    /// People in this node's rooms, admitted (reconnecting included) or waiting: the load a
    /// cluster places new rooms by.
    pub fn people_in_rooms(&self) -> u64 {
        let admitted: i64 = self.rooms.participants.iter().map(Gauge::get).sum();
        u64::try_from(admitted + self.rooms.waiting.get()).unwrap_or(0)
    }

    pub fn room_opened(&self) -> RoomGauges {
        RoomGauges::new(self.rooms.clone())
    }

    /// How a `hello` ended. The connection counts refusals; the room, which knows whether it
    /// admitted the joiner or let them wait, counts the rest.
    pub fn join(&self, result: JoinResult) {
        self.joins[result as usize].inc();
    }

    /// The time from a `hello`'s arrival to its `welcome` or `waiting`.
    pub fn join_time(&self, took: Duration) {
        self.join_seconds.observe(took.as_secs_f64());
    }

    /// One WebSocket text or binary message from a client (control frames are not counted).
    pub fn ws_message_received(&self) {
        self.ws_messages_received.inc();
    }

    /// One `error` message handed to a client's connection (or kept for its resume).
    pub fn error_sent(&self, code: ErrorCode) {
        self.errors_sent[error_code_index(code)].inc();
    }

    /// The stick changed hands or the floor mode changed.
    pub fn floor_changed(&self) {
        self.floor_changes.inc();
    }

    /// One webhook delivery attempt ended: `"delivered"`, `"retried"`, `"dropped"` or
    /// `"failed"`. Only strings written in the code can be passed, so the label set stays
    /// small and names nobody.
    pub fn webhook_delivery(&self, result: &'static str) {
        self.webhook_deliveries
            .get_or_create(&[("result", result)])
            .inc();
    }
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Facilitator => "facilitator",
        Role::Member => "member",
        Role::Observer => "observer",
    }
}

/// Every protocol error code, in the order of `Metrics::errors_sent`.
const ERROR_CODES: [ErrorCode; 10] = [
    ErrorCode::BadRequest,
    ErrorCode::UnsupportedProtocol,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::RoomLocked,
    ErrorCode::RoomFull,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
];

/// An exhaustive match, so a new code fails to compile until it is counted here.
fn error_code_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::BadRequest => 0,
        ErrorCode::UnsupportedProtocol => 1,
        ErrorCode::Unauthorized => 2,
        ErrorCode::Forbidden => 3,
        ErrorCode::NotFound => 4,
        ErrorCode::Conflict => 5,
        ErrorCode::RoomLocked => 6,
        ErrorCode::RoomFull => 7,
        ErrorCode::RateLimited => 8,
        ErrorCode::Internal => 9,
    }
}

/// The code as the protocol spells it on the wire.
fn error_code_label(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::UnsupportedProtocol => "unsupported_protocol",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Conflict => "conflict",
        ErrorCode::RoomLocked => "room_locked",
        ErrorCode::RoomFull => "room_full",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::Internal => "internal",
    }
}
