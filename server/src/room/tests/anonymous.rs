//! Reactions and check-ins, whose counts must never reveal a sender, and help requests only facilitators see.

use super::*;

#[test]
fn reactions_are_counted_per_window_and_name_nobody() {
    let mut r = group();
    let e = req(
        &mut r,
        100,
        "a",
        M::React {
            kind: ReactionKind::Heart,
        },
    );
    assert_eq!(
        to(&e, "b"),
        vec![],
        "nothing is sent before the window closes"
    );
    req(
        &mut r,
        200,
        "b",
        M::React {
            kind: ReactionKind::Heart,
        },
    );
    req(
        &mut r,
        300,
        "f",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(r.poll_timeout(), Some(2_100));
    r.handle_timeout(2_100);
    let e = r.take_effects();
    for who in ["f", "a", "b", "c"] {
        match &to(&e, who)[..] {
            [S::Reactions { counts }] => {
                assert_eq!(counts[&ReactionKind::Heart], 2);
                assert_eq!(counts[&ReactionKind::MeToo], 1);
            }
            other => panic!("{who} got {other:?}"),
        }
    }
}

#[test]
fn a_sixth_reaction_within_a_second_is_rate_limited() {
    let mut r = group();
    for i in 0..5 {
        let e = req(
            &mut r,
            1_000 + i,
            "a",
            M::React {
                kind: ReactionKind::Thanks,
            },
        );
        assert_eq!(reply(&e, "a"), Ok(()));
    }
    let e = req(
        &mut r,
        1_500,
        "a",
        M::React {
            kind: ReactionKind::Thanks,
        },
    );
    assert_eq!(reply(&e, "a"), Err(ErrorCode::RateLimited));
    let e = req(
        &mut r,
        2_001,
        "a",
        M::React {
            kind: ReactionKind::Thanks,
        },
    );
    assert_eq!(reply(&e, "a"), Ok(()));
}

/// A facilitator `f` and admitted members `a`, `b`, `c`, `d`.
fn group_of_four() -> Room {
    let mut r = group();
    join(&mut r, "d", Role::Member);
    req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("d"),
        },
    );
    r
}

/// Opens a check-in with `options` choices, has each `(member, option)` answer, closes it and
/// returns the result member `a` received.
fn check_in_result(r: &mut Room, options: usize, answers: &[(&str, u32)]) -> S {
    let e = req(
        r,
        0,
        "f",
        M::StartCheckIn {
            question: "How are you?".into(),
            options: (0..options).map(|i| format!("option {i}")).collect(),
        },
    );
    let S::CheckIn(open) = &to(&e, "a")[0] else {
        panic!()
    };
    let id = open.check_in.clone();
    for (m, o) in answers {
        let e = req(
            r,
            0,
            m,
            M::AnswerCheckIn {
                check_in: id.clone(),
                option: *o,
            },
        );
        assert_eq!(to(&e, "f"), vec![], "an answer tells nobody else anything");
    }
    let e = req(r, 0, "f", M::CloseCheckIn { check_in: id });
    to(&e, "a")
        .into_iter()
        .find(|m| matches!(m, S::CheckInResult { .. }))
        .expect("everyone gets the result")
}

fn counts_of(result: &S) -> (Option<Vec<u32>>, u32) {
    let S::CheckInResult {
        counts, responses, ..
    } = result
    else {
        panic!("{result:?}")
    };
    (counts.clone(), *responses)
}

#[test]
fn check_in_counts_are_published_only_above_the_threshold() {
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 0), ("b", 1)]);
    assert_eq!(counts_of(&result), (None, 2));
    // Answering again replaces: a's first answer no longer counts.
    let result = check_in_result(
        &mut r,
        2,
        &[("a", 1), ("b", 1), ("c", 0), ("a", 0), ("d", 1)],
    );
    assert_eq!(counts_of(&result), (Some(vec![2, 2]), 4));
}

#[test]
fn a_unanimous_check_in_publishes_no_counts() {
    // Three members all answered "struggling": counts [0, 3] would tell everyone each answer.
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 1), ("b", 1), ("c", 1)]);
    assert_eq!(counts_of(&result), (None, 3));
}

#[test]
fn a_check_in_where_all_but_one_agree_publishes_no_counts() {
    // [2, 1]: the one who chose otherwise would learn both others' answers.
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 0), ("b", 0), ("c", 1)]);
    assert_eq!(counts_of(&result), (None, 3));
    let result = check_in_result(&mut r, 3, &[("a", 0), ("b", 0), ("c", 0), ("d", 2)]);
    assert_eq!(counts_of(&result), (None, 4));
    // Spread over three options, three answers reveal nobody's.
    let result = check_in_result(&mut r, 3, &[("a", 0), ("b", 1), ("c", 2)]);
    assert_eq!(counts_of(&result), (Some(vec![1, 1, 1]), 3));
}

#[test]
fn reactions_are_refused_while_fewer_than_three_are_in_the_room() {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("a"),
        },
    );
    // With two people, each knows any reaction they did not send came from the other.
    for who in ["a", "f"] {
        let e = req(
            &mut r,
            10,
            who,
            M::React {
                kind: ReactionKind::MeToo,
            },
        );
        assert_eq!(reply(&e, who), Err(ErrorCode::Conflict));
    }
    assert_eq!(r.poll_timeout(), None, "no reaction window was opened");
    // Someone reconnecting is shown as away: they do not count as a possible sender.
    join(&mut r, "b", Role::Member);
    req(
        &mut r,
        20,
        "f",
        M::Admit {
            participant: pid("b"),
        },
    );
    r.disconnected(30, &pid("b"));
    let e = req(
        &mut r,
        40,
        "a",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Conflict));
    r.resume(&pid("b")).unwrap();
    let e = req(
        &mut r,
        50,
        "a",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(reply(&e, "a"), Ok(()));
}

#[test]
fn need_help_reaches_facilitators_only() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "a",
        M::NeedHelp {
            note: Some("a moment".into()),
        },
    );
    assert!(to(&e, "f").contains(&S::HelpRequested {
        participant: pid("a"),
        note: Some("a moment".into())
    }));
    assert!(to(&e, "b").is_empty() && to(&e, "c").is_empty());
}
