//! The media plane's counts as metrics: read from its [`MediaCounters`](crate::media::MediaCounters)
//! on each scrape, so the packet path only ever bumps its own atomics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::media::udp::route::Dropped;
use crate::media::{DropReason, Media, MediaKind};

/// Reads the media plane's counts on each scrape.
#[derive(Debug)]
pub(super) struct MediaCollector(pub(super) Media);

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.0.counters();
        let peers = ConstGauge::new(counters.peer_connections() as i64);
        peers.encode(encoder.encode_descriptor(
            "circle_peer_connections",
            "Server-side WebRTC peer connections open.",
            None,
            peers.metric_type(),
        )?)?;
        let by_kind = [
            (
                "circle_rtp_packets_received",
                "RTP packets received from publishers, by kind.",
                MediaKind::ALL.map(|kind| (kind.as_str(), counters.received(kind))),
            ),
            (
                "circle_rtp_packets_forwarded",
                "RTP packet copies written to subscribers, by kind.",
                MediaKind::ALL.map(|kind| (kind.as_str(), counters.forwarded(kind))),
            ),
        ];
        for (name, help, values) in by_kind {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (kind, value) in values {
                ConstCounter::new(value).encode(family.encode_family(&[("kind", kind)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "circle_rtp_packets_dropped",
            "RTP packets the media path dropped, by reason: floor_gate counts incoming audio \
             packets the floor held back, subscriber_queue_full and subscriber_closed count \
             copies a subscriber's connection could not take.",
            None,
            MetricType::Counter,
        )?;
        for reason in DropReason::ALL {
            ConstCounter::new(counters.dropped(reason))
                .encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "circle_udp_datagrams_dropped",
            "Datagrams arriving at the media port that reached no \
             connection, by reason: junk (not STUN, DTLS or RTP), bad_stun, unknown_ufrag (a \
             check for no connection of ours) and unknown_address (DTLS or RTP from an address \
             no connection has answered).",
            None,
            MetricType::Counter,
        )?;
        for reason in Dropped::ALL {
            ConstCounter::new(counters.udp_dropped(reason))
                .encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        Ok(())
    }
}
