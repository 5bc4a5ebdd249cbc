//! Join tokens for the tests and the tools: one secret of at least 32 bytes (the server refuses
//! shorter ones) and the claims every fake participant carries.

use std::time::Duration;

use circle_protocol::Role;
use circle_server::token::{unix_now, Claims, TokenKeys, MIN_SECRET_BYTES};

/// Mints join tokens with one secret; each lasts [`Minter::lasting`] (ten minutes unless set).
#[derive(Clone)]
pub struct Minter {
    keys: TokenKeys,
    lifetime: Duration,
}

impl Minter {
    /// Panics on a secret shorter than the server accepts.
    pub fn new(secret: &str) -> Minter {
        assert!(
            secret.len() >= MIN_SECRET_BYTES,
            "a token secret needs at least {MIN_SECRET_BYTES} bytes"
        );
        Minter {
            keys: TokenKeys::new(secret.as_bytes()),
            lifetime: Duration::from_secs(600),
        }
    }

    /// The same keys, minting tokens that last `lifetime`.
    pub fn lasting(mut self, lifetime: Duration) -> Minter {
        self.lifetime = lifetime;
        self
    }

    /// The claims of `sub` joining `room` as `role`, named "Name `sub`", valid from now.
    pub fn claims(&self, room: &str, sub: &str, role: Role) -> Claims {
        Claims {
            sub: sub.into(),
            room: room.into(),
            role,
            name: format!("Name {sub}"),
            exp: unix_now() + self.lifetime.as_secs(),
            nbf: None,
            iat: Some(unix_now()),
        }
    }

    /// A join token for `sub` in `room` as `role`.
    pub fn token(&self, room: &str, sub: &str, role: Role) -> String {
        self.mint(&self.claims(room, sub, role))
    }

    /// A token carrying exactly `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        self.keys.mint(claims)
    }
}

/// A secret nobody else knows, fresh for each call: 32 random bytes as 64 hex digits.
pub fn fresh_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            format!("{:016x}", h.finish())
        })
        .collect()
}
