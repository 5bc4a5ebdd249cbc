//! Synthetic RTP as a browser sends it: the client's codecs and payload types, local tracks,
//! Opus-like audio with RFC 6464 levels every 20 ms and VP8-like video every 33 ms, each payload
//! naming its sender so that a receiver can check routing.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::Track;

/// Browsers number their payload types differently from the server (111/96), so forwarding
/// must rewrite them.
pub const CLIENT_OPUS_PT: u8 = 109;
pub const CLIENT_VP8_PT: u8 = 98;
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

pub const QUIET: u8 = 127;
pub const LOUD: u8 = 20;

pub fn client_opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn client_vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// A stable SSRC-like number for `id`, different per `salt`.
pub(super) fn rand_u32(id: &str, salt: u32) -> u32 {
    id.bytes().fold(salt.wrapping_mul(2654435761), |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    }) & 0x0fff_ffff
}

pub fn local_track(
    id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    let name = if kind == RtpCodecKind::Audio {
        "mic"
    } else {
        "cam"
    };
    labelled_track(id, name, kind, codec, ssrc)
}

/// A local track of browser `id` labelled `name`, whose track id (`a=msid`) is `<name>-<id>`.
pub fn labelled_track(
    id: &str,
    name: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("local-{id}"),
        format!("{name}-{id}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// Opus-like: a packet every 20 ms with the audio level extension; the payload names the
/// sender so a receiver can check routing.
pub(super) async fn send_audio(track: Arc<TrackLocalStaticRTP>, id: String, level: Arc<AtomicU8>) {
    let ssrc = track.ssrcs().await[0];
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = 1000;
    let mut timestamp: u32 = 5000;
    loop {
        ticker.tick().await;
        let level = level.load(Ordering::Relaxed);
        let payload = Bytes::from(format!("A{id}"));
        // Not bound yet or closed: the packet is lost, as a browser's would be.
        let _ = write_opus(&track, ssrc, seq, timestamp, payload, level, level < QUIET).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
    }
}

/// Writes one Opus packet as a browser sends it: the client's payload type and the RFC 6464
/// audio level extension. Whether the track took it.
pub async fn write_opus(
    track: &TrackLocalStaticRTP,
    ssrc: u32,
    sequence_number: u16,
    timestamp: u32,
    payload: Bytes,
    level: u8,
    voice: bool,
) -> bool {
    let packet = rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: CLIENT_OPUS_PT,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    };
    let ext = HeaderExtension::AudioLevel(AudioLevelExtension { level, voice });
    track
        .write_rtp_with_extensions(packet, &[ext])
        .await
        .is_ok()
}

/// VP8-like: a frame every 33 ms in one packet.
/// VP8-like frames every 33 ms; the payload names the sender after `mark` (`V` for a camera,
/// `S` for a screen), so a receiver can check routing and tell a screen from a camera.
pub(super) async fn send_video(track: Arc<TrackLocalStaticRTP>, id: String, mark: char) {
    let ssrc = track.ssrcs().await[0];
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    let mut seq: u16 = 60000;
    let mut timestamp: u32 = 7;
    loop {
        ticker.tick().await;
        let mut payload = vec![0x10, 0x00];
        payload.extend_from_slice(format!("{mark}{id}").as_bytes());
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: CLIENT_VP8_PT,
                sequence_number: seq,
                timestamp,
                ssrc,
                marker: true,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        let _ = track.write_rtp(packet).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(3000);
    }
}

/// True when every step between consecutive sequence numbers is exactly one.
pub fn contiguous(seqs: &[u16]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}
