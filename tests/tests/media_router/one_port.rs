//! The media engine as a deployment sees it: every peer connection on
//! one UDP socket, however many people come, and a stranger's flood of datagrams at that port
//! does not disturb a running room.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use circle_server::media::udp::route::Dropped;
use circle_server::media::{Media, MediaConfig};
use circle_tests::browser::{Browser, StandInRoom};
use tokio::net::UdpSocket;

/// UDP sockets bound to `ip` in this network namespace, from `/proc/net/udp` (which prints an
/// IPv4 address as the hex of its bytes in host order).
fn udp_sockets_on(ip: Ipv4Addr) -> usize {
    let hex = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    std::fs::read_to_string("/proc/net/udp")
        .expect("/proc/net/udp")
        .lines()
        .skip(1)
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.starts_with(&format!("{hex}:")))
        })
        .count()
}

/// The media engine bound to `ip`, an address of the loopback range no other test binds, so
/// that what is bound there is the engine's alone.
fn one_port_media(ip: Ipv4Addr) -> Media {
    Media::new(MediaConfig {
        bind_ip: IpAddr::V4(ip),
        ..MediaConfig::default()
    })
    .expect("media")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_holds_one_udp_socket_with_two_participants_and_with_sixteen() {
    let ip = Ipv4Addr::new(127, 0, 0, 3);
    let media = one_port_media(ip);
    let room = StandInRoom::start_on(&media);
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    bob.wait_packets("alice", "video", 5).await;
    alice.wait_packets("bob", "video", 5).await;
    let with_two = udp_sockets_on(ip);

    let mut others = Vec::new();
    for n in 3..=16 {
        others.push(Browser::join_audio_only(&room, &format!("member-{n}")).await);
    }
    for other in &others {
        other.wait_packets("alice", "video", 5).await;
    }
    let last = others.last().expect("fourteen more");
    last.wait_subscribe_connected().await;
    let with_sixteen = udp_sockets_on(ip);
    assert_eq!(
        (with_two, with_sixteen),
        (1, 1),
        "UDP sockets on the media address with 2 and with 16 participants"
    );
    assert!(media.counters().peer_connections() >= 2 * 16);
}

/// Datagrams of every kind a stranger might aim at the port: garbage, connectivity checks for
/// ufrags nobody has, and DTLS and RTP from an address no connection has answered.
fn junk(n: u32) -> Vec<u8> {
    match n % 5 {
        // Below STUN's range and above RTP's: no protocol of RFC 7983.
        0 => vec![0xff; 64],
        // A STUN binding request naming a ufrag nobody has.
        1 => {
            let username = b"nobody:stranger";
            let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            m.extend_from_slice(&n.to_be_bytes());
            m.extend_from_slice(&[0; 8]);
            m.extend_from_slice(&[0x00, 0x06, 0x00, username.len() as u8]);
            m.extend_from_slice(username);
            m.push(0); // padding to 4 bytes
            let length = (m.len() - 20) as u16;
            m[2..4].copy_from_slice(&length.to_be_bytes());
            m
        }
        // In STUN's range, but no STUN message (no magic cookie).
        2 => vec![
            0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
        // A DTLS ClientHello's record header, and RTP with the camera's payload type.
        3 => [vec![22, 0xfe, 0xfd, 0, 0], vec![0; 60]].concat(),
        _ => [vec![0x80, 96, 0, n as u8], vec![0; 60]].concat(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_junk_at_the_media_port_leaves_a_running_rooms_media_whole() {
    let ip = Ipv4Addr::new(127, 0, 0, 4);
    let media = one_port_media(ip);
    let port: SocketAddr = media.udp_addr();
    let room = StandInRoom::start_on(&media);
    let alice = Browser::join(&room, "alice", true).await;
    let bob = Browser::join(&room, "bob", true).await;
    let before = bob.wait_packets("alice", "video", 5).await.count();

    // 40,000 datagrams over about two seconds, from one address.
    let flood = tokio::spawn(async move {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for n in 0..40_000u32 {
            let _ = socket.send_to(&junk(n), port).await;
            if n % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    flood.await.unwrap();
    let during = bob.stream("alice", "video");
    assert!(
        during.count() >= before + 30,
        "bob received {} of alice's video packets during the flood",
        during.count() - before
    );
    // Nothing missing: the copies bob got during the flood are numbered without a gap.
    let seqs = &during.sequence_numbers;
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0].wrapping_add(1),
            "a gap in alice's video at bob"
        );
    }
    alice.wait_packets("bob", "video", before + 30).await;
    let counters = media.counters();
    let dropped: u64 = Dropped::ALL.iter().map(|d| counters.udp_dropped(*d)).sum();
    assert!(
        dropped >= 30_000,
        "{dropped} of 40000 junk datagrams counted"
    );
    for why in Dropped::ALL {
        assert!(counters.udp_dropped(why) > 0, "none counted as {why:?}");
    }
}
