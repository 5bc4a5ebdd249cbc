//! The exposition read back with a real Prometheus text parser (`prometheus-parse`): names,
//! types and labels as operations.md promises them, and values that move with what they count.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use circle_protocol::{ErrorCode, Role};
use prometheus_parse::{LineInfo, SampleType, Scrape, Value};

use super::rooms::role_index;
use super::*;
use crate::media::{DropReason, MediaConfig, MediaKind};

fn metrics() -> Metrics {
    Metrics::new(Media::new(MediaConfig::default()).expect("default media settings"))
}

fn scrape(metrics: &Metrics) -> Scrape {
    let text = metrics.encode();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the text parses")
}

/// Each family's declared type, by the name on its `# TYPE` line.
fn types(metrics: &Metrics) -> HashMap<String, SampleType> {
    let text = metrics.encode();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let LineInfo::Type {
            metric_name,
            metric_alias,
            sample_type,
        } = LineInfo::parse(line)
        {
            // The parser names a histogram by its buckets and keeps the family name as alias.
            types.insert(metric_alias.unwrap_or(metric_name), sample_type);
        }
    }
    types
}

/// The one sample named `name` whose labels are exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Value> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && *s.labels == wanted)
        .map(|s| &s.value)
        .collect();
    match found.as_slice() {
        [Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)] => *v,
        other => panic!("{name}{labels:?}: expected one plain sample, found {other:?}"),
    }
}

#[test]
fn every_metric_in_the_contract_is_exposed_under_its_name_with_its_type() {
    let types = types(&metrics());
    let expected = [
        ("circle_rooms", SampleType::Gauge),
        ("circle_participants", SampleType::Gauge),
        ("circle_waiting", SampleType::Gauge),
        ("circle_sessions_open", SampleType::Gauge),
        ("circle_peer_connections", SampleType::Gauge),
        // OpenMetrics names a counter's family without `_total`; its samples carry it.
        ("circle_joins", SampleType::Counter),
        ("circle_join_seconds", SampleType::Histogram),
        ("circle_ws_messages_received", SampleType::Counter),
        ("circle_errors_sent", SampleType::Counter),
        ("circle_rtp_packets_received", SampleType::Counter),
        ("circle_rtp_packets_forwarded", SampleType::Counter),
        ("circle_rtp_packets_dropped", SampleType::Counter),
        ("circle_floor_changes", SampleType::Counter),
        ("circle_webhook_deliveries", SampleType::Counter),
    ];
    for (name, kind) in expected {
        assert_eq!(types.get(name), Some(&kind), "{name}");
    }
    // The parser knows no `info` type; the sample name is what the contract names.
    assert!(metrics().encode().contains("# TYPE circle_build info\n"));
}

#[test]
fn counters_are_exposed_with_the_total_suffix_and_nothing_doubles_it() {
    let text = metrics().encode();
    let samples: HashSet<String> = scrape(&metrics())
        .samples
        .into_iter()
        .map(|s| s.metric)
        .collect();
    for name in [
        "circle_joins_total",
        "circle_ws_messages_received_total",
        "circle_errors_sent_total",
        "circle_rtp_packets_received_total",
        "circle_rtp_packets_forwarded_total",
        "circle_rtp_packets_dropped_total",
        "circle_floor_changes_total",
        "circle_webhook_deliveries_total",
        "circle_build_info",
        "circle_join_seconds",
        "circle_join_seconds_count",
        "circle_join_seconds_sum",
    ] {
        assert!(samples.contains(name), "{name} missing from:\n{text}");
    }
    assert!(!text.contains("_total_total"), "{text}");
}

#[test]
fn the_text_is_a_complete_openmetrics_exposition() {
    let text = metrics().encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text; version=1.0.0"));
}

#[test]
fn every_labelled_series_shows_at_zero_before_anything_happens() {
    let s = scrape(&metrics());
    for role in ["facilitator", "member", "observer"] {
        assert_eq!(value(&s, "circle_participants", &[("role", role)]), 0.0);
    }
    for result in ["admitted", "waiting", "refused"] {
        assert_eq!(value(&s, "circle_joins_total", &[("result", result)]), 0.0);
    }
    for code in ERROR_CODES {
        let code = error_code_label(code);
        assert_eq!(
            value(&s, "circle_errors_sent_total", &[("code", code)]),
            0.0
        );
    }
    for kind in ["audio", "video"] {
        for name in [
            "circle_rtp_packets_received_total",
            "circle_rtp_packets_forwarded_total",
        ] {
            assert_eq!(value(&s, name, &[("kind", kind)]), 0.0);
        }
    }
    for reason in ["floor_gate", "subscriber_queue_full", "subscriber_closed"] {
        let labels = [("reason", reason)];
        assert_eq!(value(&s, "circle_rtp_packets_dropped_total", &labels), 0.0);
    }
    for result in ["delivered", "retried", "dropped", "failed"] {
        let labels = [("result", result)];
        assert_eq!(value(&s, "circle_webhook_deliveries_total", &labels), 0.0);
    }
    for name in [
        "circle_rooms",
        "circle_waiting",
        "circle_sessions_open",
        "circle_peer_connections",
        "circle_ws_messages_received_total",
        "circle_floor_changes_total",
        "circle_join_seconds_count",
    ] {
        assert_eq!(value(&s, name, &[]), 0.0, "{name}");
    }
}

#[test]
fn build_info_is_one_and_names_the_crate_version() {
    let s = scrape(&metrics());
    let labels = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&s, "circle_build_info", &labels), 1.0);
}

#[test]
fn counters_move_with_what_they_count() {
    let m = metrics();
    m.join(JoinResult::Admitted);
    m.join(JoinResult::Waiting);
    m.join(JoinResult::Waiting);
    m.join(JoinResult::Refused);
    m.ws_message_received();
    m.error_sent(ErrorCode::RoomLocked);
    m.error_sent(ErrorCode::RoomLocked);
    m.floor_changed();
    m.webhook_delivery("retried");
    m.webhook_delivery("delivered");
    let s = scrape(&m);
    assert_eq!(
        value(&s, "circle_joins_total", &[("result", "admitted")]),
        1.0
    );
    assert_eq!(
        value(&s, "circle_joins_total", &[("result", "waiting")]),
        2.0
    );
    assert_eq!(
        value(&s, "circle_joins_total", &[("result", "refused")]),
        1.0
    );
    assert_eq!(value(&s, "circle_ws_messages_received_total", &[]), 1.0);
    let locked = [("code", "room_locked")];
    assert_eq!(value(&s, "circle_errors_sent_total", &locked), 2.0);
    let full = [("code", "room_full")];
    assert_eq!(value(&s, "circle_errors_sent_total", &full), 0.0);
    assert_eq!(value(&s, "circle_floor_changes_total", &[]), 1.0);
    for (result, count) in [("delivered", 1.0), ("retried", 1.0), ("failed", 0.0)] {
        let labels = [("result", result)];
        assert_eq!(value(&s, "circle_webhook_deliveries_total", &labels), count);
    }
}

#[test]
fn join_times_fall_into_their_buckets_in_seconds() {
    let m = metrics();
    m.join_time(Duration::from_micros(800));
    m.join_time(Duration::from_millis(30));
    let s = scrape(&m);
    assert_eq!(value(&s, "circle_join_seconds_count", &[]), 2.0);
    let sum = value(&s, "circle_join_seconds_sum", &[]);
    assert!((sum - 0.0308).abs() < 1e-9, "{sum}");
    let buckets = s
        .samples
        .iter()
        .find_map(|sample| match (&sample.metric[..], &sample.value) {
            ("circle_join_seconds", Value::Histogram(buckets)) => Some(buckets),
            _ => None,
        })
        .expect("the histogram's buckets");
    let at = |le: f64| {
        buckets
            .iter()
            .find(|b| b.less_than == le)
            .map(|b| b.count)
            .unwrap_or_else(|| panic!("no bucket le={le}"))
    };
    assert_eq!(at(0.0005), 0.0);
    assert_eq!(at(0.001), 1.0);
    assert_eq!(at(0.025), 1.0);
    assert_eq!(at(0.05), 2.0);
    assert_eq!(at(f64::INFINITY), 2.0);
}

#[test]
fn media_counts_are_read_from_the_media_plane_at_scrape_time() {
    let media = Media::new(MediaConfig::default()).unwrap();
    let m = Metrics::new(media.clone());
    let counters = media.counters();
    counters.count_received(MediaKind::Audio);
    counters.count_received(MediaKind::Audio);
    counters.count_received(MediaKind::Video);
    counters.count_forwarded(MediaKind::Video, 5);
    counters.count_dropped(DropReason::FloorGate, 1);
    counters.count_dropped(DropReason::SubscriberQueueFull, 3);
    counters.peer_opened();
    let s = scrape(&m);
    let received = "circle_rtp_packets_received_total";
    assert_eq!(value(&s, received, &[("kind", "audio")]), 2.0);
    assert_eq!(value(&s, received, &[("kind", "video")]), 1.0);
    let forwarded = "circle_rtp_packets_forwarded_total";
    assert_eq!(value(&s, forwarded, &[("kind", "video")]), 5.0);
    assert_eq!(value(&s, forwarded, &[("kind", "audio")]), 0.0);
    let dropped = "circle_rtp_packets_dropped_total";
    assert_eq!(value(&s, dropped, &[("reason", "floor_gate")]), 1.0);
    assert_eq!(
        value(&s, dropped, &[("reason", "subscriber_queue_full")]),
        3.0
    );
    assert_eq!(value(&s, dropped, &[("reason", "subscriber_closed")]), 0.0);
    assert_eq!(value(&s, "circle_peer_connections", &[]), 1.0);
    counters.peer_closed();
    assert_eq!(value(&scrape(&m), "circle_peer_connections", &[]), 0.0);
}

#[test]
fn room_gauges_add_up_the_live_rooms_and_forget_a_room_when_it_ends() {
    let m = metrics();
    let mut first = m.room_opened();
    let mut second = m.room_opened();
    let mut here = Presence::default();
    here.admitted(Role::Facilitator);
    here.admitted(Role::Member);
    here.admitted(Role::Member);
    here.waiting();
    first.set_presence(here);
    first.set_session_open(true);
    let mut knocking = Presence::default();
    knocking.waiting();
    second.set_presence(knocking);
    let s = scrape(&m);
    assert_eq!(value(&s, "circle_rooms", &[]), 2.0);
    assert_eq!(
        value(&s, "circle_participants", &[("role", "facilitator")]),
        1.0
    );
    assert_eq!(value(&s, "circle_participants", &[("role", "member")]), 2.0);
    assert_eq!(
        value(&s, "circle_participants", &[("role", "observer")]),
        0.0
    );
    assert_eq!(value(&s, "circle_waiting", &[]), 2.0);
    assert_eq!(value(&s, "circle_sessions_open", &[]), 1.0);

    // Someone left the first room; the second ends however its task stops.
    let mut fewer = Presence::default();
    fewer.admitted(Role::Facilitator);
    fewer.admitted(Role::Member);
    first.set_presence(fewer);
    drop(second);
    let s = scrape(&m);
    assert_eq!(value(&s, "circle_rooms", &[]), 1.0);
    assert_eq!(value(&s, "circle_participants", &[("role", "member")]), 1.0);
    assert_eq!(value(&s, "circle_waiting", &[]), 0.0);
    assert_eq!(value(&s, "circle_sessions_open", &[]), 1.0);

    // A room dropped with its session open and people in it takes all of that back.
    drop(first);
    let s = scrape(&m);
    for name in ["circle_rooms", "circle_waiting", "circle_sessions_open"] {
        assert_eq!(value(&s, name, &[]), 0.0, "{name}");
    }
    for role in ["facilitator", "member", "observer"] {
        assert_eq!(value(&s, "circle_participants", &[("role", role)]), 0.0);
    }
}

#[test]
fn no_label_can_carry_a_room_a_person_or_an_address() {
    let m = metrics();
    let mut room = m.room_opened();
    let mut here = Presence::default();
    here.admitted(Role::Observer);
    room.set_presence(here);
    m.join(JoinResult::Admitted);
    let allowed: HashSet<&str> = ["role", "result", "code", "kind", "reason", "version"].into();
    for sample in scrape(&m).samples {
        for (key, value) in sample.labels.iter() {
            assert!(
                allowed.contains(key.as_str()),
                "{}: {key}={value}",
                sample.metric
            );
            // Fixed words: lower-case letters and underscores, or the version's digits.
            let word = value.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(word || key == "version", "{}: {key}={value}", sample.metric);
        }
    }
}

#[test]
fn error_codes_are_labelled_as_the_protocol_spells_them() {
    for (i, code) in ERROR_CODES.into_iter().enumerate() {
        assert_eq!(error_code_index(code), i);
        let wire = serde_json::to_value(code).unwrap();
        assert_eq!(wire.as_str(), Some(error_code_label(code)));
    }
}

#[test]
fn roles_are_labelled_as_the_protocol_spells_them() {
    for (i, role) in ROLES.into_iter().enumerate() {
        assert_eq!(role_index(role), i);
        let wire = serde_json::to_value(role).unwrap();
        assert_eq!(wire.as_str(), Some(role_label(role)));
    }
}
