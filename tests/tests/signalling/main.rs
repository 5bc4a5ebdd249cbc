//! Signalling against the real server, one test binary for the area (each module one concern):
//! no test here opens a peer connection, so the process-wide peer count `/stats` reports stays
//! theirs alone. `postgres_harness` checks the services that tests start for themselves.

mod floor;
mod keepalive;
mod limits;
mod messages;
mod metrics;
mod postgres_harness;
mod rules;
mod security;
mod sessions;
mod stats;
mod tls;
mod turn;
