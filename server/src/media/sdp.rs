//! Plain-text SDP work the library does not do for us: the limits every client description must
//! meet before the library parses it, what the router checks in a browser's publish offer (how
//! many tracks, which extension id carries the audio level), and keeping the slots of tracks
//! that have gone in a subscribe answer.

use std::ops::RangeInclusive;

use crate::media::codec::AUDIO_LEVEL_URI;
use crate::media::MediaError;

/// The largest client description accepted. Chromium's offers are 3–6 KiB; the WebSocket's own
/// cap (256 KiB) would let one message carry thousands of lines for the library to parse.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// The most media sections a publish offer may have: it needs two (a microphone and a camera),
/// three with a screen share; sections of stopped tracks stay in later offers.
/// A subscribe answer may have as many as the server's offer had (`check_client_description`'s
/// `max_sections`).
pub(crate) const MAX_PUBLISH_SECTIONS: usize = 16;
/// RFC 8839 §5.4 allows 4 to 256 characters; browsers send 4 (Chromium) to 32, and the
/// fragment is repeated in every check's USERNAME, so the long end only serves an amplifier.
const UFRAG_CHARS: RangeInclusive<usize> = 4..=64;
/// RFC 8839 §5.4: 22 to 256 characters.
const PWD_CHARS: RangeInclusive<usize> = 22..=256;

/// An attribute line as the library's lexer reads it (rtc-sdp 0.21.1): lines end at `\n` only,
/// carriage returns before a line's type are skipped, the value is trimmed at both ends, and the
/// name ends at the first colon. `None` for any line that is not an attribute.
fn attribute(line: &str) -> Option<(&str, Option<&str>)> {
    let value = line.trim_start_matches('\r').strip_prefix("a=")?.trim();
    Some(match value.split_once(':') {
        Some((name, value)) => (name, Some(value)),
        None => (value, None),
    })
}

fn is_media_line(line: &str) -> bool {
    line.trim_start_matches('\r').starts_with("m=")
}

/// How many media sections (`m=` lines) a description has.
pub(crate) fn media_sections(sdp: &str) -> usize {
    sdp.split('\n').filter(|line| is_media_line(line)).count()
}

/// RFC 8839 §5.4: `ice-char = ALPHA / DIGIT / "+" / "/"`.
fn is_ice_chars(value: &str, lengths: RangeInclusive<usize>) -> bool {
    lengths.contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Checks a client's offer or answer against the limits the SFU sets before the library parses
/// it: its size, its number of media sections, and ICE credentials that are present (at session
/// or media level) and well formed (RFC 8839 §5.4). A description claiming ICE-lite is refused
/// too: browsers are full agents, and against a lite peer the server would become the
/// controlling agent (RFC 8445 §6.1.1), the one that sends checks of its own.
pub(crate) fn check_client_description(sdp: &str, max_sections: usize) -> Result<(), MediaError> {
    let refuse = |why: &str| Err(MediaError::BadSdp(why.to_owned()));
    if sdp.len() > MAX_DESCRIPTION_BYTES {
        return refuse("the description is too large");
    }
    let mut sections = 0;
    let mut ufrag = false;
    let mut pwd = false;
    for line in sdp.split('\n') {
        if is_media_line(line) {
            sections += 1;
            if sections > max_sections {
                return refuse("the description has too many media sections");
            }
            continue;
        }
        match attribute(line) {
            Some(("ice-ufrag", value)) => {
                if !value.is_some_and(|v| is_ice_chars(v, UFRAG_CHARS)) {
                    return refuse("the ICE username fragment is malformed");
                }
                ufrag = true;
            }
            Some(("ice-pwd", value)) => {
                if !value.is_some_and(|v| is_ice_chars(v, PWD_CHARS)) {
                    return refuse("the ICE password is malformed");
                }
                pwd = true;
            }
            Some(("ice-lite", _)) => return refuse("a browser is not an ICE-lite agent"),
            _ => {}
        }
    }
    if !ufrag || !pwd {
        return refuse("the description has no ICE credentials");
    }
    Ok(())
}

/// The parts of a publish offer the SFU relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishOffer {
    /// The RTP header extension id the browser uses for RFC 6464 audio levels, if offered.
    pub(crate) audio_level_id: Option<u8>,
    /// The `a=msid` track id of each video section that sends, in order (`None` for one
    /// without a track id).
    pub(crate) video_tracks: Vec<Option<String>>,
}

impl PublishOffer {
    /// Judges the offer's video against the screen share the rules allow (`screen`, the
    /// track id the participant announced): a camera, and the announced screen if any. Another
    /// video track is an unannounced screen, or a second one, and is refused as `forbidden`
    /// (protocol.md, "Screen share"). Returns the screen's track id when the offer sends it.
    pub(crate) fn screen_track(&self, screen: Option<&str>) -> Result<Option<String>, MediaError> {
        let is_screen = |track: &Option<String>| track.is_some() && track.as_deref() == screen;
        let screens = self.video_tracks.iter().filter(|t| is_screen(t)).count();
        let cameras = self.video_tracks.len() - screens;
        if screens > 1 {
            return Err(MediaError::BadSdp(
                "two sections send the same screen track".to_owned(),
            ));
        }
        if cameras > 1 {
            return Err(MediaError::Forbidden(if screen.is_none() {
                "a second video track is a screen share, which must be announced with set_media and allowed"
            } else {
                "a publish offer may send one camera and the one screen track announced"
            }));
        }
        Ok((screens == 1).then(|| screen.unwrap_or_default().to_owned()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Session,
    Audio,
    Video,
    Other,
}

/// The description without the client's candidates: its `a=candidate` and `a=end-of-candidates`
/// lines. The server is an ICE-lite agent (RFC 8445 §2.5) and learns the browser's address from
/// the browser's own checks, as a peer-reflexive candidate (RFC 8445 §7.3.1.3), so it never
/// needs an address a client names; and the library would act on any it is given (webrtc 0.21.1
/// opens a TCP connection to a passive TCP candidate whatever the engine's network types).
/// Names are matched without regard to case, which drops more than the library would read.
pub(crate) fn strip_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            !attribute(line).is_some_and(|(name, _)| {
                name.eq_ignore_ascii_case("candidate")
                    || name.eq_ignore_ascii_case("end-of-candidates")
            })
        })
        .collect()
}

/// Checks that an offer sends at most one audio track, and finds the audio level extension id
/// and the track id of each video section that sends (judged by [`PublishOffer::screen_track`]).
pub(crate) fn inspect_publish_offer(sdp: &str) -> Result<PublishOffer, MediaError> {
    let mut audio_senders = 0;
    let mut video_tracks = Vec::new();
    let mut audio_level_id = None;

    let mut section = Section::Session;
    let mut port_zero = false;
    let mut sending = true;
    let mut track: Option<String> = None;

    let mut close_section =
        |section: Section, port_zero: bool, sending: bool, track: Option<String>| {
            if port_zero || !sending {
                return;
            }
            match section {
                Section::Audio => audio_senders += 1,
                Section::Video => video_tracks.push(track),
                Section::Session | Section::Other => {}
            }
        };

    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            close_section(section, port_zero, sending, track.take());
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
        } else if let Some(msid) = line.strip_prefix("a=msid:") {
            // RFC 8830: `a=msid:<stream id> <track id>`; the track id is what `set_media`
            // announces.
            track = msid.split_whitespace().nth(1).map(str::to_owned);
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
    close_section(section, port_zero, sending, track.take());

    if audio_senders > 1 {
        return Err(MediaError::BadSdp(
            "a publish offer may send at most one audio track".to_owned(),
        ));
    }
    Ok(PublishOffer {
        audio_level_id,
        video_tracks,
    })
}

/// A browser's subscribe answer, with the sections our offer made inactive (the slots of tracks
/// that have gone) answered `recvonly` instead of `inactive`.
///
/// Why (found with the webrtc engine, since retired): with Chromium, which answers a freed slot `inactive`, the slot was
/// never taken by the next track: every newcomer got two new sections
/// (`tests/browser/recycled-slots.test.mjs` saw mids 2 and 3 where 0 and 1 were free). Answered
/// `recvonly`, the slot is reused. Where the webrtc 0.21.1 wrapper loses the slot is not traced:
/// rtc 0.21.1 itself stops a transceiver on an `inactive` section only in a remote *offer*, and
/// the engine on one port reuses slots either way (`mux/worker` tests). With nothing to send on
/// such a slot, "the browser would receive" changes nothing on the wire.
pub(crate) fn keep_freed_slots(offer: &str, answer: &str) -> String {
    let freed: Vec<&str> = sections(offer)
        .filter(|section| section.iter().any(|l| l.trim_end() == "a=inactive"))
        .filter_map(|section| section_mid(&section))
        .collect();
    if freed.is_empty() {
        return answer.to_owned();
    }
    let mut out = String::with_capacity(answer.len() + 8 * freed.len());
    for section in sections(answer) {
        let reuse = section_mid(&section).is_some_and(|mid| freed.contains(&mid));
        for line in section {
            if reuse && line.trim_end() == "a=inactive" {
                out.push_str(&line.replacen("a=inactive", "a=recvonly", 1));
            } else {
                out.push_str(line);
            }
        }
    }
    out
}

/// A description's lines (with their endings), grouped as the session part and then one group
/// per media section.
fn sections(sdp: &str) -> impl Iterator<Item = Vec<&str>> {
    let mut groups: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if is_media_line(line) {
            groups.push(Vec::new());
        }
        groups.last_mut().expect("never empty").push(line);
    }
    groups.into_iter()
}

fn section_mid<'a>(section: &[&'a str]) -> Option<&'a str> {
    section
        .iter()
        .find_map(|line| line.trim_end().strip_prefix("a=mid:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendrecv\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n";

    #[test]
    fn an_offer_with_one_audio_and_one_video_track_is_accepted() {
        let offer = inspect_publish_offer(OFFER).unwrap();
        assert_eq!(offer.audio_level_id, Some(1));
    }

    fn video_section(mid: u32, track: &str) -> String {
        format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{mid}\r\na=sendonly\r\na=msid:- {track}\r\n"
        )
    }

    fn with_videos(tracks: &[&str]) -> PublishOffer {
        let mut sdp = OFFER.replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n",
            "",
        );
        for (i, track) in tracks.iter().enumerate() {
            sdp.push_str(&video_section(i as u32 + 1, track));
        }
        inspect_publish_offer(&sdp).unwrap()
    }

    #[test]
    fn a_camera_and_the_announced_screen_are_accepted_and_the_screen_is_named() {
        let offer = with_videos(&["cam", "scr"]);
        assert_eq!(
            offer.screen_track(Some("scr")).unwrap(),
            Some("scr".to_owned())
        );
        assert_eq!(
            with_videos(&["cam"]).screen_track(Some("scr")).unwrap(),
            None
        );
        assert_eq!(
            with_videos(&["scr"]).screen_track(Some("scr")).unwrap(),
            Some("scr".to_owned())
        );
    }

    #[test]
    fn a_second_video_track_that_was_not_announced_is_forbidden() {
        let offer = with_videos(&["cam", "scr"]);
        assert!(matches!(
            offer.screen_track(None),
            Err(MediaError::Forbidden(_))
        ));
        assert!(matches!(
            offer.screen_track(Some("other")),
            Err(MediaError::Forbidden(_))
        ));
    }

    #[test]
    fn a_third_video_track_is_forbidden_even_beside_the_announced_screen() {
        let offer = with_videos(&["cam", "scr", "more"]);
        assert!(matches!(
            offer.screen_track(Some("scr")),
            Err(MediaError::Forbidden(_))
        ));
    }

    #[test]
    fn a_stopped_screen_section_does_not_count() {
        let mut sdp = OFFER.to_owned();
        sdp.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n");
        let offer = inspect_publish_offer(&sdp).unwrap();
        assert_eq!(offer.screen_track(None).unwrap(), None);
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

    /// Chromium's shape: credentials in every media section.
    const CHROMIUM_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:Xb3+\r\na=ice-pwd:0123456789abcdefghij+/\r\na=mid:0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:Xb3+\r\na=ice-pwd:0123456789abcdefghij+/\r\na=mid:1\r\n";

    fn refused(sdp: &str) -> bool {
        matches!(
            check_client_description(sdp, MAX_PUBLISH_SECTIONS),
            Err(MediaError::BadSdp(_))
        )
    }

    #[test]
    fn a_browsers_offer_meets_the_limits() {
        check_client_description(CHROMIUM_OFFER, MAX_PUBLISH_SECTIONS).unwrap();
    }

    #[test]
    fn credentials_at_session_level_are_enough() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
        check_client_description(sdp, MAX_PUBLISH_SECTIONS).unwrap();
    }

    #[test]
    fn an_offer_without_an_ice_ufrag_is_refused() {
        let sdp: String = CHROMIUM_OFFER
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("a=ice-ufrag"))
            .collect();
        assert!(refused(&sdp));
    }

    #[test]
    fn an_offer_without_an_ice_pwd_is_refused() {
        let sdp: String = CHROMIUM_OFFER
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("a=ice-pwd"))
            .collect();
        assert!(refused(&sdp));
    }

    #[test]
    fn an_ice_ufrag_of_more_than_64_characters_is_refused() {
        let longest = CHROMIUM_OFFER.replace("Xb3+", &"u".repeat(64));
        check_client_description(&longest, MAX_PUBLISH_SECTIONS).unwrap();
        let long = CHROMIUM_OFFER.replace("Xb3+", &"u".repeat(65));
        assert!(refused(&long));
        // The attack the review found: 250 characters, repeated in every check sent.
        assert!(refused(&CHROMIUM_OFFER.replace("Xb3+", &"u".repeat(250))));
    }

    #[test]
    fn an_ice_ufrag_of_fewer_than_4_characters_is_refused() {
        assert!(refused(&CHROMIUM_OFFER.replace("Xb3+", "Xb3")));
        assert!(refused(
            &CHROMIUM_OFFER.replace("a=ice-ufrag:Xb3+", "a=ice-ufrag")
        ));
    }

    #[test]
    fn an_ice_ufrag_with_characters_outside_ice_char_is_refused() {
        for bad in ["Xb3-", "Xb 3", "Xb3:", "Xb3\u{e9}"] {
            assert!(refused(&CHROMIUM_OFFER.replace("Xb3+", bad)), "{bad}");
        }
        // A space after the colon is part of the value as the library reads it.
        assert!(refused(
            &CHROMIUM_OFFER.replace("a=ice-ufrag:Xb3+", "a=ice-ufrag: Xb3+")
        ));
    }

    #[test]
    fn an_ice_pwd_outside_22_to_256_characters_is_refused() {
        let pwd = "0123456789abcdefghij+/";
        assert!(refused(&CHROMIUM_OFFER.replace(pwd, &pwd[1..])));
        check_client_description(
            &CHROMIUM_OFFER.replace(pwd, &"p".repeat(256)),
            MAX_PUBLISH_SECTIONS,
        )
        .unwrap();
        assert!(refused(&CHROMIUM_OFFER.replace(pwd, &"p".repeat(257))));
        assert!(refused(
            &CHROMIUM_OFFER.replace(pwd, "0123456789abcdefghij+-")
        ));
    }

    #[test]
    fn a_malformed_credential_in_any_section_is_refused() {
        // The library reads the first; every one must pass.
        let sdp = CHROMIUM_OFFER.replacen(
            "a=ice-ufrag:Xb3+\r\na=ice-pwd",
            "a=ice-ufrag:Xb3+\r\na=ice-ufrag:x\r\na=ice-pwd",
            1,
        );
        assert!(refused(&sdp));
    }

    #[test]
    fn a_publish_offer_with_more_than_16_media_sections_is_refused() {
        let section = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\n";
        let sixteen = format!("{CHROMIUM_OFFER}{}", section.repeat(14));
        check_client_description(&sixteen, MAX_PUBLISH_SECTIONS).unwrap();
        let seventeen = format!("{CHROMIUM_OFFER}{}", section.repeat(15));
        assert!(refused(&seventeen));
    }

    #[test]
    fn an_answer_may_have_as_many_sections_as_our_offer_and_no_more() {
        // A member of a full room of 16 receives 15 microphones and 15 cameras.
        let section = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n";
        let thirty = format!("{CHROMIUM_OFFER}{}", section.repeat(28));
        assert_eq!(media_sections(&thirty), 30);
        check_client_description(&thirty, 30).unwrap();
        assert!(matches!(
            check_client_description(&thirty, 29),
            Err(MediaError::BadSdp(_))
        ));
    }

    #[test]
    fn a_media_line_behind_a_carriage_return_still_counts() {
        // The library's lexer skips carriage returns before a line's type.
        let section = "\rm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(refused(&format!("{CHROMIUM_OFFER}{}", section.repeat(15))));
    }

    #[test]
    fn a_description_larger_than_64_kib_is_refused() {
        let padding = "a=x-padding:0123456789012345678901234567890123456789\r\n";
        let mut sdp = CHROMIUM_OFFER.to_owned();
        while sdp.len() + padding.len() <= MAX_DESCRIPTION_BYTES {
            sdp.push_str(padding);
        }
        check_client_description(&sdp, MAX_PUBLISH_SECTIONS).unwrap();
        sdp.push_str(padding);
        assert!(refused(&sdp));
    }

    #[test]
    fn a_clients_candidates_are_stripped_and_every_other_line_kept_as_it_was() {
        let sdp = format!(
            "{CHROMIUM_OFFER}a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n\
            a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive\n\
            a=end-of-candidates\r\na=rtcp-mux\r\n"
        );
        assert_eq!(
            strip_candidates(&sdp),
            format!("{CHROMIUM_OFFER}a=rtcp-mux\r\n")
        );
    }

    #[test]
    fn a_candidate_the_library_would_read_is_stripped_however_it_is_spelled() {
        // The library skips carriage returns before a line's type and trims the value.
        for line in [
            "\ra=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
            "a= candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
            "a=CANDIDATE:1 1 udp 1 127.0.0.1 9 typ host\r\n",
            "a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
        ] {
            let sdp = format!("{CHROMIUM_OFFER}{line}");
            assert_eq!(strip_candidates(&sdp), CHROMIUM_OFFER, "{line:?}");
        }
        // A line that only mentions candidates is not one.
        let other = format!("{CHROMIUM_OFFER}a=x-note:a=candidate:1\r\n");
        assert_eq!(strip_candidates(&other), other);
    }

    #[test]
    fn a_description_that_claims_ice_lite_is_refused() {
        let sdp = CHROMIUM_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n");
        assert!(refused(&sdp));
    }

    #[test]
    fn an_answer_keeps_the_slots_our_offer_freed_and_nothing_else() {
        let offer = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=inactive\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=mid:1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=sendonly\r\n";
        let answer = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=inactive\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=mid:1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=inactive\r\n";
        let kept = keep_freed_slots(offer, answer);
        assert_eq!(
            kept,
            "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=mid:1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=inactive\r\n",
            "a section the browser declines stays declined"
        );
        let plain = answer.replace("a=inactive", "a=recvonly");
        assert_eq!(keep_freed_slots(&plain, &plain), plain);
    }
}
