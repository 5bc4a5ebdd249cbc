//! The room's rules and outbox per command, in a full 16-person room: the work the room's task
//! does for each message before anything touches a socket.

use std::hint::black_box;

use circle_protocol::{ClientMessage as M, FloorMode, ParticipantId, ReactionKind, Role, RoomId};
use circle_server::room::outbox::{Outbox, ReplayLimit};
use circle_server::room::{Effect, Joiner, Room, RoomConfig};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

fn pid(i: usize) -> ParticipantId {
    ParticipantId(format!("participant-{i:02}"))
}

fn full_room() -> Room {
    let mut r = Room::new(
        RoomId::from("bench"),
        RoomConfig {
            waiting_room: false,
            ..Default::default()
        },
    );
    r.join(
        0,
        Joiner {
            id: pid(0),
            name: "Facilitator".into(),
            role: Role::Facilitator,
        },
    )
    .unwrap();
    for i in 1..16 {
        r.join(
            0,
            Joiner {
                id: pid(i),
                name: format!("Member {i}"),
                role: Role::Member,
            },
        )
        .unwrap();
    }
    r.request(
        0,
        &pid(0),
        None,
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    r.take_effects();
    r
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("room_16");
    g.bench_function("raise_then_lower_hand", |b| {
        let mut r = full_room();
        b.iter(|| {
            r.request(1, &pid(5), Some(1), M::RaiseHand { note: None });
            r.request(1, &pid(5), Some(2), M::LowerHand { participant: None });
            black_box(r.take_effects());
        })
    });
    g.bench_function("grant_then_revoke_floor", |b| {
        let mut r = full_room();
        b.iter(|| {
            r.request(
                1,
                &pid(0),
                Some(1),
                M::GrantFloor {
                    participant: pid(3),
                },
            );
            r.request(1, &pid(0), Some(2), M::RevokeFloor);
            black_box(r.take_effects());
        })
    });
    g.bench_function("react", |b| {
        let mut r = full_room();
        let mut now = 0;
        b.iter(|| {
            // Spread over time so the per-person rate limit never refuses.
            now += 300;
            r.request(
                now,
                &pid(7),
                None,
                M::React {
                    kind: ReactionKind::Heart,
                },
            );
            black_box(r.take_effects());
        })
    });
    g.bench_function("floor_change_encoded_for_everyone", |b| {
        let mut r = full_room();
        let mut outboxes: Vec<Outbox> = (0..16)
            .map(|_| Outbox::new(ReplayLimit::default(), 60_000))
            .collect();
        b.iter(|| {
            r.request(
                1,
                &pid(0),
                None,
                M::GrantFloor {
                    participant: pid(3),
                },
            );
            r.request(1, &pid(0), None, M::RevokeFloor);
            for e in r.take_effects() {
                if let Effect::Send { to, message } = e {
                    let i: usize = to.as_str()[12..].parse().unwrap();
                    black_box(outboxes[i].push(1, &message));
                }
            }
        })
    });
    g.bench_function("join_and_leave", |b| {
        b.iter_batched(
            full_room,
            |mut r| {
                r.request(1, &pid(9), None, M::Leave);
                r.join(
                    0,
                    Joiner {
                        id: pid(9),
                        name: "Back".into(),
                        role: Role::Member,
                    },
                )
                .unwrap();
                black_box(r.take_effects())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
