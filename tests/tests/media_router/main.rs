//! The media module alone, one test binary: fake browsers against a `Router` in a stand-in room,
//! and what the `Router` refuses before any peer connection work.

mod routing;
mod validation;
