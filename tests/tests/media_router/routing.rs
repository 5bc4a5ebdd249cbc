//! The SFU end to end: fake browsers (webrtc-rs peers) against a Router over loopback UDP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use circle_protocol::PcKind;
use circle_server::media::MediaConfig;
use circle_tests::browser::{contiguous, Browser, StandInRoom, LOUD};
use tokio::net::UdpSocket;

const PEOPLE: [&str; 3] = ["alice", "bob", "carol"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_publishers_each_receive_the_other_two_audio_and_video_tracks() {
    let room = StandInRoom::start();
    let mut browsers = Vec::new();
    for id in PEOPLE {
        room.set_gate(id, true).await;
        browsers.push(Browser::join(&room, id, true).await);
    }
    for browser in &browsers {
        for other in PEOPLE.iter().filter(|o| **o != browser.id) {
            let audio = browser.wait_packets(other, "audio", 25).await;
            let video = browser.wait_packets(other, "video", 15).await;
            assert_eq!(
                audio.misrouted + video.misrouted,
                0,
                "packets under the wrong stream id"
            );
            assert!(audio
                .payload_types
                .iter()
                .all(|pt| *pt == audio.payload_types[0]));
        }
        let heard = browser.publishers_heard();
        assert_eq!(heard.len(), 4, "{} heard {heard:?}", browser.id);
        assert!(
            heard.iter().all(|(p, _)| *p != browser.id),
            "{} received itself",
            browser.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_joiner_receives_the_tracks_already_published() {
    let room = StandInRoom::start();
    room.set_gate("alice", true).await;
    room.set_gate("bob", true).await;
    let _alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    bob.wait_packets("alice", "video", 10).await;

    // An observer: subscribes only.
    let carol = Browser::join(&room, "carol", false).await;
    for publisher in ["alice", "bob"] {
        carol.wait_packets(publisher, "audio", 25).await;
        carol.wait_packets(publisher, "video", 15).await;
    }
    assert_eq!(carol.publishers_heard().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leavers_tracks_disappear_from_everyone_elses_subscribe_connection() {
    let room = StandInRoom::start();
    let mut browsers = Vec::new();
    for id in PEOPLE {
        browsers.push(Browser::join(&room, id, true).await);
    }
    let (alice, bob, carol) = (&browsers[0], &browsers[1], &browsers[2]);
    for b in [alice, carol] {
        b.wait_packets("bob", "video", 10).await;
        let other = if b.id == "alice" { "carol" } else { "alice" };
        b.wait_packets(other, "video", 10).await;
        assert!(b
            .offers
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.contains("a=msid:bob ")));
    }

    bob.close().await;
    room.remove("bob").await;

    for b in [alice, carol] {
        // The newest offer no longer carries bob's stream; the others' are still there.
        let offer = b
            .wait_until("a re-offer without bob", || {
                let offers = b.offers.lock().unwrap();
                offers
                    .last()
                    .filter(|o| !o.contains("a=msid:bob "))
                    .cloned()
            })
            .await;
        let other = if b.id == "alice" { "carol" } else { "alice" };
        assert!(offer.contains(&format!("a=msid:{other} ")), "{offer}");
    }
    // Media from the others still flows after the re-offer.
    let before = alice.stream("carol", "video").count();
    alice.wait_packets("carol", "video", before + 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gated_audio_reaches_nobody_until_the_gate_opens_and_then_arrives_without_gaps() {
    let room = StandInRoom::start();
    // Only bob's gate opens; alice's stays at its default, closed.
    room.set_gate("bob", true).await;
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    let carol = Browser::join(&room, "carol", true).await;
    room.set_gate("carol", true).await;

    // Both subscribers see alice's video flow for a second while her audio stays gated.
    for b in [&bob, &carol] {
        b.wait_packets("alice", "video", 30).await;
        assert_eq!(
            b.stream("alice", "audio").count(),
            0,
            "gated audio reached {}",
            b.id
        );
        // Ungated audio from someone else does arrive.
        b.wait_packets(if b.id == "bob" { "carol" } else { "bob" }, "audio", 10)
            .await;
    }
    alice.wait_packets("bob", "audio", 10).await;

    room.set_gate("alice", true).await;
    for b in [&bob, &carol] {
        let audio = b.wait_packets("alice", "audio", 25).await;
        assert!(
            contiguous(&audio.sequence_numbers),
            "gap at {}: {:?}",
            b.id,
            audio.sequence_numbers
        );
    }

    room.set_gate("alice", false).await;
    let mut closed_at = Vec::new();
    for b in [&bob, &carol] {
        // Packets already past the gate may still land: let a third of a second of video
        // through first, then a second more during which not one audio packet may arrive.
        let video = b.stream("alice", "video").count();
        b.wait_packets("alice", "video", video + 10).await;
        let audio = b.stream("alice", "audio").count();
        b.wait_packets("alice", "video", video + 40).await;
        assert_eq!(
            b.stream("alice", "audio").count(),
            audio,
            "audio leaked to {} after closing",
            b.id
        );
        closed_at.push(audio);
    }

    // Reopening continues the sequence as if the closed second never happened.
    room.set_gate("alice", true).await;
    for (b, at) in [&bob, &carol].iter().zip(&closed_at) {
        let audio = b.wait_packets("alice", "audio", at + 25).await;
        assert!(
            contiguous(&audio.sequence_numbers),
            "gap at {}: {:?}",
            b.id,
            audio.sequence_numbers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribers_keyframe_request_reaches_the_publisher() {
    let room = StandInRoom::start();
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", false).await;
    bob.wait_packets("alice", "video", 10).await;

    // A new consumer asks for a keyframe on its own.
    alice
        .wait_until("a keyframe request when bob's consumer was added", || {
            (alice.plis() > 0).then_some(())
        })
        .await;

    let before = alice.plis();
    circle_tests::browser::within("bob's PLI at alice", async {
        // Resent on a cadence because the server throttles keyframe requests per publisher
        // and may swallow one that lands inside the window; the wait itself is on the count.
        let mut resend = tokio::time::interval(std::time::Duration::from_millis(200));
        while alice.plis() <= before {
            resend.tick().await;
            bob.send_pli("alice").await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn speaking_names_a_participant_who_sends_loud_audio_even_while_gated() {
    let room = StandInRoom::start();
    let alice = Browser::join(&room, "alice", true).await;
    let _bob = Browser::join(&room, "bob", true).await;
    room.set_gate("bob", true).await;

    // Alice's gate is closed: the room does not hear her, but the facilitator sees her talk.
    alice
        .audio_level
        .store(LOUD, std::sync::atomic::Ordering::Relaxed);
    let set = room
        .speaking_until(|set| set.iter().any(|p| p.as_str() == "alice"))
        .await;
    assert_eq!(set, vec!["alice".into()], "quiet bob must not be named");

    alice.audio_level.store(
        circle_tests::browser::QUIET,
        std::sync::atomic::Ordering::Relaxed,
    );
    room.speaking_until(|set| set.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_reports_each_peer_connection_as_connected() {
    let room = StandInRoom::start();
    let alice = Browser::join(&room, "alice", true).await;
    let _bob = Browser::join(&room, "bob", true).await;
    alice
        .wait_until("publish and subscribe connected", || {
            let states = alice.server_states.lock().unwrap();
            (states.contains(&(PcKind::Publish, true))
                && states.contains(&(PcKind::Subscribe, true)))
            .then_some(())
        })
        .await;
}

/// A 1:1 NAT in front of the server: what reaches `public:port` is passed on to
/// `private:port` from a socket of its own for each sender, and replies go back from
/// `public:port`, for every port of `ports`.
async fn one_to_one_nat(public: IpAddr, private: IpAddr, ports: RangeInclusive<u16>) {
    for port in ports {
        let outside = Arc::new(UdpSocket::bind((public, port)).await.unwrap());
        tokio::spawn(async move {
            let mut inside: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = outside.recv_from(&mut buf).await {
                let socket = match inside.get(&from) {
                    Some(socket) => socket.clone(),
                    None => {
                        let socket = Arc::new(UdpSocket::bind((private, 0)).await.unwrap());
                        let (replies, outside) = (socket.clone(), outside.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok((n, _)) = replies.recv_from(&mut buf).await {
                                let _ = outside.send_to(&buf[..n], from).await;
                            }
                        });
                        inside.insert(from, socket.clone());
                        socket
                    }
                };
                let _ = socket.send_to(&buf[..n], (private, port)).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn candidates_use_the_configured_port_range_and_announced_address() {
    // 127.0.0.2 stands in for a public address behind 1:1 NAT: announced, never bound by the
    // server. The server is ICE-lite and never checks first, so the browsers must reach it
    // through the announced address, as they would in a deployment.
    let (public, private) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
    one_to_one_nat(public, private, 47100..=47107).await;
    let config = MediaConfig {
        bind_ip: private,
        announce_ip: Some(public),
        udp_ports: Some((47100, 47107)),
        ..MediaConfig::default()
    };
    let room = StandInRoom::start_with(config);
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    bob.wait_packets("alice", "video", 5).await;
    let candidates = alice.server_candidates.lock().unwrap().clone();
    assert!(!candidates.is_empty());
    for c in candidates {
        let fields: Vec<&str> = c.candidate.split_whitespace().collect();
        assert_eq!(fields[4], "127.0.0.2", "{}", c.candidate);
        let port: u16 = fields[5].parse().unwrap();
        assert!((47100..=47107).contains(&port), "{}", c.candidate);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_participant_closes_their_connections_from_the_server_side() {
    let room = StandInRoom::start();
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    bob.wait_packets("alice", "video", 5).await;

    // Alice's browser does nothing; the server alone ends her connection.
    room.remove("alice").await;
    alice.wait_publish_disconnected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_subscribe_offer_is_outstanding_at_a_time_and_later_changes_share_the_next() {
    let room = StandInRoom::start();
    let carol = Browser::join(&room, "carol", false).await;
    carol.hold_answers();

    let alice = Browser::join(&room, "alice", true).await;
    carol
        .wait_until("a first offer", || (carol.offer_count() >= 1).then_some(()))
        .await;

    // Bob's tracks exist (alice receives them), but carol has not answered: no second offer.
    let _bob = Browser::join(&room, "bob", true).await;
    alice.wait_packets("bob", "video", 10).await;
    // Gated audio carries no packets, and webrtc-rs raises on_track only on the first one, so
    // bob's microphone shows in the offer alice got rather than as a track.
    alice
        .wait_until("bob's audio offered to alice", || {
            let offers = alice.offers.lock().unwrap();
            offers
                .iter()
                .any(|o| o.contains("a=msid:bob audio-"))
                .then_some(())
        })
        .await;
    assert_eq!(
        carol.offer_count(),
        1,
        "a second offer while one was outstanding"
    );

    // Answering releases one offer carrying everything that changed meanwhile.
    carol.release_answers().await;
    let offer = carol
        .wait_until("the coalesced offer", || {
            let offers = carol.offers.lock().unwrap();
            (offers.len() >= 2).then(|| offers[1].clone())
        })
        .await;
    assert!(
        offer.contains("a=msid:bob audio-") && offer.contains("a=msid:bob video-"),
        "{offer}"
    );
    for publisher in ["alice", "bob"] {
        carol.wait_packets(publisher, "video", 10).await;
    }
}

fn media_sections(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribe_offer_reuses_the_slots_of_tracks_that_have_gone() {
    // The case: one member joins, publishes and leaves eight times. Before, the
    // facilitator's offer grew by two inactive sections each time (16 after eight).
    let room = StandInRoom::start();
    let carol = Browser::join(&room, "carol", false).await;
    for round in 0..8 {
        let id = format!("member{round}");
        let member = Browser::join(&room, &id, true).await;
        carol.wait_packets(&id, "video", 10).await;
        member.close().await;
        room.remove(&id).await;
        carol
            .wait_until("a re-offer without the leaver", || {
                let offers = carol.offers.lock().unwrap();
                offers
                    .last()
                    .filter(|o| !o.contains(&format!("a=msid:{id} ")))
                    .cloned()
            })
            .await;
    }
    let offers = carol.offers.lock().unwrap().clone();
    let most = offers.iter().map(|o| media_sections(o)).max().unwrap();
    assert!(
        most <= 4,
        "the offers grew to {most} sections over eight publishers who came and went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_receives_nine_publishers_over_eighteen_sections() {
    // A description of more than 16 sections used to be refused, so in a room of ten people
    // (the default allows sixteen) a subscriber's answer was: no media at all.
    let room = StandInRoom::start();
    let carol = Browser::join(&room, "carol", false).await;
    let mut publishers = Vec::new();
    for n in 0..9 {
        publishers.push(Browser::join(&room, &format!("p{n}"), true).await);
    }
    for n in 0..9 {
        carol.wait_packets(&format!("p{n}"), "video", 5).await;
    }
    let offers = carol.offers.lock().unwrap().clone();
    assert_eq!(media_sections(offers.last().unwrap()), 18);
}
