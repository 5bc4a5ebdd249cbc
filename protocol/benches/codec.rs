//! Encode and decode costs of the messages on the hot path: what every member sends most, and
//! the floor update every change fans out to everyone.

use std::hint::black_box;

use circle_protocol::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn participant(i: usize) -> Participant {
    Participant {
        id: ParticipantId(format!("participant-{i:02}")),
        name: format!("Member {i}"),
        role: if i == 0 {
            Role::Facilitator
        } else {
            Role::Member
        },
        audio: true,
        video: true,
        screen: false,
        muted: false,
        connection: Connection::Connected,
    }
}

fn floor() -> FloorState {
    FloorState {
        mode: FloorMode::Stick,
        holder: Some(ParticipantId::from("participant-03")),
        queue_length: 4,
        position: None,
        queue: Some(
            (4..8)
                .map(|i| QueueEntry {
                    participant: ParticipantId(format!("participant-{i:02}")),
                    note: Some("about my week".into()),
                })
                .collect(),
        ),
        turn_ends_at: Some(1_790_000_000_000),
        pass_to: None,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let react = r#"{"type":"react","kind":"heart","id":17}"#;
    let raise = r#"{"type":"raise_hand","note":"about my week","id":18}"#;
    let sdp = format!(
        r#"{{"type":"sdp","pc":"publish","sdp_type":"offer","sdp":{}}}"#,
        serde_json::to_string(
            &"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n".repeat(60)
        )
        .unwrap()
    );
    for (name, text) in [
        ("react", react.to_owned()),
        ("raise_hand", raise.to_owned()),
        ("sdp_4k", sdp),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| decode_client(black_box(&text)).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode");
    let floor_frame = ServerFrame {
        seq: 1234,
        message: ServerMessage::Floor(floor()),
    };
    g.bench_function("floor_for_facilitator", |b| {
        b.iter(|| black_box(&floor_frame).to_json())
    });
    let welcome = ServerFrame {
        seq: 1,
        message: ServerMessage::Welcome {
            protocol: 1,
            you: participant(1),
            room: Box::new(RoomState {
                id: RoomId::from("tuesday-group"),
                participants: (0..16).map(participant).collect(),
                floor: floor(),
                locked: false,
                turn_limit: Some(120),
                check_in: None,
            }),
            resume_token: "9b2e7f".repeat(8),
            ice_servers: vec![],
        },
    };
    g.bench_function("welcome_16_people", |b| {
        b.iter(|| black_box(&welcome).to_json())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
