//! The room gauges (`circle_rooms`, `circle_participants`, `circle_waiting`,
//! `circle_sessions_open`): each room's task holds a [`RoomGauges`] and tells it who is in the
//! room; the server-wide gauges are the sum of what every live room reports.

use circle_protocol::Role;
use prometheus_client::metrics::gauge::Gauge;

/// The server-wide room gauges, shared by every room's [`RoomGauges`]; handles to the same
/// atomics, so cloning is cheap.
#[derive(Debug, Clone)]
pub(super) struct RoomGaugeSet {
    pub(super) rooms: Gauge,
    /// By role in the order of [`super::ROLES`].
    pub(super) participants: [Gauge; 3],
    pub(super) waiting: Gauge,
    pub(super) sessions_open: Gauge,
}

/// Who is in one room, as the room gauges count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    admitted: [i64; 3],
    waiting: i64,
}

impl Presence {
    /// One more admitted participant (present or reconnecting) with this role.
    pub fn admitted(&mut self, role: Role) {
        self.admitted[role_index(role)] += 1;
    }

    /// One more person in the waiting room.
    pub fn waiting(&mut self) {
        self.waiting += 1;
    }
}

/// One room's share of the room gauges, held by the room's task. The room tells it what it
/// holds now and the server-wide gauges move by the difference; when it drops (however the
/// task ends) everything it still adds is taken back, so no room leaves a count behind.
#[derive(Debug)]
pub struct RoomGauges {
    gauges: RoomGaugeSet,
    counted: Presence,
    session_open: bool,
}

impl RoomGauges {
    /// Counts one more room, until the guard drops.
    pub(super) fn new(gauges: RoomGaugeSet) -> Self {
        gauges.rooms.inc();
        Self {
            gauges,
            counted: Presence::default(),
            session_open: false,
        }
    }
}

impl RoomGauges {
    /// Who is in the room now.
    pub fn set_presence(&mut self, now: Presence) {
        if now == self.counted {
            return;
        }
        for (i, gauge) in self.gauges.participants.iter().enumerate() {
            gauge.inc_by(now.admitted[i] - self.counted.admitted[i]);
        }
        self.gauges
            .waiting
            .inc_by(now.waiting - self.counted.waiting);
        self.counted = now;
    }

    /// Whether the room's session is in progress (from its first admission to its finish).
    pub fn set_session_open(&mut self, open: bool) {
        if open != self.session_open {
            self.gauges.sessions_open.inc_by(if open { 1 } else { -1 });
            self.session_open = open;
        }
    }
}

impl Drop for RoomGauges {
    fn drop(&mut self) {
        self.set_presence(Presence::default());
        self.set_session_open(false);
        self.gauges.rooms.dec();
    }
}

/// Where a role's count is in the per-role arrays: the order of [`super::ROLES`].
pub(super) fn role_index(role: Role) -> usize {
    match role {
        Role::Facilitator => 0,
        Role::Member => 1,
        Role::Observer => 2,
    }
}
