#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

# The services that integration tests start for themselves: Debian's PostgreSQL and the pinned
# schemathesis (tests/services/setup.sh installs only what is missing).
bash tests/services/setup.sh

# Rust: unit and property tests of the rules, golden protocol files, the media module with fake
# webrtc-rs browsers, and integration tests against the real server on 127.0.0.1.
cargo test --locked --workspace

# The web client in Debian's headless Chromium (installed by setup.sh, never downloaded),
# against the `circle` binary built from this checkout, which embeds web-client/.
cargo build --locked --bin circle
bash tests/browser/setup.sh
(cd tests/browser && CIRCLE_BIN="$PWD/../../target/debug/circle" npm test)
