//! The shared port's socket: datagrams in by the batch (`recvmmsg`, and GRO where the kernel
//! coalesces a run from one sender into one buffer), datagrams out with one `sendmsg` per run to
//! one address, as a single UDP GSO send when the run's datagrams are of equal size. quinn-udp
//! makes the system calls: the workspace forbids `unsafe`, and it is the well-kept crate that
//! already does this for QUIC.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams (or GRO runs) taken from the kernel per receive call: quinn-udp's `recvmmsg` batch.
pub const BATCH: usize = quinn_udp::BATCH_SIZE;
/// Room for one GRO run in each receive buffer: the largest UDP payload.
const BUFFER: usize = 64 * 1024;
/// A GSO send is one UDP payload to the kernel, so it stays under 64 KiB in all.
const MAX_GSO_BYTES: usize = 60 * 1024;

/// One bound UDP socket with the state quinn-udp keeps for it (GSO and GRO support found at
/// bind time).
#[derive(Debug)]
pub struct PortSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

/// Where received datagrams land, reused from batch to batch.
pub struct RecvBuffers {
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        RecvBuffers {
            storage: vec![0; BATCH * BUFFER],
            meta: vec![RecvMeta::default(); BATCH],
        }
    }
}

/// Binds `addr`, non-blocking, with send and receive buffers of `buffer_bytes` each (0 leaves
/// the kernel's default; the kernel caps them at `net.core.*mem_max`). Needs no runtime, so the
/// port can be chosen (and refused) before the engine's thread starts.
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if buffer_bytes > 0 {
        // A smaller buffer than asked for is still a working port.
        let _ = socket.set_recv_buffer_size(buffer_bytes);
        let _ = socket.set_send_buffer_size(buffer_bytes);
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl PortSocket {
    /// Binds `addr` (inside a tokio runtime) with send and receive buffers of `buffer_bytes`
    /// each (0 leaves the kernel's default; the kernel caps them at `net.core.*mem_max`).
    pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<PortSocket> {
        PortSocket::from_std(bind(addr, buffer_bytes)?)
    }

    /// Takes a socket [`bind`] made (inside a tokio runtime).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<PortSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        Ok(PortSocket {
            socket,
            state,
            local,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many equal datagrams one GSO send may carry (1 where the kernel has no GSO).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.socket.writable().await
    }

    /// Takes what the kernel holds, up to one batch, without waiting, and hands each datagram
    /// to `each` with its sender. Returns how many datagrams there were; `WouldBlock` when none.
    pub fn try_recv(
        &self,
        buffers: &mut RecvBuffers,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let RecvBuffers { storage, meta } = buffers;
        let mut slices: Vec<IoSliceMut<'_>> =
            storage.chunks_mut(BUFFER).map(IoSliceMut::new).collect();
        let filled = self.socket.try_io(Interest::READABLE, || {
            self.state.recv((&self.socket).into(), &mut slices, meta)
        })?;
        drop(slices);
        let mut datagrams = 0;
        for (meta, buffer) in meta.iter().zip(storage.chunks(BUFFER)).take(filled) {
            let stride = meta.stride.max(1);
            for datagram in buffer[..meta.len].chunks(stride) {
                each(meta.addr, datagram);
                datagrams += 1;
            }
        }
        Ok(datagrams)
    }

    /// Sends one datagram, or with `segment_size` a GSO run of datagrams of that size (the
    /// last may be shorter) to one address, without waiting. `WouldBlock` when the socket's
    /// buffer is full: nothing was sent.
    pub fn try_send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        self.socket.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), &transmit)
        })
    }
}

/// Datagrams to send, grouped for the fewest system calls: runs to one address are sent as
/// GSO batches when their sizes allow.
#[derive(Default)]
pub struct SendQueue {
    /// The datagrams' bytes, back to back.
    bytes: Vec<u8>,
    /// (destination, start, length) of each datagram, in order.
    datagrams: Vec<(SocketAddr, usize, usize)>,
    /// How many of the queued datagrams have gone.
    sent: usize,
}

impl SendQueue {
    pub fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.datagrams.push((to, self.bytes.len(), datagram.len()));
        self.bytes.extend_from_slice(datagram);
    }

    pub fn is_empty(&self) -> bool {
        self.sent == self.datagrams.len()
    }

    pub fn len(&self) -> usize {
        self.datagrams.len() - self.sent
    }

    /// Sends what it can. Returns how many system calls it made; stops at `WouldBlock` (wait
    /// for `writable` and call again) and keeps what is left in order. Any other error drops
    /// the run it happened on (a datagram the kernel refuses will not be taken later either)
    /// and is returned after the rest is sent.
    pub fn flush(&mut self, socket: &PortSocket) -> io::Result<usize> {
        let max_segments = socket.max_gso_segments().max(1);
        let mut calls = 0;
        let mut failed = None;
        while self.sent < self.datagrams.len() {
            let (to, start, len) = self.datagrams[self.sent];
            // The run: datagrams to the same address, contiguous in `bytes`, all of the first's
            // size except perhaps the last.
            let mut run = 1;
            while run < max_segments && self.sent + run < self.datagrams.len() {
                let (next_to, next_start, next_len) = self.datagrams[self.sent + run];
                let previous_len = self.datagrams[self.sent + run - 1].2;
                let contiguous = next_start == start + run * len;
                let fits = (run + 1) * len <= MAX_GSO_BYTES;
                if next_to != to || next_len > len || previous_len != len || !contiguous || !fits {
                    break;
                }
                run += 1;
            }
            let end = {
                let (_, last_start, last_len) = self.datagrams[self.sent + run - 1];
                last_start + last_len
            };
            let segment = (run > 1).then_some(len);
            match socket.try_send(to, &self.bytes[start..end], segment) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return if calls == 0 { Err(e) } else { Ok(calls) };
                }
                Err(e) => failed = Some(e),
            }
            calls += 1;
            self.sent += run;
        }
        self.bytes.clear();
        self.datagrams.clear();
        self.sent = 0;
        match failed {
            Some(e) => Err(e),
            None => Ok(calls),
        }
    }

    /// Drops what has gone, so a queue that keeps meeting a full socket does not grow forever.
    fn compact(&mut self) {
        if self.sent == 0 {
            return;
        }
        let offset = self.datagrams[self.sent].1;
        self.bytes.drain(..offset);
        self.datagrams.drain(..self.sent);
        for datagram in &mut self.datagrams {
            datagram.1 -= offset;
        }
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn recv_all(port: &PortSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut buffers = RecvBuffers::default();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < want && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), port.readable()).await;
            match port.try_recv(&mut buffers, |from, d| got.push((from, d.to_vec()))) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn a_burst_of_datagrams_is_taken_in_batches_intact_and_in_order() {
        let port = PortSocket::bind(loopback(), 1 << 20).unwrap();
        let sender = std::net::UdpSocket::bind(loopback()).unwrap();
        for n in 0..200u16 {
            let datagram = [n.to_be_bytes().as_slice(), &[7; 100]].concat();
            sender.send_to(&datagram, port.local_addr()).unwrap();
        }
        let got = recv_all(&port, 200).await;
        assert_eq!(got.len(), 200);
        for (n, (from, datagram)) in got.iter().enumerate() {
            assert_eq!(*from, sender.local_addr().unwrap());
            assert_eq!(datagram.len(), 102);
            assert_eq!(u16::from_be_bytes([datagram[0], datagram[1]]), n as u16);
        }
    }

    #[tokio::test]
    async fn a_run_to_one_address_leaves_in_one_call_and_arrives_as_separate_datagrams() {
        let port = PortSocket::bind(loopback(), 1 << 20).unwrap();
        let a = PortSocket::bind(loopback(), 1 << 20).unwrap();
        let b = PortSocket::bind(loopback(), 1 << 20).unwrap();
        let mut queue = SendQueue::default();
        for n in 0..10u8 {
            queue.push(a.local_addr(), &[n; 200]);
        }
        queue.push(a.local_addr(), &[10; 50]); // a shorter last one still joins the run
        queue.push(b.local_addr(), &[11; 200]);
        queue.push(a.local_addr(), &[12; 300]);
        // A new socket is writable only once the runtime has seen it so.
        let mut calls = 0;
        while !queue.is_empty() {
            port.writable().await.unwrap();
            match queue.flush(&port) {
                Ok(n) => calls += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        if port.max_gso_segments() > 1 {
            assert_eq!(calls, 3, "one GSO run to a, one to b, one to a");
        } else {
            assert_eq!(calls, 13);
        }
        let at_a = recv_all(&a, 12).await;
        let sizes: Vec<(u8, usize)> = at_a.iter().map(|(_, d)| (d[0], d.len())).collect();
        let mut expected: Vec<(u8, usize)> = (0..10).map(|n| (n, 200)).collect();
        expected.extend([(10, 50), (12, 300)]);
        assert_eq!(sizes, expected);
        assert!(at_a.iter().all(|(from, _)| *from == port.local_addr()));
        let at_b = recv_all(&b, 1).await;
        assert_eq!(at_b.len(), 1);
        assert_eq!(at_b[0].1, vec![11; 200]);
    }
}
