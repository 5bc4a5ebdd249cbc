//! The bare UDP relay that stands for the machine's limit (receive a datagram, send it to every
//! other member of the sender's room; no encryption, no RTP processing), and the plain-UDP
//! participants that drive it with the same packets, rates and stamps as the WebRTC ones.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use super::media::{audio_payload, read_stamp, video_packets, Metrics, AUDIO, VIDEO};

/// A datagram starting with this joins the room named by the next four bytes.
const JOIN: [u8; 2] = [0xFF, b'J'];
const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 96;

fn big_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
}

/// The relay's main loop, one thread: runs until the process is killed.
pub fn serve() -> std::io::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    big_buffers(&socket);
    println!("relay listening on {}", socket.local_addr()?);
    let mut rooms: HashMap<u32, Vec<SocketAddr>> = HashMap::new();
    let mut room_of: HashMap<SocketAddr, u32> = HashMap::new();
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let data = &buf[..n];
        if n >= 6 && data[..2] == JOIN {
            let room = u32::from_be_bytes([data[2], data[3], data[4], data[5]]);
            if room_of.insert(from, room).is_none() {
                rooms.entry(room).or_default().push(from);
            }
            continue;
        }
        let Some(room) = room_of.get(&from) else {
            continue;
        };
        for to in &rooms[room] {
            if *to != from {
                // A full socket buffer loses the copy, as a real relay would.
                let _ = socket.send_to(data, to);
            }
        }
    }
}

/// The relay as a child process of the load tool, so that its CPU is its own.
pub struct RelayProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    pub fn start() -> std::io::Result<RelayProcess> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("relay-server")
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("relay listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("relay said {line:?}")))?;
        Ok(RelayProcess { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rtp_like(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + payload.len());
    b.put_u8(0x80);
    b.put_u8(pt | if marker { 0x80 } else { 0 });
    b.put_u16(seq);
    b.put_u32(ts);
    b.put_u32(ssrc);
    b.put_slice(payload);
    b.freeze()
}

/// One plain-UDP participant: joins `room` on the relay, sends audio and video like the WebRTC
/// participants, and records what it receives in `metrics`.
pub async fn participant(
    relay: SocketAddr,
    room: u32,
    index: u32,
    subscribers: u64,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let std_socket = UdpSocket::bind("127.0.0.1:0")?;
    big_buffers(&std_socket);
    std_socket.set_nonblocking(true)?;
    let socket = Arc::new(tokio::net::UdpSocket::from_std(std_socket)?);
    let mut join = JOIN.to_vec();
    join.extend_from_slice(&room.to_be_bytes());
    // Join twice in case the first datagram is lost; the relay ignores repeats.
    for _ in 0..2 {
        socket.send_to(&join, relay).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let socket = socket.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = socket.recv(&mut buf) => match r { Ok(n) => n, Err(_) => break },
                };
                if n < 12 {
                    continue;
                }
                let kind = if buf[1] & 0x7f == OPUS_PT {
                    AUDIO
                } else {
                    VIDEO
                };
                if let Some((_, k, sent)) = read_stamp(&buf[12..n], kind) {
                    if k == kind {
                        metrics.on_received(kind, sent);
                    }
                }
            }
        });
    }
    let audio = {
        let socket = socket.clone();
        let metrics = metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            let mut seq = 0u16;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let payload = audio_payload(index);
                let sent = read_stamp(&payload, AUDIO).map(|s| s.2).unwrap_or_default();
                let d = rtp_like(OPUS_PT, seq, u32::from(seq) * 960, index, false, &payload);
                if socket.send_to(&d, relay).await.is_ok() {
                    metrics.on_sent(AUDIO, sent, 1, subscribers);
                }
                seq = seq.wrapping_add(1);
            }
        })
    };
    let mut ticker = tokio::time::interval(Duration::from_micros(33_333));
    let mut seq = 0u16;
    let mut frame = 0u32;
    let mut ts = 0u32;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let packets = video_packets(index, frame == 0);
        let sent = read_stamp(&packets[0], VIDEO)
            .map(|s| s.2)
            .unwrap_or_default();
        let last = packets.len() - 1;
        let mut written = 0;
        for (i, p) in packets.iter().enumerate() {
            let d = rtp_like(VP8_PT, seq, ts, index, i == last, p);
            if socket.send_to(&d, relay).await.is_ok() {
                written += 1;
            }
            seq = seq.wrapping_add(1);
        }
        metrics.on_sent(VIDEO, sent, written, subscribers);
        // Wraps every 90 frames (3 s): frame 0 is a keyframe, as in the WebRTC participants.
        frame = (frame + 1) % 90;
        ts = ts.wrapping_add(3000);
    }
    let _ = audio.await;
    Ok(())
}
