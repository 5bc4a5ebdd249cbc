//! The one UDP port every peer connection shares: what a datagram is, and which connection it
//! belongs to. `stun` reads the bytes; `route` keeps the table. Both are pure and public so the
//! fuzz target can drive them.

pub mod route;
pub mod stun;
