//! The forwarder's per-packet work (`circle_server::media::forward`): the floor gate, the audio
//! level and sequence rewriting on every incoming packet, and the per-subscriber rewrite on every
//! copy. The hand-off of each copy to the subscriber connection's queue and everything after it
//! (interceptors, SRTP, the socket) belong to webrtc-rs and are measured end to end by
//! `circle-load media` instead (tests/BENCHMARKS.md).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use circle_server::media::forward::{egress_copy, Ingress};
use criterion::{criterion_group, criterion_main, Criterion};
use rtc::rtp;

const AUDIO_LEVEL_ID: u8 = 1;

fn opus_packet(seq: u16) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = 109;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) * 960;
    p.header.ssrc = 0x1234_5678;
    p.header
        .set_extension(AUDIO_LEVEL_ID, Bytes::from_static(&[0x80 | 25]))
        .unwrap();
    p.payload = Bytes::from(vec![0xAB; 80]);
    p
}

fn vp8_packet(seq: u16) -> rtp::Packet {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = 120;
    p.header.sequence_number = seq;
    p.header.ssrc = 0x8765_4321;
    p.payload = Bytes::from(vec![0xCD; 1200]);
    p
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");

    let open = Arc::new(AtomicBool::new(true));
    let mut ingress = Ingress::audio(open, Some(AUDIO_LEVEL_ID));
    let mut seq = 0u16;
    g.bench_function("audio_packet_through_an_open_gate", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = opus_packet(seq);
            black_box(ingress.process(&mut p));
            black_box(p)
        })
    });

    let closed = Arc::new(AtomicBool::new(false));
    let mut ingress = Ingress::audio(closed, Some(AUDIO_LEVEL_ID));
    g.bench_function("audio_packet_stopped_by_a_closed_gate", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = opus_packet(seq);
            black_box(ingress.process(&mut p));
            black_box(p)
        })
    });

    // The packet's construction is part of every iteration above; this isolates it.
    g.bench_function("building_the_test_packet_alone", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            black_box(opus_packet(seq))
        })
    });

    // A video packet in a 16-person room: ingress once, then 15 subscriber copies.
    let mut ingress = Ingress::video();
    let template = vp8_packet(0);
    let mut copies = Vec::with_capacity(15);
    g.bench_function("video_packet_to_15_subscribers", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = template.clone();
            p.header.sequence_number = seq;
            ingress.process(&mut p);
            copies.clear();
            for i in 0..15u32 {
                copies.push(egress_copy(&p, 1000 + i, 96));
            }
            black_box(&copies);
        })
    });

    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
