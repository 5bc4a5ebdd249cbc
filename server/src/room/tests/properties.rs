//! Random command sequences, checking every invariant after every step, and the anonymity of published counts.

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Join(usize, Role),
    Request(usize, M),
    Drop(usize),
    Resume(usize),
    PeerState(usize, bool, bool),
    Advance(u64),
}

const PEOPLE: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

fn any_person() -> impl Strategy<Value = usize> {
    0..PEOPLE.len()
}

fn any_message() -> impl Strategy<Value = M> {
    let p = || any_person().prop_map(|i| pid(PEOPLE[i]));
    prop_oneof![
        p().prop_map(|participant| M::Admit { participant }),
        p().prop_map(|participant| M::Deny { participant }),
        Just(M::AdmitAll),
        prop_oneof![Just(FloorMode::Open), Just(FloorMode::Stick)]
            .prop_map(|mode| M::SetFloorMode { mode }),
        p().prop_map(|participant| M::GrantFloor { participant }),
        Just(M::GrantNext),
        Just(M::RevokeFloor),
        proptest::option::of(1u32..5).prop_map(|seconds| M::SetTurnLimit { seconds }),
        p().prop_map(|participant| M::InviteToSpeak { participant }),
        proptest::option::of(p()).prop_map(|participant| M::LowerHand { participant }),
        p().prop_map(|participant| M::Mute { participant }),
        p().prop_map(|participant| M::Unmute { participant }),
        p().prop_map(|participant| M::Remove { participant }),
        any::<bool>().prop_map(|locked| M::LockRoom { locked }),
        Just(M::StartCheckIn {
            question: "q".into(),
            options: vec!["x".into(), "y".into(), "z".into()]
        }),
        Just(M::CloseCheckIn {
            check_in: CheckInId::from("c1")
        }),
        Just(M::RaiseHand { note: None }),
        Just(M::ReleaseFloor),
        p().prop_map(|to| M::PassFloor { to }),
        any::<bool>().prop_map(|accept| M::AnswerInvite { accept }),
        (0..6usize).prop_map(|k| M::React {
            kind: ReactionKind::ALL[k]
        }),
        Just(M::NeedHelp { note: None }),
        (0u32..3).prop_map(|option| M::AnswerCheckIn {
            check_in: CheckInId::from("c1"),
            option
        }),
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(None),
                Just(Some(None)),
                Just(Some(Some("screen-1".to_owned()))),
                Just(Some(Some("not a track id".to_owned()))),
            ]
        )
            .prop_map(|(audio, video, screen)| M::SetMedia {
                audio,
                video,
                screen
            }),
        (p(), 0u32..400).prop_map(|(participant, height)| M::TileSizes {
            sizes: vec![circle_protocol::TileSize {
                participant,
                height
            }]
        }),
        Just(M::Leave),
        Just(M::Ping),
    ]
}

fn any_step() -> impl Strategy<Value = Step> {
    let role = prop_oneof![
        Just(Role::Facilitator),
        Just(Role::Member),
        Just(Role::Member),
        Just(Role::Observer)
    ];
    prop_oneof![
        2 => (any_person(), role).prop_map(|(i, r)| Step::Join(i, r)),
        8 => (any_person(), any_message()).prop_map(|(i, m)| Step::Request(i, m)),
        1 => any_person().prop_map(Step::Drop),
        1 => any_person().prop_map(Step::Resume),
        1 => (any_person(), any::<bool>(), any::<bool>())
            .prop_map(|(i, publish, up)| Step::PeerState(i, publish, up)),
        2 => (0u64..30_000).prop_map(Step::Advance),
    ]
}

/// Whether any message to someone other than `sender` names them.
fn names_sender_to_others(effects: &[Effect], sender: &str) -> bool {
    let needle = format!("\"{sender}\"");
    effects.iter().any(|e| match e {
        Effect::Send { to, message } if to.as_str() != sender => {
            serde_json::to_string(message).unwrap().contains(&needle)
        }
        _ => false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_after_every_step(steps in proptest::collection::vec(any_step(), 1..80)) {
        let mut r = Room::new(RoomId::from("r"), RoomConfig { max_participants: 5, ..Default::default() });
        let mut now = 0u64;
        // The answers to the first check-in that were accepted, latest per person.
        let mut c1_answers: std::collections::HashMap<&str, usize> = Default::default();
        let mut told = Vec::new();
        for step in steps {
            match step {
                Step::Join(i, role) => {
                    let _ = r.join(now, Joiner { id: pid(PEOPLE[i]), name: "n".into(), role });
                }
                Step::Request(i, m) => {
                    let is_anonymous = matches!(m, M::React { .. } | M::AnswerCheckIn { .. });
                    let connected = r.snapshot(&pid(PEOPLE[i])).map_or(0, |(_, state)| {
                        state.participants.iter()
                            .filter(|p| p.connection == circle_protocol::Connection::Connected)
                            .count()
                    });
                    let answer = match &m {
                        M::AnswerCheckIn { check_in, option } if check_in.as_str() == "c1" => Some(*option),
                        _ => None,
                    };
                    let reacts = matches!(m, M::React { .. });
                    r.request(now, &pid(PEOPLE[i]), Some(7), m);
                    let effects = r.take_effects();
                    told.extend(events(&effects));
                    if is_anonymous {
                        prop_assert!(!names_sender_to_others(&effects, PEOPLE[i]),
                            "an anonymous act named its sender: {:?}", effects);
                    }
                    let accepted = effects.iter().any(|e| matches!(e,
                        Effect::Send { to, message: S::Ok { .. } } if to.as_str() == PEOPLE[i]));
                    if reacts && accepted {
                        prop_assert!(connected >= 3,
                            "a reaction was counted with {} people shown in the room", connected);
                    }
                    if let (Some(option), true) = (answer, accepted) {
                        c1_answers.insert(PEOPLE[i], option as usize);
                    }
                    for e in &effects {
                        if let Effect::Send { message: S::CheckInResult { check_in, counts: Some(counts), responses }, .. } = e {
                            if check_in.as_str() != "c1" { continue; }
                            prop_assert!(*responses >= 3);
                            // Whatever one answerer knows (their own choice, and in the worst
                            // case who else answered), the others' choices must not all fall
                            // on one option; and nobody outside learns a unanimous answer.
                            for (_, mine) in c1_answers.iter() {
                                let mut others = counts.clone();
                                others[*mine] -= 1;
                                prop_assert!(others.iter().all(|c| *c < responses - 1),
                                    "counts {:?} reveal the others' answers to one who chose {}", counts, mine);
                            }
                            prop_assert!(counts.iter().all(|c| c < responses));
                        }
                    }
                }
                Step::Drop(i) => r.disconnected(now, &pid(PEOPLE[i])),
                Step::Resume(i) => { let _ = r.resume(&pid(PEOPLE[i])); }
                Step::PeerState(i, publish, up) => {
                    let pc = if publish { circle_protocol::PcKind::Publish } else { circle_protocol::PcKind::Subscribe };
                    r.peer_state(now, &pid(PEOPLE[i]), pc, up);
                }
                Step::Advance(ms) => {
                    now += ms;
                    while let Some(t) = r.poll_timeout() {
                        if t > now { break; }
                        r.handle_timeout(t);
                        // Timed-out reaction windows are flushed as counts only.
                        let effects = r.take_effects();
                        told.extend(events(&effects));
                        for e in effects {
                            if let Effect::Send { message: S::Reactions { counts }, .. } = &e {
                                prop_assert!(counts.values().all(|n| *n > 0));
                            }
                        }
                    }
                }
            }
            told.extend(events(&r.take_effects()));
            if let Err(e) = r.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
        // The events tell a consistent story: each session starts before its first admission
        // and finishes once everyone admitted has left, and nobody leaves who was not admitted
        // (or leaves twice).
        let mut inside = std::collections::HashSet::new();
        let mut live = false;
        for event in &told {
            match event {
                RoomEvent::Started => { prop_assert!(!live, "{:?}", told); live = true; }
                RoomEvent::Finished { .. } => {
                    prop_assert!(live, "{:?}", told);
                    prop_assert!(inside.is_empty(), "finished with {:?} inside: {:?}", inside, told);
                    live = false;
                }
                RoomEvent::Admitted { participant, .. } => {
                    prop_assert!(live, "{:?}", told);
                    prop_assert!(inside.insert(participant.clone()), "{} admitted twice", participant);
                }
                RoomEvent::Left { participant, .. } => {
                    prop_assert!(inside.remove(participant), "{} left without being admitted", participant);
                }
                _ => {}
            }
        }
    }

    /// Any group, any answers: whenever counts are published, no answerer can tell how any other
    /// answered, even knowing exactly who answered.
    #[test]
    fn no_published_check_in_result_reveals_an_answer(
        options in 2usize..6,
        answers in proptest::collection::vec(proptest::option::of(0u32..6), 1..10),
        threshold in 1u32..5,
    ) {
        let mut r = Room::new(RoomId::from("r"), RoomConfig {
            anonymity_threshold: threshold,
            waiting_room: false,
            ..Default::default()
        });
        join(&mut r, "f", Role::Facilitator);
        let members: Vec<String> = (0..answers.len()).map(|i| format!("m{i}")).collect();
        for m in &members {
            join(&mut r, m, Role::Member);
        }
        req(&mut r, 0, "f", M::StartCheckIn {
            question: "q".into(),
            options: (0..options).map(|i| format!("o{i}")).collect(),
        });
        let mut given = Vec::new();
        for (m, answer) in members.iter().zip(&answers) {
            let Some(option) = answer else { continue };
            let e = req(&mut r, 0, m, M::AnswerCheckIn { check_in: CheckInId::from("c1"), option: *option });
            if reply(&e, m).is_ok() {
                given.push(*option as usize);
            }
        }
        let e = req(&mut r, 0, "f", M::CloseCheckIn { check_in: CheckInId::from("c1") });
        let Some(S::CheckInResult { counts, responses, .. }) = to(&e, "f").into_iter()
            .find(|m| matches!(m, S::CheckInResult { .. })) else {
            panic!("no result");
        };
        prop_assert_eq!(responses as usize, given.len());
        if let Some(counts) = counts {
            prop_assert!(responses >= threshold);
            for mine in &given {
                let mut others = counts.clone();
                others[*mine] -= 1;
                prop_assert!(others.iter().all(|c| *c + 1 < responses),
                    "{:?} tells one who chose {} how everyone else answered", counts, mine);
            }
            prop_assert!(counts.iter().all(|c| *c < responses), "{:?} is unanimous", counts);
        }
    }
}
