//! Media through the real server, one test binary for the area (each module one concern): fake
//! browsers join over WebSocket and publish over loopback UDP.

mod events;
mod forwarding;
mod media_security;
mod metrics;
mod records;
mod recovery;
mod screen;
mod tile_sizes;

use circle_tests::TestServer;

/// A server whose rooms admit everyone at once: these tests are about media, not the waiting room.
async fn server() -> TestServer {
    TestServer::with(|c| c.room.waiting_room = false).await
}
