//! The media engine on one UDP port (issue 14), driven by Circle's own loop on the sans-io
//! `rtc` core. Built in steps beside the webrtc engine: `conn` drives one connection, `worker`
//! is the loop that owns the port, the table and the connections (publish legs so far); the
//! subscribe legs and the fan-out come next. Until then nothing outside this module
//! builds it, and the webrtc engine serves every room.

pub(crate) mod conn;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod worker;
