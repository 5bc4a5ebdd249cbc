//! What the media path counts for one server: RTP packets received, copies forwarded and what
//! was dropped, by kind and reason, and the peer connections open. Plain relaxed atomics, bumped
//! on the packet path without a lock, a label or an allocation, and read whenever someone asks
//! (the metrics collector, at scrape time).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::media::codec::MediaKind;
use crate::media::udp::route::Dropped;

/// Why the media path did not deliver a packet. A fixed set: each is one metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// An incoming audio packet the floor gate held back (the sender may not be heard now);
    /// counted once per packet, whatever the number of subscribers.
    FloorGate,
    /// One subscriber's copy: its connection's send queue was full.
    SubscriberQueueFull,
    /// One subscriber's copy: its track was removed or its connection is closing.
    SubscriberClosed,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::FloorGate,
        DropReason::SubscriberQueueFull,
        DropReason::SubscriberClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::FloorGate => "floor_gate",
            DropReason::SubscriberQueueFull => "subscriber_queue_full",
            DropReason::SubscriberClosed => "subscriber_closed",
        }
    }
}

/// One server's media counts since it started (the peer count: now).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// By [`MediaKind::index`].
    received: [AtomicU64; 3],
    forwarded: [AtomicU64; 3],
    dropped: [AtomicU64; 3],
    /// By position in [`Dropped::ALL`].
    udp_dropped: [AtomicU64; 4],
    peers: AtomicUsize,
}

impl MediaCounters {
    /// RTP packets received from publishers.
    pub fn received(&self, kind: MediaKind) -> u64 {
        self.received[kind.index()].load(Ordering::Relaxed)
    }

    /// Copies handed to subscribers' connections.
    pub fn forwarded(&self, kind: MediaKind) -> u64 {
        self.forwarded[kind.index()].load(Ordering::Relaxed)
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Datagrams the one-port engine dropped before they reached any connection, by why.
    pub fn udp_dropped(&self, why: Dropped) -> u64 {
        self.udp_dropped[why as usize].load(Ordering::Relaxed)
    }

    /// Server-side peer connections open now.
    pub fn peer_connections(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    pub(crate) fn count_received(&self, kind: MediaKind) {
        self.received[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// `copies` of one packet: the fan-out adds up its subscribers first, so a packet costs one
    /// atomic add however many receive it.
    pub(crate) fn count_forwarded(&self, kind: MediaKind, copies: u64) {
        if copies > 0 {
            self.forwarded[kind.index()].fetch_add(copies, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_dropped(&self, reason: DropReason, packets: u64) {
        if packets > 0 {
            self.dropped[reason as usize].fetch_add(packets, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_udp_dropped(&self, why: Dropped) {
        self.udp_dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn peer_opened(&self) {
        self.peers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn peer_closed(&self) {
        self.peers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Server-side peer connections open now in the whole process, whichever engine holds them:
/// the count `/stats` shows.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts one open peer connection until dropped, however it ends: in the process, and in its
/// server's [`MediaCounters`] (which tell servers sharing a process apart).
pub(crate) struct Live(Arc<MediaCounters>);

impl Live {
    pub(crate) fn start(counters: Arc<MediaCounters>) -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        counters.peer_opened();
        Live(counters)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        self.0.peer_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_reason_has_its_own_count() {
        let counters = MediaCounters::default();
        counters.count_received(MediaKind::Audio);
        counters.count_forwarded(MediaKind::Video, 3);
        counters.count_dropped(DropReason::SubscriberClosed, 2);
        assert_eq!(counters.received(MediaKind::Audio), 1);
        assert_eq!(counters.received(MediaKind::Video), 0);
        assert_eq!(counters.forwarded(MediaKind::Video), 3);
        assert_eq!(counters.forwarded(MediaKind::Audio), 0);
        assert_eq!(counters.dropped(DropReason::SubscriberClosed), 2);
        assert_eq!(counters.dropped(DropReason::FloorGate), 0);
        assert_eq!(counters.dropped(DropReason::SubscriberQueueFull), 0);
    }
}
