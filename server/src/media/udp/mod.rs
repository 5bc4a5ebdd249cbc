//! The one UDP port every peer connection shares: what a datagram is, and which connection it
//! belongs to. `stun` reads the bytes; `route` keeps the table (both pure, and public so the fuzz
//! target can drive them); `io` is the socket, read and written by the batch.

pub mod io;
pub mod route;
pub mod stun;
