//! What a cluster keeps of a running room in Redis, so another node can carry it on when its
//! host dies: the rules state, the group session it belongs to, when each person arrived, and
//! a hash of each participant's resume token (the tokens themselves never leave the host).

use circle_protocol::ParticipantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::state::{Millis, RoomRecord};

/// Bumped when the shape changes: a node never carries on a room from a state it cannot read.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRoom {
    version: u32,
    pub session: String,
    pub started_at: Option<Millis>,
    pub since: Vec<(ParticipantId, Millis)>,
    /// Each admitted participant's resume token, hashed with [`token_hash`].
    pub resume: Vec<(ParticipantId, String)>,
    pub rules: RoomRecord,
}

impl StoredRoom {
    pub fn new(
        session: String,
        started_at: Option<Millis>,
        mut since: Vec<(ParticipantId, Millis)>,
        mut resume: Vec<(ParticipantId, String)>,
        rules: RoomRecord,
    ) -> Self {
        // Sorted, so that the same state always reads the same and is written once.
        since.sort();
        resume.sort();
        Self {
            version: VERSION,
            session,
            started_at,
            since,
            resume,
            rules,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a room's state serialises")
    }

    /// The state in `json`, when this node can read it.
    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str::<StoredRoom>(json)
            .ok()
            .filter(|s| s.version == VERSION)
    }
}

/// A resume token as the cluster keeps it: SHA-256, hex. Who reads Redis cannot take a seat.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
