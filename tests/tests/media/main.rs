//! Media through the real server, one test binary for the area (each module one concern): fake
//! browsers join over WebSocket and publish over loopback UDP.

mod events;
mod forwarding;
mod media_security;
mod recovery;
