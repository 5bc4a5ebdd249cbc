#!/usr/bin/env bash
# The whole benchmark from a clean checkout: builds what it measures, runs the load tool
# (signalling, media side by side with the bare UDP relay, capacity), then the criterion
# benches, and leaves every table in tests/bench/results/. Usage, from the repository root:
#   bash tests/bench/run.sh            # full run (about 10 minutes on 2 cores, plus builds)
#   QUICK=1 bash tests/bench/run.sh    # a smaller, faster pass
set -euo pipefail
cd "$(dirname "$0")/../.."

out_dir=tests/bench/results
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$out_dir/report-$stamp.md"

# Janus (VideoRoom) is measured side by side; it needs root for its network namespaces.
if [ "${SKIP_APT:-0}" != 1 ] && ! command -v janus >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends janus >/dev/null || \
      echo "note: janus could not be installed; the comparison runs without it" >&2
  fi
fi

# The server's sockets ask for 4 MiB buffers; a stock kernel caps them at 208 KiB.
if [ "$(id -u)" = 0 ]; then
  sysctl -qw net.core.rmem_max=4194304 net.core.wmem_max=4194304 || true
fi
# Every session costs the server descriptors (see tests/BENCHMARKS.md): take the hard limit.
ulimit -n "$(ulimit -Hn)" || true

nice cargo build --release -p circle-server --bin circle
nice cargo build --release -p circle-tools --bin circle-load

load=target/release/circle-load
if [ "${QUICK:-0}" = 1 ]; then
  "$load" all --out "$report" --sessions 2000 --rounds 3 --rooms 2 --window 6 \
    --steps 3 --max-rooms 4 --time-limit 900
else
  "$load" all --out "$report" --steps 6 --max-rooms 12 --time-limit 1800
fi

# The existing criterion benches, short runs.
{
  echo
  echo "### cargo bench"
  echo
  echo '```'
  nice cargo bench -p circle-server -p circle-protocol --bench room --bench forward --bench codec -- \
    --warm-up-time 1 --measurement-time 3 2>/dev/null | tr '\r' '\n' | grep -B1 -E 'time:' \
    | grep -v -E '^(--|Benchmarking|  [0-9]+ \()|change:|time: +\[[^]]*%' || true
  echo '```'
} | tee -a "$report"

echo
echo "report: $report"
