//! Measurements, not checks (tests/BENCHMARKS.md): run by hand, alone, in release.

use std::time::Instant;

use bytes::Bytes;

use super::*;

/// CPU time (user + system, in clock ticks of 10 ms) of this process's thread named `name`.
fn thread_cpu_ticks(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        return Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?);
    }
    None
}

/// A measurement, not a check (tests/BENCHMARKS.md, round 7): the worker's CPU per copy it
/// forwards, one publisher to seven subscribers, 1,000-byte video packets. Run it alone, in
/// release: `cargo test --release -p circle-server --lib prints_the_workers -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn prints_the_workers_cpu_per_forwarded_copy() {
    let (worker, mut reports, mut publisher, mut subscribers, mut seen) =
        one_to_seven(Peer::new().await).await;
    let payload = Bytes::from(vec![0x42u8; 1000]);
    let start_ticks = thread_cpu_ticks("circle-media").unwrap();
    let start_copies = worker.media.forwarded(MediaKind::Video);
    let started = Instant::now();
    for burst in 0..100u16 {
        for n in 0..50u16 {
            let seq = burst * 50 + n;
            let packet = camera_packet(seq, u32::from(burst) * 3000, payload.clone());
            publisher.write_rtp(packet);
        }
        publisher
            .run(Duration::from_millis(5), &mut reports, &mut seen)
            .await;
        seen.clear();
        for s in subscribers.iter_mut() {
            s.run(Duration::from_millis(1), &mut reports, &mut seen)
                .await;
            s.received.clear();
        }
        seen.clear();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticks = thread_cpu_ticks("circle-media").unwrap() - start_ticks;
    let copies = worker.media.forwarded(MediaKind::Video) - start_copies;
    let micros = ticks as f64 * 10_000.0 / copies.max(1) as f64;
    println!(
        "worker: {copies} copies of 5,000 packets to 7 subscribers in {:.1} s; {ticks} ticks of CPU; {micros:.1} µs per copy (publisher's decrypt included)",
        started.elapsed().as_secs_f64()
    );
}

/// A measurement, not a check (tests/BENCHMARKS.md, round 10): the worker's CPU per copy and
/// the bytes each subscriber is sent, one publisher to seven subscribers, three of them showing
/// the camera small, with the camera in one layer (as before simulcast) and in two, alternated.
/// Run it alone, in release:
/// `cargo test --release -p circle-server --lib prints_the_workers_cpu_with -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn prints_the_workers_cpu_with_simulcast_on_and_off() {
    for round in 0..6 {
        simulcast_round(round % 2 == 1).await;
    }
}

async fn simulcast_round(simulcast: bool) {
    let publisher = if simulcast {
        Peer::with_simulcast_camera().await
    } else {
        Peer::new().await
    };
    let (worker, mut reports, mut publisher, mut subscribers, mut seen) =
        one_to_seven(publisher).await;
    // Subscribers 2, 3 and 4 are phones showing the camera 90 pixels high.
    for key in 2..5 {
        worker
            .send(Command::TileSizes {
                key,
                sizes: vec![(1, 90)],
            })
            .await
            .unwrap();
    }
    let start_ticks = thread_cpu_ticks("circle-media").unwrap();
    let start_copies = worker.media.forwarded(MediaKind::Video);
    let mut bytes = [0usize; 7];
    // Per burst, the full picture's 50 packets of 1,000 bytes and, with simulcast, the small
    // layer's 10 (a fifth of the bytes); a keyframe on each every tenth burst.
    for burst in 0..300u16 {
        let keyframe = burst % 10 == 0;
        for n in 0..50u16 {
            let seq = burst * 50 + n;
            if simulcast {
                publisher.layer_packet("f", seq, keyframe && n == 0, 1000);
                if n % 5 == 0 {
                    publisher.layer_packet("q", 10_000 + seq / 5, keyframe && n == 0, 1000);
                }
            } else {
                publisher.write_rtp(one_layer_packet(seq, burst, keyframe && n == 0));
            }
        }
        publisher
            .run(Duration::from_millis(5), &mut reports, &mut seen)
            .await;
        seen.clear();
        for (i, s) in subscribers.iter_mut().enumerate() {
            s.run(Duration::from_millis(1), &mut reports, &mut seen)
                .await;
            bytes[i] += s.received.iter().map(|p| p.payload.len()).sum::<usize>();
            s.received.clear();
        }
        seen.clear();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticks = thread_cpu_ticks("circle-media").unwrap() - start_ticks;
    let copies = worker.media.forwarded(MediaKind::Video) - start_copies;
    let micros = ticks as f64 * 10_000.0 / copies.max(1) as f64;
    println!(
        "simulcast {}: {copies} copies, {ticks} ticks, {micros:.2} µs per copy; payload bytes to a phone {} kB, to a large screen {} kB",
        if simulcast { "on " } else { "off" },
        bytes[0] / 1000,
        bytes[6] / 1000,
    );
}

/// A measurement, not a check (tests/BENCHMARKS.md, round 10): what a phone in a room of 16
/// is sent, the fifteen others' cameras at circle-load's rate (30 frames a second of two
/// 1,000-byte packets: 480 kbit/s) in one layer as before simulcast, then also with a small
/// layer at the web client's cap (15 frames a second of one 700-byte packet: 84 kbit/s) and the
/// phone showing every camera 90 pixels high. Three seconds of media each, alternated.
/// `cargo test --release -p circle-server --lib prints_what_a_phone -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn prints_what_a_phone_in_a_room_of_16_is_sent() {
    for round in 0..4 {
        phone_round(round % 2 == 1).await;
    }
}

async fn phone_round(simulcast: bool) {
    const OTHERS: u64 = 15;
    const SECONDS: u16 = 3;
    let (worker, mut reports) = measuring_worker();
    let mut publishers = Vec::new();
    for key in 1..=OTHERS {
        let mut p = if simulcast {
            Peer::with_simulcast_camera().await
        } else {
            Peer::new().await
        };
        p.offer_to(&worker, key).await;
        publishers.push(p);
    }
    let phone_key = OTHERS + 1;
    let mut phone = Peer::with_camera(false).await;
    phone
        .receive_from(
            &worker,
            phone_key,
            (1..=OTHERS).map(|k| (k, MediaKind::Video)).collect(),
        )
        .await;
    let mut seen = Vec::new();
    {
        let mut all: Vec<&mut Peer> = publishers.iter_mut().collect();
        all.push(&mut phone);
        let keys: Vec<ConnKey> = (1..=phone_key).collect();
        connect_all(&mut all, &keys, &mut reports, &mut seen).await;
    }
    worker
        .send(Command::TileSizes {
            key: phone_key,
            sizes: (1..=OTHERS).map(|k| (k, 90)).collect(),
        })
        .await
        .unwrap();
    let mut bytes = 0usize;
    let mut packets = 0usize;
    for frame in 0..30 * SECONDS {
        let keyframe = frame % 30 == 0;
        for p in publishers.iter_mut() {
            for n in 0..2u16 {
                let seq = frame * 2 + n;
                if simulcast {
                    p.layer_packet("f", seq, keyframe && n == 0, 1000);
                } else {
                    p.write_rtp(one_layer_packet(seq, frame, keyframe && n == 0));
                }
            }
            if simulcast && frame % 2 == 0 {
                p.layer_packet("q", frame / 2, keyframe, 700);
            }
            p.run(Duration::from_millis(1), &mut reports, &mut seen)
                .await;
        }
        seen.clear();
        phone
            .run(Duration::from_millis(10), &mut reports, &mut seen)
            .await;
        bytes += phone
            .received
            .iter()
            .map(|p| p.payload.len())
            .sum::<usize>();
        packets += phone.received.len();
        phone.received.clear();
        seen.clear();
    }
    println!(
        "simulcast {}: the phone was sent {packets} video packets, {} kbit/s of payload",
        if simulcast { "on " } else { "off" },
        bytes * 8 / 1000 / usize::from(SECONDS),
    );
}

/// A worker with measuring-size buffers, the one worker of a measurement.
fn measuring_worker() -> (TestWorker, mpsc::Receiver<Report>) {
    let config = MediaConfig {
        socket_buffer_bytes: 4 << 20,
        ..MediaConfig::default()
    };
    start(config, 1 << 20)
}

/// `publisher` (connection 1) and seven viewers of its camera (2 to 8), all connected.
async fn one_to_seven(
    mut publisher: Peer,
) -> (
    TestWorker,
    mpsc::Receiver<Report>,
    Peer,
    Vec<Peer>,
    Vec<Report>,
) {
    let (worker, mut reports) = measuring_worker();
    publisher.offer_to(&worker, 1).await;
    let mut subscribers = Vec::new();
    for key in 2..9 {
        let mut s = Peer::with_camera(false).await;
        s.receive_from(&worker, key, vec![(1, MediaKind::Video)])
            .await;
        subscribers.push(s);
    }
    let mut seen = Vec::new();
    {
        let mut all: Vec<&mut Peer> = vec![&mut publisher];
        all.extend(subscribers.iter_mut());
        connect_all(&mut all, &[1, 2, 3, 4, 5, 6, 7, 8], &mut reports, &mut seen).await;
    }
    (worker, reports, publisher, subscribers, seen)
}

/// Packet `seq` of a camera sent in one layer (as before simulcast): 1,000 bytes of frame `frame`.
fn one_layer_packet(seq: u16, frame: u16, keyframe: bool) -> rtc::rtp::packet::Packet {
    let mut payload = vp8_payload(keyframe, 640, 360).to_vec();
    payload.resize(1000, 0x42);
    camera_packet(seq, u32::from(frame) * 3000, Bytes::from(payload))
}
