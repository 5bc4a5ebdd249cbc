//! Media recovery: resumes restart ICE, failed peers show as reconnecting and time out.

use super::*;

fn connection_of(
    effects: &[Effect],
    who: &str,
    about: &str,
) -> Option<circle_protocol::Connection> {
    to(effects, who).iter().rev().find_map(|m| match m {
        S::ParticipantUpdated { participant } if participant.id == pid(about) => {
            Some(participant.connection)
        }
        _ => None,
    })
}

fn restarts(effects: &[Effect], who: &str) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::RestartIce { participant } if participant == &pid(who)))
        .count()
}

#[test]
fn a_resume_restarts_ice_on_the_participants_peers() {
    let mut r = group();
    r.disconnected(1_000, &pid("a"));
    let e = r.take_effects();
    assert_eq!(restarts(&e, "a"), 0, "no restart while the socket is gone");
    r.resume(&pid("a")).unwrap();
    let e = r.take_effects();
    assert_eq!(restarts(&e, "a"), 1);
    assert_eq!(
        connection_of(&e, "b", "a"),
        Some(circle_protocol::Connection::Connected)
    );
}

#[test]
fn a_failed_peer_shows_its_participant_reconnecting_and_restarts_subscribe() {
    use circle_protocol::{Connection, PcKind};
    let mut r = group();
    r.peer_state(1_000, &pid("a"), PcKind::Subscribe, false);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), Some(Connection::Reconnecting));
    assert_eq!(connection_of(&e, "f", "a"), Some(Connection::Reconnecting));
    assert_eq!(
        restarts(&e, "a"),
        1,
        "the server offers a restart on subscribe"
    );
    assert_eq!(r.poll_timeout(), Some(21_000));
    // The same failure reported again restarts nothing more.
    r.peer_state(1_500, &pid("a"), PcKind::Subscribe, false);
    assert!(r.take_effects().is_empty());
    // A failed publish waits for the browser's own re-offer.
    r.peer_state(2_000, &pid("b"), PcKind::Publish, false);
    let e = r.take_effects();
    assert_eq!(restarts(&e, "b"), 0);
    assert_eq!(connection_of(&e, "c", "b"), Some(Connection::Reconnecting));
}

#[test]
fn a_failed_peer_that_recovers_within_the_grace_keeps_its_participant() {
    use circle_protocol::{Connection, PcKind};
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    r.peer_state(1_000, &pid("a"), PcKind::Publish, false);
    r.peer_state(1_100, &pid("a"), PcKind::Subscribe, false);
    r.take_effects();
    r.peer_state(5_000, &pid("a"), PcKind::Publish, true);
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), None, "subscribe is still down");
    r.peer_state(6_000, &pid("a"), PcKind::Subscribe, true);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), Some(Connection::Connected));
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(60_000);
    assert!(r.is_admitted(&pid("a")));
    assert_eq!(
        r.snapshot(&pid("b")).unwrap().1.floor.holder,
        Some(pid("a"))
    );
}

#[test]
fn a_failed_peer_that_never_recovers_is_removed_when_the_grace_runs_out() {
    use circle_protocol::PcKind;
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    r.peer_state(1_000, &pid("a"), PcKind::Subscribe, false);
    r.take_effects();
    // A resume in between does not forgive a peer that is still down.
    r.disconnected(2_000, &pid("a"));
    r.resume(&pid("a")).unwrap();
    r.take_effects();
    assert_eq!(r.poll_timeout(), Some(21_000));
    r.handle_timeout(20_999);
    assert!(r.is_admitted(&pid("a")));
    r.handle_timeout(21_000);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert!(to(&e, "b").contains(&S::ParticipantLeft {
        participant: pid("a"),
        reason: LeaveReason::Timeout
    }));
    assert!(e.contains(&Effect::Gone {
        participant: pid("a")
    }));
    assert_eq!(floor(&e, "b").holder, None, "the stick comes back");
}

#[test]
fn a_second_hello_forgives_the_old_peers_failures() {
    use circle_protocol::PcKind;
    let mut r = group();
    r.peer_state(1_000, &pid("a"), PcKind::Publish, false);
    r.take_effects();
    r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "x".into(),
            role: Role::Member,
        },
    )
    .unwrap();
    r.check_invariants().unwrap();
    r.take_effects();
    assert_eq!(r.poll_timeout(), None);
    let (me, _) = r.snapshot(&pid("a")).unwrap();
    assert_eq!(me.connection, circle_protocol::Connection::Connected);
}

#[test]
fn peer_states_of_someone_waiting_or_unknown_change_nothing() {
    use circle_protocol::PcKind;
    let mut r = group();
    join(&mut r, "w", Role::Member);
    r.peer_state(1_000, &pid("w"), PcKind::Publish, false);
    r.peer_state(1_000, &pid("nobody"), PcKind::Publish, false);
    assert!(r.take_effects().is_empty());
    assert_eq!(r.poll_timeout(), None);
}
