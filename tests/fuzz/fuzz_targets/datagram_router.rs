//! Any datagram from any address, with the table changed in any order: routing never panics,
//! never sends DTLS or RTP to a connection that has not answered from that address, and the
//! table stays consistent.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Unstructured;
use circle_server::media::udp::route::{DatagramRouter, Dropped};
use circle_server::media::udp::stun::{self, Kind, Stun};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
enum Op {
    SetUfrag(u8, u8),
    Learn(u8, u16),
    Forget(u8),
    Datagram(u16, Vec<u8>),
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn op(u: &mut Unstructured) -> arbitrary::Result<Op> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Op::SetUfrag(u.arbitrary()?, u.arbitrary()?),
        1 => Op::Learn(u.arbitrary()?, u.int_in_range(0..=15)?),
        2 => Op::Forget(u.arbitrary()?),
        _ => Op::Datagram(u.int_in_range(0..=15)?, u.arbitrary()?),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut router = DatagramRouter::new();
    // Unstructured hands out defaults once the data runs out, so stop there.
    while !u.is_empty() {
        let Ok(op) = op(&mut u) else { return };
        match op {
            Op::SetUfrag(c, n) => {
                router.set_ufrag(c, &format!("ufrag{n}"));
            }
            Op::Learn(c, port) => router.learn(c, addr(port)),
            Op::Forget(c) => router.forget(c),
            Op::Datagram(port, bytes) => {
                let routed = router.route(addr(port), &bytes);
                match stun::classify(&bytes) {
                    Kind::Other => assert_eq!(routed, Err(Dropped::Junk)),
                    Kind::Dtls | Kind::Rtp => {
                        if let Ok(c) = routed {
                            assert!(router.addresses(c).any(|a| a == addr(port)));
                        }
                    }
                    Kind::Stun => {
                        if let Stun::Check { local_ufrag } = stun::parse(&bytes) {
                            assert!(!local_ufrag.is_empty() && local_ufrag.len() < bytes.len());
                        }
                    }
                }
            }
        }
        router.assert_consistent();
    }
});
