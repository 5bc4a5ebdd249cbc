//! The codec facts the whole media plane shares: the two codecs (Opus and VP8), the payload
//! types the server writes, and the one header extension it reads.

use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RtpCodecKind};

/// Payload types the server offers on `subscribe` and therefore writes on every egress leg.
/// They match Chromium's usual numbers so answers rarely need remapping in the browser.
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;
pub(crate) const VP8_PAYLOAD_TYPE: u8 = 96;

pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// What a track carries: a microphone (Opus), a camera or a shared screen (both VP8). A
/// participant publishes at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    Screen,
}

impl MediaKind {
    pub const ALL: [MediaKind; 3] = [MediaKind::Audio, MediaKind::Video, MediaKind::Screen];

    /// A camera or a screen: VP8, keyframes, NACKs.
    pub fn is_video(self) -> bool {
        self != MediaKind::Audio
    }

    /// The kind as a metrics label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Screen => "screen",
        }
    }

    /// A dense index, for per-kind arrays of counters.
    pub(crate) fn index(self) -> usize {
        match self {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
            MediaKind::Screen => 2,
        }
    }

    pub(crate) fn codec(self) -> RTCRtpCodec {
        match self {
            MediaKind::Audio => opus(),
            MediaKind::Video | MediaKind::Screen => vp8(),
        }
    }

    pub(crate) fn payload_type(self) -> u8 {
        match self {
            MediaKind::Audio => OPUS_PAYLOAD_TYPE,
            MediaKind::Video | MediaKind::Screen => VP8_PAYLOAD_TYPE,
        }
    }

    pub(crate) fn rtp_kind(self) -> RtpCodecKind {
        match self {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video | MediaKind::Screen => RtpCodecKind::Video,
        }
    }
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

pub(crate) fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub(crate) fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ],
    }
}
