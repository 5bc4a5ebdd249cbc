//! The media engine on one UDP port (issue 14), driven by Circle's own loop on the sans-io
//! `rtc` core: `conn` drives one connection, `worker` is the loop that owns the port, the
//! datagram table and every connection (and moves the packets), and `room` is one room's
//! negotiation policy on a task of its own. The only engine since the webrtc one was retired.

pub(crate) mod conn;
pub(crate) mod room;
pub(crate) mod sender;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

use worker::WorkerHandle;

use crate::media::counters::MediaCounters;
use crate::media::udp::io::bind;
use crate::media::{MediaConfig, MediaError};

/// Binds the one media port and starts its worker: `udp_port` if set (0 for any free port),
/// else the first free port of `udp_ports`, else any free port.
pub(crate) fn start(
    config: &MediaConfig,
    counters: Arc<MediaCounters>,
) -> Result<Arc<WorkerHandle>, MediaError> {
    let candidates: Vec<u16> = match (config.udp_port, config.udp_ports) {
        (Some(port), _) => vec![port],
        (None, Some((lo, hi))) => (lo..=hi).collect(),
        (None, None) => vec![0],
    };
    let mut last = None;
    for port in candidates {
        match bind(
            SocketAddr::new(config.bind_ip, port),
            config.socket_buffer_bytes,
        ) {
            Ok(socket) => {
                let local = socket
                    .local_addr()
                    .map_err(|e| MediaError::Config(e.to_string()))?;
                let announced = config
                    .announce_ip
                    .map(|ip| SocketAddr::new(ip, local.port()));
                let worker = WorkerHandle::start(config.clone(), socket, announced, counters)?;
                tracing::info!(port = local.port(), "media on one UDP port (engine rtc)");
                return Ok(Arc::new(worker));
            }
            Err(e) => last = Some((port, e)),
        }
    }
    let (port, e) = last.expect("at least one port was tried");
    Err(MediaError::Config(format!(
        "the media port could not be bound (last tried {port}): {e}"
    )))
}
