//! The router: a room's media, as the room's task holds it. The synchronous [`Router`] handle
//! checks every request (what a client may send, and what its description may hold), keeps the
//! floor gates and the participants' epochs, and passes the rest to the engine's room
//! (`mux::room`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use circle_protocol::{ParticipantId, PcKind, SdpType};

use crate::media::leg::SubscribeState;
use crate::media::mux::room::{Gates, MuxRoom};
use crate::media::sdp::{
    check_client_description, inspect_publish_offer, strip_candidates, MAX_PUBLISH_SECTIONS,
};
use crate::media::{lock, MediaError, Signal};

static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

struct Member {
    epoch: u64,
    publishes: bool,
    subscribe: Arc<SubscribeState>,
}

/// A room's media router. Owned by the room's task; no method blocks or awaits.
pub struct Router {
    room: MuxRoom,
    closed: bool,
    participants: HashMap<ParticipantId, Member>,
    /// Gates outlive a participant's media (a republished microphone keeps its gate) and may
    /// be set before it exists. Behind a mutex only because `set_audio_gate` takes `&self`;
    /// the room's task is the only user.
    gates: Mutex<HashMap<ParticipantId, Gates>>,
    /// The screen-share track each sharer announced and the rules allow: a publish offer may
    /// send it besides a camera.
    screens: HashMap<ParticipantId, String>,
}

impl Router {
    pub(crate) fn new(room: MuxRoom) -> Router {
        Router {
            room,
            closed: false,
            participants: HashMap::new(),
            gates: Mutex::new(HashMap::new()),
            screens: HashMap::new(),
        }
    }

    /// Starts a participant's peers: `subscribe` always, `publish` if they may publish. The
    /// audio gate starts closed unless it was already set: the room opens it.
    pub fn add_participant(&mut self, id: ParticipantId, may_publish: bool) {
        if self.closed {
            return;
        }
        // A second add replaces the first (a rejoin); the gate the room set is kept.
        let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
        let subscribe = Arc::new(SubscribeState::default());
        let gates = self.gates(&id);
        self.room
            .add(id.clone(), epoch, may_publish, gates, subscribe.clone());
        self.participants.insert(
            id,
            Member {
                epoch,
                publishes: may_publish,
                subscribe,
            },
        );
    }

    /// Whether `epoch` names the participant's current peers (an event from peers a rejoin
    /// replaced is stale).
    pub fn is_current(&self, id: &ParticipantId, epoch: u64) -> bool {
        self.participants.get(id).is_some_and(|p| p.epoch == epoch)
    }

    /// Restarts ICE on the participant's `subscribe` peer: its next offer carries new
    /// credentials, sent as soon as no other offer is outstanding. The browser restarts
    /// `publish` itself, by offering again with new credentials, which the publish peer
    /// answers like any offer.
    pub fn restart_ice(&self, id: &ParticipantId) {
        self.room.restart_ice(id)
    }

    /// Closes both of a participant's peers and removes their tracks from everyone's
    /// subscribe connection (which re-offers).
    pub fn remove_participant(&mut self, id: &ParticipantId) {
        lock(&self.gates).remove(id);
        self.screens.remove(id);
        self.participants.remove(id);
        self.room.remove(id);
    }

    /// Opens or closes a participant's audio: read by their audio on every packet.
    pub fn set_audio_gate(&self, id: &ParticipantId, forward: bool) {
        self.gates(id).audio.store(forward, Ordering::Release);
    }

    /// The screen-share track the rules allow this participant (the `a=msid` track id they
    /// announced), or none: their publish offers may send it besides a camera, and it is
    /// forwarded only while allowed. Closing takes effect at the next packet.
    pub fn set_screen(&mut self, id: &ParticipantId, track: Option<String>) {
        let on = track.is_some();
        match track {
            Some(track) => self.screens.insert(id.clone(), track),
            None => self.screens.remove(id),
        };
        self.gates(id).screen.store(on, Ordering::Release);
        self.room.set_screen(id, on);
    }

    /// The heights at which `viewer` shows others' cameras: each is sent in the simulcast
    /// layer that fits, from its next keyframe.
    pub fn set_tile_sizes(&self, viewer: &ParticipantId, sizes: Vec<(ParticipantId, u32)>) {
        if self.participants.contains_key(viewer) {
            self.room.set_tile_sizes(viewer, sizes);
        }
    }

    /// Takes a client's `sdp` or `ice` message. Refuses what can be judged at once; the rest
    /// happens in the engine, whose failures arrive as [`RouterEvent::Error`](crate::media::RouterEvent).
    /// The client's candidates, trickled or inside a description, never reach the library.
    pub fn on_signal(&mut self, from: &ParticipantId, signal: Signal) -> Result<(), MediaError> {
        if self.closed {
            return Err(MediaError::Internal("the router is closed".to_owned()));
        }
        let member = self.participants.get(from).ok_or(MediaError::NotFound)?;
        match signal {
            Signal::Sdp {
                pc: PcKind::Publish,
                sdp_type,
                sdp,
            } => {
                if !member.publishes {
                    return Err(MediaError::Forbidden("observers do not publish"));
                }
                if sdp_type != SdpType::Offer {
                    return Err(MediaError::Conflict(
                        "the client offers on publish and the server answers",
                    ));
                }
                check_client_description(&sdp, MAX_PUBLISH_SECTIONS)?;
                let sdp = strip_candidates(&sdp);
                let offer = inspect_publish_offer(&sdp)?;
                let screen = offer.screen_track(self.screens.get(from).map(String::as_str))?;
                self.room
                    .publish_offer(from, sdp, offer.audio_level_id, screen)
            }
            Signal::Sdp {
                pc: PcKind::Subscribe,
                sdp_type,
                sdp,
            } => {
                if sdp_type != SdpType::Answer {
                    return Err(MediaError::Conflict(
                        "the server offers on subscribe and the client answers",
                    ));
                }
                if !member.subscribe.offer_outstanding.load(Ordering::Acquire) {
                    return Err(MediaError::Conflict("no subscribe offer is outstanding"));
                }
                let offered = member.subscribe.offered_sections.load(Ordering::Acquire);
                check_client_description(&sdp, offered)?;
                let sdp = strip_candidates(&sdp);
                self.room.subscribe_answer(from, sdp)
            }
            Signal::Ice { pc, .. } => {
                if pc == PcKind::Publish && !member.publishes {
                    return Err(MediaError::Forbidden("observers do not publish"));
                }
                // Accepted and dropped: the server is an ICE-lite agent (RFC 8445 §2.5) that
                // learns the browser's address from the browser's own checks, and the library
                // would send checks to, or open a TCP connection to, any address a client names.
                Ok(())
            }
        }
    }

    /// Closes every peer and stops the room's media. Later calls do nothing.
    pub fn close(&mut self) {
        self.closed = true;
        self.participants.clear();
        lock(&self.gates).clear();
        self.screens.clear();
        self.room.close();
    }

    fn gates(&self, id: &ParticipantId) -> Gates {
        lock(&self.gates).entry(id.clone()).or_default().clone()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.close();
    }
}
