//! TURN credentials for clients: short-lived ones in the REST scheme coturn implements
//! (`use-auth-secret`; draft-uberti-behave-turn-rest-00), or a static pair for other services.
//! A username names an expiry and a random id, never who it was given to.

use base64::Engine;
use circle_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::{TurnConfig, TurnCredentials};

/// The REST username and password for credentials expiring at `expires` (Unix seconds):
/// `"<expires>:<opaque>"` and base64(HMAC-SHA1(secret, username)), which the TURN server checks
/// with the same secret and refuses after `expires`.
pub fn rest_credentials(secret: &[u8], expires: u64, opaque: &str) -> (String, String) {
    let username = format!("{expires}:{opaque}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

/// The TURN entry handed to a client now (Unix seconds), in the browser's `RTCIceServer` shape.
pub fn ice_server(turn: &TurnConfig, now: u64) -> IceServer {
    let (username, credential) = match &turn.credentials {
        TurnCredentials::Rest { secret, ttl } => {
            // 8 random bytes: enough to tell clients apart in the TURN server's own logs, and
            // nothing that links the credentials to a participant.
            let opaque = hex::encode(rand::random::<[u8; 8]>());
            rest_credentials(secret, now + ttl.as_secs(), &opaque)
        }
        TurnCredentials::Static {
            username,
            credential,
        } => (username.clone(), credential.clone()),
    };
    IceServer {
        urls: turn.urls.clone(),
        username: Some(username),
        credential: Some(credential),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rest_credentials_are_the_hmac_sha1_of_the_username_in_base64() {
        // Checked with: printf '1700000000:abc' | openssl dgst -sha1 -hmac s3cret -binary | base64
        assert_eq!(
            rest_credentials(b"s3cret", 1_700_000_000, "abc"),
            (
                "1700000000:abc".to_owned(),
                "7fjbb9kXxh7Rto8MZNnWJnSP8uE=".to_owned()
            )
        );
    }

    #[test]
    fn each_client_gets_fresh_credentials_that_expire_after_the_ttl() {
        let turn = TurnConfig {
            urls: vec!["turn:turn.example:3478?transport=udp".into()],
            credentials: TurnCredentials::Rest {
                secret: b"s3cret".to_vec(),
                ttl: Duration::from_secs(3600),
            },
        };
        let a = ice_server(&turn, 1_000);
        let b = ice_server(&turn, 1_000);
        let name = a.username.clone().unwrap();
        assert!(name.starts_with("4600:"), "{name}");
        assert_ne!(a.username, b.username, "two clients share no username");
        let (_, expected) = rest_credentials(b"s3cret", 4600, &name[5..]);
        assert_eq!(a.credential, Some(expected));
        assert_eq!(a.urls, turn.urls);
    }
}
