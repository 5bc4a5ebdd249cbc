//! Which connection a datagram on the one media port belongs to, and which datagrams belong to
//! none. The scheme of mediasoup's WebRtcServer: a connectivity check is routed by the local ICE
//! ufrag its USERNAME names, so a browser can reach its connection from any address; everything
//! else only by the remote address, and an address is learned only once the connection has
//! answered a check from it, which its ICE agent does only for checks that carry the right
//! MESSAGE-INTEGRITY. So a stranger's DTLS or SRTP never reaches a connection, even though the
//! `rtc` stack above passes any non-STUN datagram up once a pair is selected.
//!
//! Pure: no sockets, no time. The engine calls [`DatagramRouter::learn`] when a connection sends
//! to an address.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

use super::stun::{self, Kind, Stun};

/// The most remote addresses one connection is known by. A browser checks a few candidate pairs
/// (IPv4 and IPv6, relay and host) and may move (a network change, ICE restart); the oldest
/// address is forgotten first, so a connection can never hold the table hostage.
pub const MAX_ADDRESSES: usize = 4;

/// Why a datagram reached no connection. Counted, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Not STUN, DTLS or RTP.
    Junk,
    /// In STUN's range but not a well-formed STUN message, or a check whose USERNAME is no ICE
    /// username.
    BadStun,
    /// A check naming a ufrag no connection has.
    UnknownUfrag,
    /// DTLS, RTP or a non-check STUN message from an address no connection has answered.
    UnknownAddress,
}

impl Dropped {
    pub const ALL: [Dropped; 4] = [
        Dropped::Junk,
        Dropped::BadStun,
        Dropped::UnknownUfrag,
        Dropped::UnknownAddress,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Junk => "junk",
            Dropped::BadStun => "bad_stun",
            Dropped::UnknownUfrag => "unknown_ufrag",
            Dropped::UnknownAddress => "unknown_address",
        }
    }
}

#[derive(Debug)]
struct Entry {
    ufrag: Option<String>,
    /// Least recently learned first.
    addresses: VecDeque<SocketAddr>,
}

/// The table of connections `C` (a key the engine chooses) by local ufrag and by remote address.
#[derive(Debug)]
pub struct DatagramRouter<C> {
    by_ufrag: HashMap<String, C>,
    by_address: HashMap<SocketAddr, C>,
    connections: HashMap<C, Entry>,
}

impl<C> Default for DatagramRouter<C> {
    fn default() -> Self {
        DatagramRouter {
            by_ufrag: HashMap::new(),
            by_address: HashMap::new(),
            connections: HashMap::new(),
        }
    }
}

impl<C: Copy + Eq + Hash> DatagramRouter<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where a datagram from `from` goes.
    pub fn route(&self, from: SocketAddr, datagram: &[u8]) -> Result<C, Dropped> {
        match stun::classify(datagram) {
            Kind::Other => Err(Dropped::Junk),
            Kind::Dtls | Kind::Rtp => self.by_address(from),
            Kind::Stun => match stun::parse(datagram) {
                Stun::Check { local_ufrag } => self
                    .by_ufrag
                    .get(local_ufrag)
                    .copied()
                    .ok_or(Dropped::UnknownUfrag),
                Stun::Other => self.by_address(from),
                Stun::Malformed => Err(Dropped::BadStun),
            },
        }
    }

    fn by_address(&self, from: SocketAddr) -> Result<C, Dropped> {
        self.by_address
            .get(&from)
            .copied()
            .ok_or(Dropped::UnknownAddress)
    }

    /// Names `connection` by its local ufrag, the one its latest local description carries.
    /// A new ufrag (an ICE restart) replaces the old one at once: checks for the old one stop
    /// reaching it, as they would stop passing its agent. The addresses it has answered stay
    /// until it answers elsewhere. A ufrag already held by another connection is refused, and
    /// `false` returned: ufrags are random, so that is a bug or an attack, never a routine.
    pub fn set_ufrag(&mut self, connection: C, ufrag: &str) -> bool {
        if let Some(&holder) = self.by_ufrag.get(ufrag) {
            return holder == connection;
        }
        let entry = self.connections.entry(connection).or_insert(Entry {
            ufrag: None,
            addresses: VecDeque::new(),
        });
        if let Some(old) = entry.ufrag.replace(ufrag.to_owned()) {
            self.by_ufrag.remove(&old);
        }
        self.by_ufrag.insert(ufrag.to_owned(), connection);
        true
    }

    /// `connection` sent to `address`: it answered a check from there, so what comes from there
    /// is its. An address another connection had moves to this one (the browser behind it
    /// restarted, or the address was reused); past [`MAX_ADDRESSES`] the oldest is forgotten.
    pub fn learn(&mut self, connection: C, address: SocketAddr) {
        let Some(entry) = self.connections.get_mut(&connection) else {
            // Only connections that have a ufrag can have answered a check.
            return;
        };
        if let Some(at) = entry.addresses.iter().position(|a| *a == address) {
            // Already known: most recently learned now. The common case, once per send batch.
            if at + 1 != entry.addresses.len() {
                entry.addresses.remove(at);
                entry.addresses.push_back(address);
            }
            return;
        }
        entry.addresses.push_back(address);
        let evicted = if entry.addresses.len() > MAX_ADDRESSES {
            entry.addresses.pop_front()
        } else {
            None
        };
        if let Some(evicted) = evicted {
            self.by_address.remove(&evicted);
        }
        if let Some(previous) = self.by_address.insert(address, connection) {
            if previous != connection {
                if let Some(other) = self.connections.get_mut(&previous) {
                    other.addresses.retain(|a| *a != address);
                }
            }
        }
    }

    /// The connection is gone: nothing routes to it any more.
    pub fn forget(&mut self, connection: C) {
        if let Some(entry) = self.connections.remove(&connection) {
            if let Some(ufrag) = entry.ufrag {
                self.by_ufrag.remove(&ufrag);
            }
            for address in entry.addresses {
                self.by_address.remove(&address);
            }
        }
    }

    /// Connections known.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The addresses `connection` is known by, oldest first.
    pub fn addresses(&self, connection: C) -> impl Iterator<Item = SocketAddr> + '_ {
        self.connections
            .get(&connection)
            .into_iter()
            .flat_map(|entry| entry.addresses.iter().copied())
    }

    /// Checks that the three maps agree; for tests and the fuzz target.
    pub fn assert_consistent(&self) {
        for (ufrag, connection) in &self.by_ufrag {
            let entry = self
                .connections
                .get(connection)
                .expect("ufrag of a known connection");
            assert_eq!(entry.ufrag.as_deref(), Some(ufrag.as_str()));
        }
        let mut counted = 0;
        for (connection, entry) in &self.connections {
            assert!(entry.addresses.len() <= MAX_ADDRESSES);
            for address in &entry.addresses {
                assert!(self.by_address.get(address) == Some(connection));
                counted += 1;
            }
            if let Some(ufrag) = &entry.ufrag {
                assert!(self.by_ufrag.get(ufrag) == Some(connection));
            }
        }
        assert_eq!(
            counted,
            self.by_address.len(),
            "every address belongs to one entry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::stun::tests::{check, message};
    use super::*;
    use proptest::prelude::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000 + n))
    }

    const DTLS: &[u8] = &[22, 254, 253, 0, 0];
    const RTP: &[u8] = &[0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];

    #[test]
    fn a_check_reaches_the_connection_its_ufrag_names_from_any_address() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "aaaa");
        router.set_ufrag(2, "bbbb");
        assert_eq!(router.route(addr(9), &check("aaaa:remote")), Ok(1));
        assert_eq!(router.route(addr(8), &check("bbbb:remote")), Ok(2));
        assert_eq!(
            router.route(addr(9), &check("cccc:remote")),
            Err(Dropped::UnknownUfrag)
        );
    }

    #[test]
    fn media_from_an_address_no_connection_answered_reaches_nobody() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "aaaa");
        // The check went through, but the connection has not answered it yet.
        assert_eq!(router.route(addr(1), &check("aaaa:r")), Ok(1));
        assert_eq!(router.route(addr(1), DTLS), Err(Dropped::UnknownAddress));
        assert_eq!(router.route(addr(1), RTP), Err(Dropped::UnknownAddress));
        router.learn(1, addr(1));
        assert_eq!(router.route(addr(1), DTLS), Ok(1));
        assert_eq!(router.route(addr(1), RTP), Ok(1));
        assert_eq!(router.route(addr(2), RTP), Err(Dropped::UnknownAddress));
    }

    #[test]
    fn junk_and_broken_stun_are_told_apart() {
        let router = DatagramRouter::<u32>::new();
        assert_eq!(router.route(addr(1), &[0xFF; 40]), Err(Dropped::Junk));
        assert_eq!(router.route(addr(1), &[]), Err(Dropped::Junk));
        assert_eq!(router.route(addr(1), &[0, 1, 0, 0]), Err(Dropped::BadStun));
        assert_eq!(
            router.route(addr(1), &message(0x0101, &[])),
            Err(Dropped::UnknownAddress),
            "a response is routed by address"
        );
    }

    #[test]
    fn an_ice_restart_moves_the_name_and_keeps_the_path() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "old1");
        router.learn(1, addr(1));
        assert!(router.set_ufrag(1, "new1"));
        assert_eq!(
            router.route(addr(1), &check("old1:r")),
            Err(Dropped::UnknownUfrag)
        );
        assert_eq!(router.route(addr(5), &check("new1:r")), Ok(1));
        assert_eq!(
            router.route(addr(1), RTP),
            Ok(1),
            "DTLS carries on over the old path"
        );
        router.assert_consistent();
    }

    #[test]
    fn a_ufrag_cannot_be_taken_from_another_connection() {
        let mut router = DatagramRouter::new();
        assert!(router.set_ufrag(1, "aaaa"));
        assert!(!router.set_ufrag(2, "aaaa"));
        assert!(router.set_ufrag(1, "aaaa"), "setting its own again is fine");
        assert_eq!(router.route(addr(1), &check("aaaa:r")), Ok(1));
        router.assert_consistent();
    }

    #[test]
    fn an_address_answered_by_another_connection_moves_to_it() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "aaaa");
        router.set_ufrag(2, "bbbb");
        router.learn(1, addr(1));
        router.learn(2, addr(1));
        assert_eq!(router.route(addr(1), RTP), Ok(2));
        assert_eq!(router.addresses(1).count(), 0);
        router.assert_consistent();
    }

    #[test]
    fn a_connection_keeps_its_four_latest_addresses() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "aaaa");
        for n in 0..4 {
            router.learn(1, addr(n));
        }
        router.learn(1, addr(0)); // used again: now the newest
        router.learn(1, addr(4)); // evicts addr(1), the least recently learned
        assert_eq!(router.route(addr(1), RTP), Err(Dropped::UnknownAddress));
        assert_eq!(router.route(addr(0), RTP), Ok(1));
        assert_eq!(router.route(addr(4), RTP), Ok(1));
        router.assert_consistent();
    }

    #[test]
    fn a_forgotten_connection_is_reached_by_nothing() {
        let mut router = DatagramRouter::new();
        router.set_ufrag(1, "aaaa");
        router.learn(1, addr(1));
        router.forget(1);
        assert_eq!(router.route(addr(1), RTP), Err(Dropped::UnknownAddress));
        assert_eq!(
            router.route(addr(1), &check("aaaa:r")),
            Err(Dropped::UnknownUfrag)
        );
        assert!(router.is_empty());
        router.learn(1, addr(2));
        assert!(
            router.is_empty(),
            "learning does not bring a connection back"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        SetUfrag(u8, u8),
        Learn(u8, u8),
        Forget(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6u8, 0..8u8).prop_map(|(c, u)| Op::SetUfrag(c, u)),
            (0..6u8, 0..12u8).prop_map(|(c, a)| Op::Learn(c, a)),
            (0..6u8).prop_map(Op::Forget),
        ]
    }

    proptest! {
        /// Whatever the engine does, the tables agree, and media from an address reaches a
        /// connection only if that connection was the last to answer from there and still knows it.
        #[test]
        fn media_reaches_only_the_connection_that_last_answered_from_its_address(
            ops in proptest::collection::vec(op(), 0..80)
        ) {
            let mut router = DatagramRouter::new();
            // The model: for each address, who answered from it last, with the time it did.
            let mut last: HashMap<SocketAddr, (u8, usize)> = HashMap::new();
            for (step, op) in ops.iter().enumerate() {
                match *op {
                    Op::SetUfrag(c, u) => { router.set_ufrag(c, &format!("ufrag{u}")); }
                    Op::Learn(c, a) => {
                        let known = router.connections.contains_key(&c);
                        router.learn(c, addr(a.into()));
                        if known { last.insert(addr(a.into()), (c, step)); }
                    }
                    Op::Forget(c) => {
                        router.forget(c);
                        last.retain(|_, (owner, _)| *owner != c);
                    }
                }
                router.assert_consistent();
                for a in 0..12u16 {
                    match router.route(addr(a), RTP) {
                        Ok(c) => prop_assert_eq!(last.get(&addr(a)).map(|l| l.0), Some(c)),
                        Err(e) => prop_assert_eq!(e, Dropped::UnknownAddress),
                    }
                }
            }
        }

        /// Any bytes from any address: no panic, and only a check reaches a connection that
        /// has not answered from that address.
        #[test]
        fn any_datagram_reaches_a_stranger_connection_only_as_a_check(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            from in 0..6u16,
        ) {
            let mut router = DatagramRouter::new();
            router.set_ufrag(1u8, "aaaa");
            router.learn(1, addr(0));
            if let Ok(c) = router.route(addr(from), &bytes) {
                prop_assert_eq!(c, 1);
                let is_check = matches!(stun::parse(&bytes), Stun::Check { .. });
                prop_assert!(from == 0 || is_check);
            }
        }
    }
}
