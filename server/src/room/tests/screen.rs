//! Screen share (protocol.md, "Screen share"): who may share, what the room is told, and the
//! screen gate the media path is given.

use super::*;

fn share(track: Option<&str>) -> M {
    M::SetMedia {
        audio: true,
        video: true,
        screen: Some(track.map(str::to_owned)),
    }
}

/// The screen track the media path was last told for `who` in these effects: `Some(None)`
/// when it was told to stop, `None` when it was not told.
fn screen_gate(effects: &[Effect], who: &str) -> Option<Option<String>> {
    effects.iter().rev().find_map(|e| match e {
        Effect::ScreenGate { participant, track } if participant.as_str() == who => {
            Some(track.clone())
        }
        _ => None,
    })
}

/// `who`'s `screen` as the last `participant_updated` about them told `viewer`.
fn shown_sharing(effects: &[Effect], viewer: &str, who: &str) -> Option<bool> {
    to(effects, viewer).into_iter().rev().find_map(|m| match m {
        S::ParticipantUpdated { participant } if participant.id.as_str() == who => {
            Some(participant.screen)
        }
        _ => None,
    })
}

#[test]
fn a_facilitator_may_share_at_any_time_and_everyone_is_told() {
    let mut r = group();
    let e = req(&mut r, 0, "f", share(Some("scr-1")));
    assert_eq!(reply(&e, "f"), Ok(()));
    assert_eq!(screen_gate(&e, "f"), Some(Some("scr-1".to_owned())));
    for viewer in ["a", "b", "f"] {
        assert_eq!(shown_sharing(&e, viewer, "f"), Some(true), "{viewer}");
    }
    let e = req(&mut r, 0, "f", share(None));
    assert_eq!(screen_gate(&e, "f"), Some(None));
    assert_eq!(shown_sharing(&e, "a", "f"), Some(false));
}

#[test]
fn a_member_without_the_stick_may_not_share_and_nothing_changes() {
    let mut r = group();
    let e = req(&mut r, 0, "a", share(Some("scr-a")));
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Forbidden));
    assert_eq!(screen_gate(&e, "a"), None);
    assert_eq!(shown_sharing(&e, "b", "a"), None);
    // Open mode lets everyone speak, but a share still needs the stick.
    req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Open,
        },
    );
    let e = req(&mut r, 0, "a", share(Some("scr-a")));
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Forbidden));
}

#[test]
fn an_observer_never_shares() {
    let mut r = group();
    join(&mut r, "o", Role::Observer);
    req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("o"),
        },
    );
    let e = req(&mut r, 0, "o", share(Some("scr-o")));
    assert_eq!(reply(&e, "o"), Err(ErrorCode::Forbidden));
}

#[test]
fn a_share_must_name_a_track_id() {
    let mut r = group();
    for bad in ["", "two words", &"x".repeat(65)] {
        let e = req(&mut r, 0, "f", share(Some(bad)));
        assert_eq!(reply(&e, "f"), Err(ErrorCode::BadRequest), "{bad:?}");
        assert_eq!(screen_gate(&e, "f"), None);
    }
}

#[test]
fn a_member_holding_the_stick_shares_and_the_share_ends_when_the_stick_moves_on() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    let e = req(&mut r, 0, "a", share(Some("scr-a")));
    assert_eq!(reply(&e, "a"), Ok(()));
    assert_eq!(screen_gate(&e, "a"), Some(Some("scr-a".to_owned())));
    assert_eq!(shown_sharing(&e, "b", "a"), Some(true));

    let e = req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("b"),
        },
    );
    assert_eq!(
        screen_gate(&e, "a"),
        Some(None),
        "the media path stops a's share with the stick"
    );
    assert_eq!(shown_sharing(&e, "b", "a"), Some(false));
    assert_eq!(
        shown_sharing(&e, "a", "a"),
        Some(false),
        "a's client is told too"
    );
}

#[test]
fn a_holder_who_releases_the_stick_stops_sharing() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    req(&mut r, 0, "a", share(Some("scr-a")));
    let e = req(&mut r, 0, "a", M::ReleaseFloor);
    assert_eq!(screen_gate(&e, "a"), Some(None));
}

#[test]
fn set_media_without_screen_leaves_a_share_as_it_is() {
    let mut r = group();
    req(&mut r, 0, "f", share(Some("scr-1")));
    let e = req(
        &mut r,
        0,
        "f",
        M::SetMedia {
            audio: false,
            video: true,
            screen: None,
        },
    );
    assert_eq!(
        screen_gate(&e, "f"),
        None,
        "nothing told: the share goes on"
    );
    let shown = to(&e, "a").into_iter().find_map(|m| match m {
        S::ParticipantUpdated { participant } => Some(participant),
        _ => None,
    });
    let shown = shown.expect("the microphone change is announced");
    assert!(shown.screen && !shown.audio);
}

#[test]
fn a_sharer_who_leaves_takes_the_share_with_them() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    req(&mut r, 0, "a", share(Some("scr-a")));
    let e = req(&mut r, 0, "a", M::Leave);
    assert!(e
        .iter()
        .any(|e| matches!(e, Effect::Gone { participant } if participant.as_str() == "a")));
    // check_invariants (run by `req`) holds no screen for someone who has gone.
}

#[test]
fn a_new_tab_of_the_sharer_starts_without_the_old_tabs_share() {
    let mut r = group();
    req(&mut r, 0, "f", share(Some("scr-1")));
    let e = join(&mut r, "f", Role::Facilitator);
    assert_eq!(screen_gate(&e, "f"), Some(None));
    assert_eq!(shown_sharing(&e, "a", "f"), Some(false));
}
