//! What the one media port needs to know of a datagram before any connection sees it: which
//! protocol it is (RFC 7983's first-byte ranges) and, for a STUN binding request, the local ICE
//! ufrag it names. Pure functions over bytes; nothing here allocates.

/// A datagram's protocol, by its first byte (RFC 7983 §7, as amended by RFC 9443).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0–3: STUN (RFC 8489).
    Stun,
    /// 20–63: DTLS.
    Dtls,
    /// 128–191: RTP or RTCP (SRTP and SRTCP once keyed).
    Rtp,
    /// Anything else (ZRTP, TURN channels, QUIC, garbage): nothing a WebRTC peer of ours sends.
    Other,
}

pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

/// RFC 8489 §5: every STUN message carries this after its type and length.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;
/// RFC 8489 §14.3: the USERNAME value is under 513 bytes.
const MAX_USERNAME: usize = 512;

/// What a datagram in STUN's range turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stun<'a> {
    /// A binding request naming `local_ufrag` (ours) in its USERNAME: an ICE connectivity
    /// check. Whether it is genuine is for the connection's agent to judge (MESSAGE-INTEGRITY).
    Check { local_ufrag: &'a str },
    /// A well-formed STUN message that is no check we could route by name (a response, an
    /// indication, a request without USERNAME).
    Other,
    /// Not a well-formed STUN message: wrong cookie, a length that does not add up, an
    /// attribute that runs past the end, a USERNAME that is no ICE username.
    Malformed,
}

/// Reads a datagram that [`classify`] called [`Kind::Stun`].
pub fn parse(datagram: &[u8]) -> Stun<'_> {
    if datagram.len() < HEADER || datagram[4..8] != MAGIC_COOKIE || datagram[0] & 0xC0 != 0 {
        return Stun::Malformed;
    }
    let kind = u16::from_be_bytes([datagram[0], datagram[1]]);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if length % 4 != 0 || HEADER + length != datagram.len() {
        return Stun::Malformed;
    }
    let mut rest = &datagram[HEADER..];
    let mut username = None;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Stun::Malformed;
        }
        let attribute = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = len.div_ceil(4) * 4;
        if rest.len() < 4 + padded {
            return Stun::Malformed;
        }
        // The first USERNAME counts (RFC 8489 §14: later duplicates are ignored).
        if attribute == USERNAME && username.is_none() {
            username = Some(&rest[4..4 + len]);
        }
        rest = &rest[4 + padded..];
    }
    if kind != BINDING_REQUEST {
        return Stun::Other;
    }
    let Some(username) = username else {
        return Stun::Other;
    };
    match local_ufrag(username) {
        Some(local_ufrag) => Stun::Check { local_ufrag },
        None => Stun::Malformed,
    }
}

/// RFC 8445 §7.2.2: a check's USERNAME is "receiver's ufrag:sender's ufrag", so in a check we
/// receive the part before the colon is ours. Both parts are ice-chars (RFC 8839 §5.4).
fn local_ufrag(username: &[u8]) -> Option<&str> {
    if username.len() > MAX_USERNAME {
        return None;
    }
    let colon = username.iter().position(|&b| b == b':')?;
    let (local, remote) = (&username[..colon], &username[colon + 1..]);
    let ice_chars = |part: &[u8]| {
        !part.is_empty()
            && part
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    if !ice_chars(local) || !ice_chars(remote) {
        return None;
    }
    std::str::from_utf8(local).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A STUN message of `kind` with the given attributes, each padded to four bytes.
    pub(crate) fn message(kind: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (attribute, value) in attributes {
            body.extend_from_slice(&attribute.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE);
        out.extend_from_slice(&[7; 12]);
        out.extend_from_slice(&body);
        out
    }

    pub(crate) fn check(username: &str) -> Vec<u8> {
        // PRIORITY and ICE-CONTROLLING as a browser sends them, around the USERNAME.
        message(
            BINDING_REQUEST,
            &[
                (0x0024, &[0, 0, 0, 1]),
                (USERNAME, username.as_bytes()),
                (0x802A, &[1; 8]),
            ],
        )
    }

    #[test]
    fn the_first_byte_tells_stun_dtls_and_rtp_apart() {
        assert_eq!(classify(&[0, 1]), Kind::Stun);
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 111]), Kind::Rtp);
        assert_eq!(classify(&[0xBF]), Kind::Rtp);
        assert_eq!(classify(&[64]), Kind::Other);
        assert_eq!(classify(&[0xFF]), Kind::Other);
        assert_eq!(classify(&[]), Kind::Other);
    }

    #[test]
    fn a_check_names_our_ufrag_before_the_colon() {
        assert_eq!(
            parse(&check("srvUfrag:browserUfrag")),
            Stun::Check {
                local_ufrag: "srvUfrag"
            }
        );
        // An odd-length USERNAME is padded; the ufrag is read from the declared length.
        assert_eq!(
            parse(&check("abcde:fgh")),
            Stun::Check {
                local_ufrag: "abcde"
            }
        );
    }

    #[test]
    fn responses_indications_and_requests_without_a_username_route_by_address() {
        assert_eq!(parse(&message(0x0101, &[(USERNAME, b"a:b")])), Stun::Other);
        assert_eq!(parse(&message(0x0011, &[])), Stun::Other);
        assert_eq!(
            parse(&message(BINDING_REQUEST, &[(0x0024, &[0; 4])])),
            Stun::Other
        );
    }

    #[test]
    fn a_message_that_does_not_add_up_is_malformed() {
        let good = check("aaaa:bbbb");
        let mut cookie = good.clone();
        cookie[4] ^= 1;
        assert_eq!(parse(&cookie), Stun::Malformed);
        assert_eq!(
            parse(&good[..good.len() - 4]),
            Stun::Malformed,
            "length disagrees"
        );
        let mut long_attribute = good.clone();
        long_attribute[HEADER + 2] = 0xFF;
        assert_eq!(
            parse(&long_attribute),
            Stun::Malformed,
            "attribute past the end"
        );
        assert_eq!(parse(&good[..12]), Stun::Malformed, "shorter than a header");
        let mut top_bits = good.clone();
        top_bits[0] |= 0x40;
        assert_eq!(parse(&top_bits), Stun::Malformed);
    }

    #[test]
    fn a_username_that_is_no_ice_username_is_malformed() {
        for username in ["nocolon", ":remote", "local:", "lo cal:remote", "l\u{e9}:r"] {
            assert_eq!(parse(&check(username)), Stun::Malformed, "{username:?}");
        }
        let long = format!("{}:b", "a".repeat(600));
        assert_eq!(parse(&check(&long)), Stun::Malformed);
    }
}
