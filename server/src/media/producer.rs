//! A producer: one incoming track. Its task reads RTP, runs the per-packet work of
//! [`forward`](crate::media::forward) (floor gate, sequence rewriting, loud-packet count), and
//! writes each copy straight into its subscriber's connection without ever waiting on one. The
//! task owns the subscriber list; consumers change it by message, so the fan-out takes no lock
//! (only the first packet of a VP8 keyframe takes the keyframe pacer's, once per keyframe).
//! Each packet and copy is counted in the server's [`MediaCounters`] with relaxed atomic adds.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circle_protocol::ParticipantId;
use futures_util::FutureExt;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media::codec::MediaKind;
use crate::media::counters::{DropReason, MediaCounters};
use crate::media::egress::{Egress, Subscription};
use crate::media::forward::{
    egress_copy, is_vp8_keyframe_start, Ingress, KeyframePacer, KeyframeWanted,
};
use crate::media::lock;

pub(crate) type ProducerId = u64;

/// Subscribers' own keyframe requests reach one publisher at most this often, however many
/// ask: each keyframe costs the publisher's whole uplink for a moment.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);
/// Keyframe requests waiting for the pacer; more at once are the same request.
const KEYFRAME_QUEUE: usize = 8;
/// Subscriber changes waiting for the producer's task, which takes them before its next
/// packet. A room of the largest size changing every subscription at once queues two per
/// member; a full queue is logged, never waited on.
const SUBSCRIPTION_QUEUE: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the producer tells the router about itself.
#[derive(Debug)]
pub(crate) struct ProducerEnded {
    pub(crate) id: ProducerId,
}

struct ConsumerSlot {
    id: u64,
    egress: Arc<Egress>,
}

/// The shared side of a producer: the router, the publish peer and the consumers hold it.
pub(crate) struct Producer {
    pub(crate) id: ProducerId,
    pub(crate) owner: ParticipantId,
    /// Which `add_participant` of `owner` this belongs to, so a late producer of someone who
    /// left and came back is not mistaken for a current one.
    pub(crate) owner_epoch: u64,
    pub(crate) kind: MediaKind,
    subscriptions: mpsc::Sender<Subscription>,
    keyframe_requests: mpsc::Sender<KeyframeWanted>,
    /// Shared with the task that sends the requests; used for video only.
    keyframes: Arc<Mutex<KeyframePacer>>,
    loud_packets: AtomicU32,
    closed: Notify,
}

impl Producer {
    /// Starts forwarding a track the publish peer just received. Returns `None` for a track
    /// that is neither audio nor video.
    pub(crate) async fn start(
        track: Arc<dyn TrackRemote>,
        owner: ParticipantId,
        owner_epoch: u64,
        gate: Arc<AtomicBool>,
        audio_level_id: Option<u8>,
        ended: mpsc::Sender<ProducerEnded>,
        counters: Arc<MediaCounters>,
    ) -> Option<Arc<Producer>> {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return None,
        };
        let media_ssrc = track.ssrcs().await.first().copied();
        let (keyframe_requests, keyframe_rx) = mpsc::channel(KEYFRAME_QUEUE);
        let keyframes = Arc::new(Mutex::new(KeyframePacer::new(KEYFRAME_THROTTLE)));
        let (subscriptions, subscription_rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
        let producer = Arc::new(Producer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            owner,
            owner_epoch,
            kind,
            subscriptions,
            keyframe_requests,
            keyframes: keyframes.clone(),
            loud_packets: AtomicU32::new(0),
            closed: Notify::new(),
        });
        if let (MediaKind::Video, Some(ssrc)) = (kind, media_ssrc) {
            tokio::spawn(request_keyframes(
                track.clone(),
                ssrc,
                keyframes,
                keyframe_rx,
            ));
        }
        let ingress = match kind {
            MediaKind::Audio => Ingress::audio(gate, audio_level_id),
            MediaKind::Video => Ingress::video(),
        };
        tokio::spawn(relay(
            producer.clone(),
            track,
            ingress,
            subscription_rx,
            ended,
            counters,
        ));
        Some(producer)
    }

    /// Adds or removes a subscriber. Never blocks; the task applies it before its next packet.
    pub(crate) fn subscription(&self, change: Subscription) {
        if self.subscriptions.try_send(change).is_err() {
            // Closed: the producer ended, so there is nothing to change. Full: cannot happen
            // within a room's size (see SUBSCRIPTION_QUEUE), and waiting would stall the room.
            if !self.subscriptions.is_closed() {
                tracing::error!(producer = self.id, "producer subscription queue full");
            }
        }
    }

    /// Asks the publisher for a keyframe (PLI), paced by [`KeyframePacer`]. Never blocks.
    pub(crate) fn request_keyframe(&self, who: KeyframeWanted) {
        let _ = self.keyframe_requests.try_send(who);
    }

    /// Loud audio packets since the last call.
    pub(crate) fn take_loud_packets(&self) -> u32 {
        self.loud_packets.swap(0, Ordering::Relaxed)
    }

    /// Stops forwarding; the producer then reports itself ended.
    pub(crate) fn close(&self) {
        self.closed.notify_one();
    }
}

/// What became of one packet's copies.
#[derive(Default)]
struct FanOut {
    written: u64,
    queue_full: u64,
    closed: u64,
}

/// Writes one copy per live subscriber. The library's write only queues the packet for the
/// subscriber connection's own task, so it completes at once unless that queue is full; then
/// this subscriber loses the packet rather than holding back everyone else. Writing here,
/// rather than through a task per consumer, saves a hand-off per copy. Subscribers not yet
/// live are skipped, not counted: nothing was meant for them yet.
fn fan_out(producer: ProducerId, consumers: &[ConsumerSlot], packet: &rtp::Packet) -> FanOut {
    let mut out = FanOut::default();
    for slot in consumers {
        let egress = &slot.egress;
        if !egress.live.load(Ordering::Acquire) {
            continue;
        }
        let copy = egress_copy(packet, egress.ssrc, egress.payload_type);
        match egress.track.write_rtp(copy).now_or_never() {
            Some(Ok(())) => out.written += 1,
            // The track was removed or its connection is closing.
            Some(Err(e)) => {
                out.closed += 1;
                tracing::trace!(error = %e, "consumer write failed");
            }
            None => {
                out.queue_full += 1;
                tracing::trace!(
                    producer,
                    consumer = slot.id,
                    "subscriber connection queue full"
                );
            }
        }
    }
    out
}

fn apply(consumers: &mut Vec<ConsumerSlot>, change: Subscription) {
    match change {
        Subscription::Attach { consumer, egress } => consumers.push(ConsumerSlot {
            id: consumer,
            egress,
        }),
        Subscription::Detach { consumer } => consumers.retain(|slot| slot.id != consumer),
    }
}

/// The producer's task: relays the incoming track to its subscribers until the track ends or
/// the producer is closed.
async fn relay(
    producer: Arc<Producer>,
    track: Arc<dyn TrackRemote>,
    mut ingress: Ingress,
    mut subscriptions: mpsc::Receiver<Subscription>,
    ended: mpsc::Sender<ProducerEnded>,
    counters: Arc<MediaCounters>,
) {
    let kind = producer.kind;
    let mut consumers: Vec<ConsumerSlot> = Vec::new();
    loop {
        let event = tokio::select! {
            // Subscriber changes first: a consumer attached before a packet arrived gets it.
            biased;
            _ = producer.closed.notified() => break,
            Some(change) = subscriptions.recv() => {
                apply(&mut consumers, change);
                continue;
            }
            event = track.poll() => event,
        };
        let mut packet = match event {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
            Some(_) => continue,
        };
        counters.count_received(kind);
        let verdict = ingress.process(&mut packet);
        if verdict.loud {
            producer.loud_packets.fetch_add(1, Ordering::Relaxed);
        }
        if verdict.forward {
            if kind == MediaKind::Video && is_vp8_keyframe_start(&packet.payload) {
                // Before the fan-out: a subscriber that goes live after this point asks for a
                // new keyframe rather than waiting on this one.
                lock(&producer.keyframes).keyframe_forwarded();
            }
            let out = fan_out(producer.id, &consumers, &packet);
            counters.count_forwarded(kind, out.written);
            counters.count_dropped(DropReason::SubscriberQueueFull, out.queue_full);
            counters.count_dropped(DropReason::SubscriberClosed, out.closed);
        } else {
            // Only the floor gate holds a packet back.
            counters.count_dropped(DropReason::FloorGate, 1);
        }
    }
    tracing::debug!(producer = producer.id, "producer ended");
    let _ = ended.send(ProducerEnded { id: producer.id }).await;
}

async fn request_keyframes(
    track: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    pacer: Arc<Mutex<KeyframePacer>>,
    mut requests: mpsc::Receiver<KeyframeWanted>,
) {
    loop {
        let due = lock(&pacer).due();
        let wanted = tokio::select! {
            wanted = requests.recv() => match wanted {
                Some(wanted) => Some(wanted),
                None => break,
            },
            () = sleep_until(due), if due.is_some() => None,
        };
        let now = Instant::now();
        let send = {
            let mut pacer = lock(&pacer);
            match wanted {
                Some(who) => pacer.request(now, who),
                None => pacer.poll(now),
            }
        };
        if !send {
            continue;
        }
        lock(&pacer).sent(now);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
            break;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
    }
}
