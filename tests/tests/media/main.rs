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

use circle_tests::browser::Browser;
use circle_tests::TestServer;

/// A server whose rooms admit everyone at once: these tests are about media, not the waiting room.
async fn server() -> TestServer {
    TestServer::with(|c| c.room.waiting_room = false).await
}

/// `viewer`'s count of `who`'s `held` packets stays where it is while `more` of `who`'s
/// `flowing` packets arrive.
async fn held_back(
    viewer: &Browser,
    who: &str,
    held: &'static str,
    flowing: &'static str,
    more: usize,
) {
    let before = viewer.stream(who, held).count();
    let flowed = viewer.stream(who, flowing).count();
    viewer.wait_packets(who, flowing, flowed + more).await;
    assert_eq!(
        viewer.stream(who, held).count(),
        before,
        "{who}'s {held} still reached {}",
        viewer.id
    );
}
