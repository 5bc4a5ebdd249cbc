//! Join tokens: HS256 JWTs signed with the server's secret, checked at join and minted by
//! `circle token` for local use.

use std::time::{SystemTime, UNIX_EPOCH};

use circle_protocol::{ParticipantId, Role, RoomId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How far in the future an `iat` may lie before the token is refused: clocks drift.
const IAT_SKEW_SECS: u64 = 60;

/// The shortest token secret the server runs with. HS256 keys are as strong as their entropy, and
/// a short secret can be recovered offline from one join link: RFC 7518 §3.2 requires a key at
/// least as long as the hash output (32 bytes).
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest lifetime a token may claim by default: a clinic mints links for a day's sessions.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// The claims protocol.md names; anything else in the token is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub room: String,
    pub role: Role,
    pub name: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// A verified token, its fields checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub participant: ParticipantId,
    pub room: RoomId,
    pub role: Role,
    pub name: String,
}

/// Why a token was refused. The message never repeats the token or its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the join link has expired")]
    Expired,
    #[error("the join link is not valid yet")]
    NotYetValid,
    #[error("the join token is not valid")]
    Invalid,
    #[error("the join token has a bad `{0}` claim")]
    BadClaim(&'static str),
    #[error("the join token is valid for longer than this server allows")]
    TooLong,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The longest `exp` − `iat` (or `exp` − now, without `iat`) accepted.
    max_lifetime_secs: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self::with_max_lifetime(secret, DEFAULT_MAX_LIFETIME_SECS)
    }

    /// Keys that also refuse tokens claiming a lifetime over `max_lifetime_secs`, so that no
    /// link outlives the removals the server remembers (see `registry::Bans`).
    pub fn with_max_lifetime(secret: &[u8], max_lifetime_secs: u64) -> Self {
        // Pinning the algorithm refuses `none` and every asymmetric algorithm outright.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            max_lifetime_secs,
        }
    }

    /// The longest lifetime a token may claim, in seconds.
    pub fn max_lifetime_secs(&self) -> u64 {
        self.max_lifetime_secs
    }

    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        // RFC 7515 §4.1.11: a recipient that does not understand every extension listed in
        // `crit` must reject the token. This server understands none.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.crit.is_some() {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        if claims
            .iat
            .is_some_and(|iat| iat > unix_now() + IAT_SKEW_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
        // Without `iat` the lifetime left is all the server can judge; with it, the whole span.
        let issued = claims.iat.unwrap_or_else(unix_now);
        if claims.exp.saturating_sub(issued) > self.max_lifetime_secs {
            return Err(TokenError::TooLong);
        }
        validate_claims(&claims)?;
        Ok(Identity {
            participant: ParticipantId(claims.sub),
            room: RoomId(claims.room),
            role: claims.role,
            name: claims.name,
        })
    }

    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }
}

/// Checks the claims' shapes; shared with `circle token` so it never mints what join refuses.
pub fn validate_claims(claims: &Claims) -> Result<(), TokenError> {
    if !(1..=64).contains(&claims.sub.chars().count()) || !displayable(&claims.sub) {
        return Err(TokenError::BadClaim("sub"));
    }
    if !valid_room_id(&claims.room) {
        return Err(TokenError::BadClaim("room"));
    }
    if !(1..=64).contains(&claims.name.trim().chars().count()) || !displayable(&claims.name) {
        return Err(TokenError::BadClaim("name"));
    }
    Ok(())
}

/// Text every other participant's screen shows as it is: no control characters (NUL, newlines,
/// escapes) and no bidirectional formatting, which can make a name read as someone else's or
/// reverse the text after it (CVE-2021-42574, "Trojan Source").
fn displayable(text: &str) -> bool {
    !text.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            )
    })
}

pub fn valid_room_id(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "m-1".into(),
            room: "tuesday".into(),
            role: Role::Member,
            name: "River".into(),
            exp: unix_now() + 600,
            nbf: None,
            iat: Some(unix_now()),
        }
    }

    #[test]
    fn a_minted_token_verifies() {
        let keys = TokenKeys::new(b"secret");
        let id = keys.verify(&keys.mint(&claims())).unwrap();
        assert_eq!(id.participant.as_str(), "m-1");
        assert_eq!(id.role, Role::Member);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let mut c = claims();
        c.exp = unix_now() - 1;
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_from_the_future_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let mut c = claims();
        c.nbf = Some(unix_now() + 300);
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::NotYetValid));
        let mut c = claims();
        c.iat = Some(unix_now() + 3600);
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::NotYetValid));
    }

    #[test]
    fn another_secret_or_algorithm_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let other = TokenKeys::new(b"other");
        assert_eq!(
            keys.verify(&other.mint(&claims())),
            Err(TokenError::Invalid)
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs512), Err(TokenError::Invalid));
        // alg "none": header {"alg":"none","typ":"JWT"} with no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtLTEifQ.";
        assert_eq!(keys.verify(none), Err(TokenError::Invalid));
    }

    #[test]
    fn bad_claims_are_refused() {
        let keys = TokenKeys::new(b"secret");
        let mut c = claims();
        c.room = "no spaces".into();
        assert_eq!(
            keys.verify(&keys.mint(&c)),
            Err(TokenError::BadClaim("room"))
        );
        let mut c = claims();
        c.sub = "x".repeat(65);
        assert_eq!(
            keys.verify(&keys.mint(&c)),
            Err(TokenError::BadClaim("sub"))
        );
        let mut c = claims();
        c.name = String::new();
        assert_eq!(
            keys.verify(&keys.mint(&c)),
            Err(TokenError::BadClaim("name"))
        );
    }

    #[test]
    fn a_token_with_a_crit_header_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".into()]);
        let token =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"secret")).unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_valid_for_longer_than_the_cap_is_refused() {
        let keys = TokenKeys::with_max_lifetime(b"secret", 3600);
        let mut c = claims();
        c.exp = u64::MAX;
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::TooLong));
        // Without `iat`, the lifetime left counts.
        let mut c = claims();
        c.iat = None;
        c.exp = unix_now() + 3700;
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::TooLong));
        // An old token near its end is still judged by its whole span.
        let mut c = claims();
        c.iat = Some(unix_now() - 7200);
        c.exp = unix_now() + 60;
        assert_eq!(keys.verify(&keys.mint(&c)), Err(TokenError::TooLong));
        let mut c = claims();
        c.exp = unix_now() + 3600;
        assert!(keys.verify(&keys.mint(&c)).is_ok());
    }

    #[test]
    fn names_with_control_or_bidirectional_characters_are_refused() {
        let keys = TokenKeys::new(b"secret");
        for name in [
            "Ri\0ver",
            "River\nFacilitator",
            "\u{1b}[31mRiver",
            "\u{202E}reviR",
            "Ri\u{2066}ver",
            "River\u{200F}",
        ] {
            let mut c = claims();
            c.name = name.into();
            assert_eq!(
                keys.verify(&keys.mint(&c)),
                Err(TokenError::BadClaim("name")),
                "{name:?}"
            );
        }
        let mut c = claims();
        c.sub = "m\u{0}1".into();
        assert_eq!(
            keys.verify(&keys.mint(&c)),
            Err(TokenError::BadClaim("sub"))
        );
        // Letters of every script, emoji and ordinary punctuation stay welcome.
        let mut c = claims();
        c.name = "Zoë 李 (she/her) 🌱".into();
        assert!(keys.verify(&keys.mint(&c)).is_ok());
    }

    #[test]
    fn a_token_without_a_role_is_refused() {
        let keys = TokenKeys::new(b"secret");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub":"a","room":"r","name":"n","exp": unix_now() + 60}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
    }
}
