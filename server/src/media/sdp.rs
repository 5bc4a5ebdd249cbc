//! Plain-text SDP work the library does not do for us: what the router checks in a browser's
//! publish offer (how many tracks, which extension id carries the audio level), and putting the
//! announced address into the server's candidates.

use std::net::IpAddr;

use crate::media::engine::AUDIO_LEVEL_URI;
use crate::media::MediaError;

/// The parts of a publish offer the SFU relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishOffer {
    /// The RTP header extension id the browser uses for RFC 6464 audio levels, if offered.
    pub(crate) audio_level_id: Option<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Session,
    Audio,
    Video,
    Other,
}

/// Checks that an offer sends at most one audio and one video track and finds the audio level
/// extension id.
pub(crate) fn inspect_publish_offer(sdp: &str) -> Result<PublishOffer, MediaError> {
    let mut audio_senders = 0;
    let mut video_senders = 0;
    let mut audio_level_id = None;

    let mut section = Section::Session;
    let mut port_zero = false;
    let mut sending = true;

    let mut close_section = |section: Section, port_zero: bool, sending: bool| {
        if port_zero || !sending {
            return;
        }
        match section {
            Section::Audio => audio_senders += 1,
            Section::Video => video_senders += 1,
            Section::Session | Section::Other => {}
        }
    };

    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            close_section(section, port_zero, sending);
            let mut fields = media.split_whitespace();
            section = match fields.next() {
                Some("audio") => Section::Audio,
                Some("video") => Section::Video,
                _ => Section::Other,
            };
            port_zero = fields.next() == Some("0");
            // RFC 3264: without a direction attribute a stream is sendrecv.
            sending = true;
        } else if line == "a=recvonly" || line == "a=inactive" {
            sending = false;
        } else if line == "a=sendrecv" || line == "a=sendonly" {
            sending = true;
        } else if let Some(extmap) = line.strip_prefix("a=extmap:") {
            if !matches!(section, Section::Audio | Section::Session) {
                continue;
            }
            let mut fields = extmap.split_whitespace();
            let (Some(id), Some(uri)) = (fields.next(), fields.next()) else {
                continue;
            };
            if uri != AUDIO_LEVEL_URI {
                continue;
            }
            // The id may carry a direction: "a=extmap:1/sendonly uri".
            let id = id.split('/').next().unwrap_or(id);
            if let Ok(id) = id.parse::<u8>() {
                audio_level_id.get_or_insert(id);
            }
        }
    }
    close_section(section, port_zero, sending);

    if audio_senders > 1 || video_senders > 1 {
        return Err(MediaError::BadSdp(
            "a publish offer may send at most one audio and one video track".to_owned(),
        ));
    }
    Ok(PublishOffer { audio_level_id })
}

/// Rewrites a candidate's connection address from `bound` to `announced` (1:1 NAT). Works on
/// a bare `candidate:` attribute and on an `a=candidate:` line; anything else is returned as is.
///
/// The library's host gatherer (webrtc 0.21.1) ignores `SettingEngine::with_nat_1to1_ips` and
/// announces the bound socket's address, so the SFU substitutes the public one itself.
pub(crate) fn announce_candidate(candidate: &str, bound: IpAddr, announced: IpAddr) -> String {
    let fields: Vec<&str> = candidate.split(' ').collect();
    let is_candidate = fields
        .first()
        .is_some_and(|f| f.starts_with("candidate:") || f.starts_with("a=candidate:"));
    if !is_candidate || fields.len() < 6 || fields[4].parse::<IpAddr>().ok() != Some(bound) {
        return candidate.to_owned();
    }
    let announced = announced.to_string();
    let mut fields = fields;
    fields[4] = &announced;
    fields.join(" ")
}

/// [`announce_candidate`] over every candidate line of a description, and the `c=` lines that
/// name the bound address.
pub(crate) fn announce_sdp(sdp: &str, bound: IpAddr, announced: IpAddr) -> String {
    let bound_c = format!(
        "c=IN {} {bound}",
        if bound.is_ipv4() { "IP4" } else { "IP6" }
    );
    let announced_c = format!(
        "c=IN {} {announced}",
        if announced.is_ipv4() { "IP4" } else { "IP6" }
    );
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body == bound_c {
            out.push_str(&announced_c);
        } else {
            out.push_str(&announce_candidate(body, bound, announced));
        }
        out.push_str(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: &str = "10.0.0.5";
    const PUBLIC: &str = "203.0.113.7";

    #[test]
    fn a_host_candidate_on_the_bound_address_announces_the_public_one() {
        let c = "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host";
        assert_eq!(
            announce_candidate(c, BOUND.parse().unwrap(), PUBLIC.parse().unwrap()),
            "candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
        );
        let other = "candidate:1 1 udp 2130706431 10.0.0.6 40000 typ host";
        assert_eq!(
            announce_candidate(other, BOUND.parse().unwrap(), PUBLIC.parse().unwrap()),
            other
        );
    }

    #[test]
    fn a_description_announces_the_public_address_in_candidates_and_connection_lines() {
        let sdp =
            "v=0\r\nc=IN IP4 10.0.0.5\r\na=candidate:1 1 udp 1 10.0.0.5 4 typ host\r\na=mid:0\r\n";
        assert_eq!(
            announce_sdp(sdp, BOUND.parse().unwrap(), PUBLIC.parse().unwrap()),
            "v=0\r\nc=IN IP4 203.0.113.7\r\na=candidate:1 1 udp 1 203.0.113.7 4 typ host\r\na=mid:0\r\n"
        );
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendrecv\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n";

    #[test]
    fn an_offer_with_one_audio_and_one_video_track_is_accepted() {
        let offer = inspect_publish_offer(OFFER).unwrap();
        assert_eq!(offer.audio_level_id, Some(1));
    }

    #[test]
    fn an_offer_with_two_sending_audio_tracks_is_refused() {
        let sdp = format!("{OFFER}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\n");
        assert!(matches!(
            inspect_publish_offer(&sdp),
            Err(MediaError::BadSdp(_))
        ));
    }

    #[test]
    fn inactive_and_rejected_sections_do_not_count_as_tracks() {
        let sdp = format!(
            "{OFFER}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n"
        );
        assert!(inspect_publish_offer(&sdp).is_ok());
    }

    #[test]
    fn an_extmap_with_a_direction_still_yields_its_id() {
        let sdp = OFFER.replace("extmap:1 ", "extmap:7/sendonly ");
        assert_eq!(inspect_publish_offer(&sdp).unwrap().audio_level_id, Some(7));
    }
}
