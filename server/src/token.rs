//! Join tokens: HS256 JWTs signed with the server's secret, checked at join and minted by
//! `circle token` for local use.

use std::time::{SystemTime, UNIX_EPOCH};

use circle_protocol::{ParticipantId, Role, RoomId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How far in the future an `iat` may lie before the token is refused: clocks drift.
const IAT_SKEW_SECS: u64 = 60;

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
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
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
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
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
    if !(1..=64).contains(&claims.sub.chars().count()) {
        return Err(TokenError::BadClaim("sub"));
    }
    if !valid_room_id(&claims.room) {
        return Err(TokenError::BadClaim("room"));
    }
    if !(1..=64).contains(&claims.name.trim().chars().count()) {
        return Err(TokenError::BadClaim("name"));
    }
    Ok(())
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
