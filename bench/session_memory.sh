#!/usr/bin/env bash
# Where the memory of an idle session goes (docs/benchmarks.md, "Memory per
# idle session"): starts BUILD_DIR/parleyd with a small LD_PRELOAD helper
# that dumps jemalloc's statistics on request, runs `parley-bench connect
# --users N --hold 8 --procs 2` as `make bench` does, dumps once the users
# are signed up and again while the sessions are held, and prints the
# difference by jemalloc size class, per session, beside parley-bench's own
# figure (server RSS growth per session). The first dump may find a few
# sessions already connecting (parley-bench connects as soon as its users
# are signed up), so the per-session counts can read slightly under 1.
#
# Usage: bench/session_memory.sh [BUILD_DIR=build] [USERS=15000]
# Needs gcc and libjemalloc-dev (scripts/bootstrap installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${1:-build}
N=${2:-15000}
W=$(mktemp -d /tmp/parley-session-memory.XXXXXX)
PID=
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
gcc -shared -fPIC -O2 -o "$W/stats.so" "$here/session_memory/stats_on_touch.c" -ljemalloc -lpthread
export PARLEY_STATS_TRIGGER=$W/dump
LD_PRELOAD=$W/stats.so "$BUILD_DIR/parleyd" --listen 127.0.0.1:0 --data-dir "$W/data" \
  --sms-provider "file:$W/codes.jsonl" --otp-per-address-per-hour 0 --otp-per-phone 0 \
  --device-send-rate 0 --device-write-rate 0 --device-fanout-rate 0 --log-level warn \
  >"$W/out" 2>"$W/err" &
PID=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/^parleyd listening on //p' "$W/out")
  [[ -n $url ]] && break
  sleep 0.1
done
[[ -n $url ]] || { echo "parleyd did not start: $(cat "$W/err")" >&2; exit 1; }
"$BUILD_DIR/bench/parley-bench" connect --users "$N" --hold 8 --procs 2 --url "$url" \
  --otp-file "$W/codes.jsonl" --accounts "$W/accounts.jsonl" --json >"$W/connect.json" 2>"$W/bench.log" &
bench=$!
authenticated() { curl -s "$url/metrics" | awk '$1 == "parley_sessions_authenticated" {print $2}'; }
dump() { # waits for the helper to write the next dump
  touch "$W/dump"
  while [[ ! -s $W/dump.$1 ]]; do sleep 0.05; done
}
# Signed up: parley-bench writes the accounts file once all are.
signed_up() { if [[ -f $W/accounts.jsonl ]]; then wc -l <"$W/accounts.jsonl"; else echo 0; fi; }
until [[ $(signed_up) -ge $N ]]; do
  kill -0 $bench 2>/dev/null || { echo "parley-bench failed: $(tail -n 3 "$W/bench.log")" >&2; exit 1; }
  sleep 0.05
done
dump 0
until [[ $(authenticated) == "$N" ]]; do
  kill -0 $bench 2>/dev/null || { echo "parley-bench failed: $(tail -n 3 "$W/bench.log")" >&2; exit 1; }
  sleep 0.2
done
sleep 2
dump 1
wait $bench
python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["results"]
per, held = r["server_rss_per_session_bytes"], r["sessions_held_at_end"]
print(f"parley-bench: {per:,.0f} B/session of server RSS ({held:,} held)")' "$W/connect.json"
python3 "$here/session_memory/size_classes.py" "$W/dump.0" "$W/dump.1" "$N"
