//! The recorder: turns room events into attendance records, audit entries and webhook events,
//! and writes them in batches on its own task, so no room ever waits on the database. Events a
//! burst brings are written in one transaction; a failed write is retried, never dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::{Actor, Moderation, Published, RoomEvent, Stamped, Subscription};
use crate::store::{Store, Write};
use crate::webhooks::deliver::{now_ms, Webhooks};
use crate::webhooks::queue::Pending;
use crate::webhooks::{self, finish_reason, left_reason, role_name, WebhookEvent};

/// Events written in one transaction at most.
const BATCH: usize = 1024;
/// How often running sessions are marked as still running (what a crash closes them at), besides
/// every event they have: a crash loses at most this much of anyone's presence.
const SEEN_EVERY: Duration = Duration::from_secs(30);

/// Where the recorder sends what it makes of the events.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// `None` with `--records off`: nothing is written anywhere.
    pub store: Option<Store>,
    pub webhooks: Option<Webhooks>,
}

impl Recorder {
    /// Runs until `stop`, then writes whatever the rooms published before it and returns. Call
    /// `stop` only once every room has closed, so that their last events are in.
    pub async fn run(self, mut events: Subscription, stop: CancellationToken) {
        let seq = AtomicU64::new(now_ms().saturating_mul(1000));
        let mut open: HashSet<String> = HashSet::new();
        let mut seen = tokio::time::interval(SEEN_EVERY);
        seen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => batch.push(event),
                    None => break,
                },
                _ = seen.tick() => {
                    let at = now_ms();
                    let writes: Vec<Write> = open
                        .iter()
                        .map(|session| Write::Seen { session: session.clone(), at })
                        .collect();
                    self.write(writes, Vec::new()).await;
                    continue;
                }
                () = stop.cancelled() => {
                    while let Some(event) = events.try_next() {
                        batch.push(event);
                    }
                    self.record(&batch, &seq, &mut open).await;
                    break;
                }
            }
            while batch.len() < BATCH {
                match events.try_next() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            self.record(&batch, &seq, &mut open).await;
        }
    }

    async fn record(&self, batch: &[Arc<Stamped>], seq: &AtomicU64, open: &mut HashSet<String>) {
        let mut writes = Vec::new();
        let mut hooks = Vec::new();
        for stamped in batch {
            match &stamped.event {
                RoomEvent::Started | RoomEvent::CarriedOn => {
                    open.insert(stamped.session.as_str().to_owned());
                }
                RoomEvent::Finished { .. } => {
                    open.remove(stamped.session.as_str());
                }
                _ => {}
            }
            if self.store.is_some() {
                writes.extend(writes_for(stamped));
            }
            if self.webhooks.is_some() {
                hooks.extend(webhooks::event_for(stamped));
                if matches!(stamped.event, RoomEvent::Finished { .. }) && self.store.is_some() {
                    // After the session's last writes, in the same transaction: a receiver
                    // that fetches the record on this event finds it complete.
                    hooks.push(webhooks::attendance_ready(
                        stamped.room.as_str(),
                        stamped.session.as_str(),
                        stamped.at,
                    ));
                }
            }
        }
        if self.store.is_some() {
            // Whatever a session did last is a moment it was still running: a crash closes
            // its open intervals no earlier than that.
            let mut last: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
            for stamped in batch {
                if open.contains(stamped.session.as_str()) {
                    let at = last.entry(stamped.session.as_str()).or_default();
                    *at = (*at).max(stamped.at);
                }
            }
            writes.extend(last.into_iter().map(|(session, at)| Write::Seen {
                session: session.to_owned(),
                at,
            }));
        }
        let pending = self.pending(hooks, seq);
        self.write(writes, pending).await;
    }

    /// Each webhook event once per receiver, numbered in order.
    fn pending(&self, events: Vec<WebhookEvent>, seq: &AtomicU64) -> Vec<Pending> {
        let Some(hooks) = &self.webhooks else {
            return Vec::new();
        };
        let at = now_ms();
        let mut pending = Vec::new();
        for event in events {
            let body = serde_json::to_string(&event).expect("webhook events serialize");
            let seq = seq.fetch_add(1, Ordering::Relaxed);
            for url in hooks.urls() {
                pending.push(Pending {
                    id: event.id.clone(),
                    url: url.clone(),
                    room: event.room.clone(),
                    seq,
                    body: body.clone(),
                    attempts: 0,
                    next_attempt_at: at,
                });
            }
        }
        pending
    }

    /// Writes records and webhook events together; retries until the store takes them, so
    /// nothing is lost to a database that is briefly away (events meanwhile wait on the bus).
    async fn write(&self, mut writes: Vec<Write>, pending: Vec<Pending>) {
        let Some(store) = &self.store else {
            if let Some(hooks) = &self.webhooks {
                if !pending.is_empty() {
                    hooks.push(pending);
                }
            }
            return;
        };
        let delivered_later = pending.clone();
        writes.extend(pending.into_iter().map(Write::from));
        if writes.is_empty() {
            return;
        }
        let mut pause = Duration::from_millis(100);
        loop {
            match store.apply(&writes).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "records: write failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
        if !delivered_later.is_empty() {
            if let Some(hooks) = &self.webhooks {
                hooks.push(delivered_later);
            }
        }
    }
}

/// What one event changes in the records. Waiting, and everything said or shown in the room,
/// is never recorded.
pub fn writes_for(stamped: &Stamped) -> Vec<Write> {
    let session = stamped.session.as_str().to_owned();
    let at = stamped.at;
    let write = match &stamped.event {
        RoomEvent::Started => Write::SessionStarted {
            session,
            room: stamped.room.as_str().to_owned(),
            at,
        },
        RoomEvent::Finished { reason } => Write::SessionEnded {
            session,
            at,
            reason: finish_reason(*reason),
        },
        RoomEvent::Waiting { .. } => return Vec::new(),
        RoomEvent::CarriedOn => Write::Seen { session, at },
        RoomEvent::Admitted { participant, role } => Write::Admitted {
            session,
            participant: participant.as_str().to_owned(),
            role: role_name(*role),
            at,
        },
        RoomEvent::Left {
            participant,
            reason,
            ..
        } => Write::Left {
            session,
            participant: participant.as_str().to_owned(),
            at,
            reason: left_reason(*reason),
        },
        RoomEvent::Reconnecting { participant } => Write::Dropped {
            session,
            participant: participant.as_str().to_owned(),
            at,
        },
        RoomEvent::Back { participant } => Write::Back {
            session,
            participant: participant.as_str().to_owned(),
        },
        RoomEvent::Published { participant, kind } => Write::Published {
            session,
            participant: participant.as_str().to_owned(),
            video: *kind == Published::Video,
        },
        RoomEvent::Moderated { by, action, target } => Write::Audit {
            id: webhooks::new_id(),
            at,
            room: stamped.room.as_str().to_owned(),
            session: Some(session),
            actor: match by {
                Actor::Facilitator(sub) => sub.as_str().to_owned(),
                Actor::Api => "api".to_owned(),
            },
            action: audit_action(*action),
            target: target.as_ref().map(|t| t.as_str().to_owned()),
        },
    };
    vec![write]
}

pub fn audit_action(action: Moderation) -> &'static str {
    match action {
        Moderation::Admitted => "admitted",
        Moderation::Denied => "denied",
        Moderation::Removed => "removed",
        Moderation::Muted => "muted",
        Moderation::Unmuted => "unmuted",
        Moderation::Locked => "locked",
        Moderation::Unlocked => "unlocked",
        Moderation::Ended => "ended",
    }
}

/// How long a running session may go unmarked before a cluster's nodes take it for one a
/// crash left open: three of its host's marks missed.
pub const UNSEEN_FOR: Duration = Duration::from_secs(3 * SEEN_EVERY.as_secs());

/// Sessions a crash left open are closed (at start-up, and in a cluster every minute); the
/// clinic's systems are told as if they had ended then. With `unseen_since`, only those no node
/// has marked as running since (Unix ms).
pub async fn recover(
    store: &Store,
    webhooks: Option<&Webhooks>,
    unseen_since: Option<u64>,
) -> Result<usize, crate::store::StoreError> {
    let recovered = store.recover(unseen_since).await?;
    if let Some(hooks) = webhooks {
        let seq = AtomicU64::new(now_ms().saturating_mul(1000));
        let recorder = Recorder {
            store: Some(store.clone()),
            webhooks: Some(hooks.clone()),
        };
        let mut events = Vec::new();
        for r in &recovered {
            events.push(webhooks::session_event(
                "room_finished",
                Some("server_shutdown"),
                &r.room,
                &r.session,
                r.ended_at,
            ));
            events.push(webhooks::attendance_ready(&r.room, &r.session, r.ended_at));
        }
        // Into the store only: the sender reads it in order, after what was pending before.
        let writes: Vec<Write> = recorder
            .pending(events, &seq)
            .into_iter()
            .map(Write::from)
            .collect();
        store.apply(&writes).await?;
    }
    Ok(recovered.len())
}
