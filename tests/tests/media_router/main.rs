//! The media module alone, one test binary: fake browsers against a `Router` in a stand-in room,
//! what the `Router` refuses before any peer connection work, and the one-port engine's own
//! promises (one socket, a stranger's flood dropped).

mod one_port;
mod routing;
mod validation;
