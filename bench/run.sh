#!/usr/bin/env bash
# `make bench`: a fresh parleyd on a temporary data directory, each scenario
# of parley-bench briefly (--json), then a one-line summary per scenario.
# The server is always stopped at the end (SIGTERM, then SIGKILL after 15 s).
# Total: about 2-3 minutes. Reports stay in $PARLEY_BENCH_OUT (default: a
# temporary directory, printed at the end).
set -uo pipefail

BUILD_DIR=${1:-build}
PARLEYD=$BUILD_DIR/parleyd
BENCH=$BUILD_DIR/bench/parley-bench
for b in "$PARLEYD" "$BENCH"; do
  [[ -x $b ]] || { echo "bench: $b is missing (make bench builds it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/parley-bench.XXXXXX)
out=${PARLEY_BENCH_OUT:-$work/reports}
mkdir -p "$out"
codes=$work/codes.jsonl

# The sign-up and send limits protect a real server; a load generator that
# signs up thousands of users from one address has to be let through.
"$PARLEYD" --listen 127.0.0.1:0 --data-dir "$work/data" --sms-provider "file:$codes" \
  --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 --log-level warn \
  >"$work/parleyd.out" 2>"$work/parleyd.log" &
pid=$!

stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  rm -rf "$work/data"
}
trap stop EXIT
trap 'exit 130' INT TERM

url=
for _ in $(seq 200); do
  url=$(sed -n 's/^parleyd listening on //p' "$work/parleyd.out")
  [[ -n $url ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $url ]]; then
  echo "bench: parleyd did not start; its log:" >&2
  cat "$work/parleyd.log" >&2
  exit 1
fi
echo "bench: parleyd $url (pid $pid, data $work/data)" >&2

common=(--url "$url" --otp-file "$codes" --accounts "$work/accounts.jsonl" --json)
failed=0
run() {
  local name=$1
  shift
  echo "bench: $name: parley-bench $* (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  if ! timeout 300 "$BENCH" "$@" "${common[@]}" >"$out/$name.json" 2>"$out/$name.log"; then
    echo "bench: $name failed: $(tail -n 1 "$out/$name.log")" >&2
    failed=1
  fi
}

# Connect first, on a server that has held nothing yet: memory per session
# is clearest then. The accounts it makes are reused by every later run.
run connect connect --users 2000 --hold 5
run chat-rate chat --users 1000 --rate 2000 --duration 10
run chat-max chat --users 1000 --rate max --duration 10
run sync sync --messages 10000
run storm storm --rate max --duration 5
run fanout fanout --duration 10

echo
echo "parley-bench summary ($(nproc) CPUs; reports in $out):"
"$BENCH" summary "$out"/connect.json "$out"/chat-rate.json "$out"/chat-max.json \
  "$out"/sync.json "$out"/storm.json "$out"/fanout.json
exit $failed
