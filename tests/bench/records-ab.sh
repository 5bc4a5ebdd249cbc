#!/usr/bin/env bash
# Records and webhooks on, against off, in one run (tests/BENCHMARKS.md, rounds 5 and 6): the
# 10,000-session signalling scenario alternated PAIRS times, which build goes first alternating.
# "on" keeps records in a fresh SQLite file and POSTs every webhook event to a local receiver that
# answers 204; "off" is --records off with no webhook. Usage, from the repository root, after
#   cargo build --release -p circle-server --bin circle && cargo build --release -p circle-tools --bin circle-load
#   PAIRS=3 SESSIONS=10000 bash tests/bench/records-ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${PAIRS:-3}
sessions=${SESSIONS:-10000}
out=${OUT:-/tmp/records-ab}
mkdir -p "$out"
circle=${CIRCLE:-target/release/circle}
load=${LOAD:-target/release/circle-load}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 tests/bench/webhook-sink.py "$port" > "$out/sink.log" 2>&1 &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
if [ "$(id -u)" = 0 ]; then
  sysctl -qw net.core.rmem_max=4194304 net.core.wmem_max=4194304 || true
fi
ulimit -n "$(ulimit -Hn)" || true

run() { # mode pair
  local mode=$1 n=$2
  echo "$(date -u +%T) $mode $n load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/runs.log"
  if [ "$mode" = on ]; then
    CIRCLE_WEBHOOK_URLS="http://127.0.0.1:$port/hook" CIRCLE_WEBHOOK_SECRET=bench \
      "$load" signalling --circle "$circle" --sessions "$sessions" --out "$out/sig-$mode-$n.md" \
      > "$out/sig-$mode-$n.stdout" 2>&1
  else
    CIRCLE_RECORDS=off \
      "$load" signalling --circle "$circle" --sessions "$sessions" --out "$out/sig-$mode-$n.md" \
      > "$out/sig-$mode-$n.stdout" 2>&1
  fi
}

for n in $(seq 1 "$pairs"); do
  if [ $((n % 2)) = 1 ]; then run off "$n"; run on "$n"; else run on "$n"; run off "$n"; fi
done
kill -TERM $sink; wait $sink || true
cat "$out/sink.log"
echo "reports: $out"
