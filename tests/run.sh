#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust: unit and property tests of the rules, golden protocol files, integration tests against
# the real server on 127.0.0.1.
cargo test --locked --workspace
