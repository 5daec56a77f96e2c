#!/usr/bin/env bash
# What a Redis bus costs one node (issue 13): parley-bench `chat` against a
# fresh parleyd (RocksDB store) started with `--bus none`, then one started
# with `--bus redis://...` (a redis-server of this script's, no
# persistence), alternately, at full speed (--rate max) and at 2,000
# msgs/s, $ROUNDS times, in one sitting. A clustered node publishes a wake
# per touched mailbox (the event inline), registers every hello in Redis
# and subscribes to its user's channel; with `--bus none` none of that runs.
# Each run: a fresh data directory, 1,000 users signed up anew, $DUR s.
# Prints one line per run (msgs/s answered ok, send -> ok and
# send -> delivered p50/p99, parleyd's CPU, the 1-minute load before it).
# Run it alone on the machine:
#   flock /work/.heavy.lock bench/bus_cost.sh        (after a build)
#
# Usage: bench/bus_cost.sh [BUILD_DIR]       (default: build)
# Environment: ROUNDS (2), DUR (10), USERS (1000), RATE (2000),
#   OUT (where the reports go; default a temporary folder, printed).
set -uo pipefail

BUILD=${1:-build}
PARLEYD=$BUILD/parleyd
BENCH=$BUILD/bench/parley-bench
ROUNDS=${ROUNDS:-2}
DUR=${DUR:-10}
USERS=${USERS:-1000}
RATE=${RATE:-2000}
for b in "$PARLEYD" "$BENCH" "$(command -v redis-server || true)" "$(command -v python3 || true)"; do
  [[ -n $b && -x $b ]] || { echo "bus_cost: missing ${b:-a program}" >&2; exit 1; }
done
work=$(mktemp -d /tmp/parley-buscost.XXXXXX)
OUT=${OUT:-$work/reports}
mkdir -p "$OUT"
pid=
rpid=
stop_server() {
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  pid=
  if [[ -n $rpid ]]; then
    kill -KILL "$rpid" 2>/dev/null
    wait "$rpid" 2>/dev/null
  fi
  rpid=
}
trap 'stop_server; [[ $OUT == "$work"/* ]] || rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME BUS RATE: one parleyd (and its Redis for BUS=redis), one chat run.
run() {
  local name=$1 bus=$2 rate=$3 dir=$work/$1 bus_url=none
  mkdir -p "$dir"
  if [[ $bus == redis ]]; then
    local rport
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" &
    rpid=$!
    for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
    bus_url=redis://127.0.0.1:$rport
  fi
  "$PARLEYD" --listen 127.0.0.1:0 --data-dir "$dir/data" --sms-provider "file:$dir/codes.jsonl" \
    --bus "$bus_url" --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 \
    --device-write-rate 0 --device-fanout-rate 0 --log-level warn \
    >"$dir/parleyd.out" 2>"$OUT/$name.parleyd.log" &
  pid=$!
  local url=
  for _ in $(seq 200); do
    url=$(sed -n 's/^parleyd listening on //p' "$dir/parleyd.out")
    [[ -n $url ]] && break
    sleep 0.1
  done
  [[ -n $url ]] || { echo "bus_cost: $name: parleyd did not start" >&2; stop_server; return 1; }
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/ready") == 200 ]] && break
    sleep 0.1
  done
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  timeout 300 "$BENCH" chat --users "$USERS" --rate "$rate" --duration "$DUR" --url "$url" \
    --otp-file "$dir/codes.jsonl" --accounts "$dir/accounts.jsonl" --json \
    >"$OUT/$name.json" 2>"$OUT/$name.log" || echo "bus_cost: $name: parley-bench failed" >&2
  stop_server
  rm -rf "$dir/data"
  python3 - "$OUT/$name.json" "$name" "$bus" "$rate" "$load" <<'PY'
import json, sys
path, name, bus, rate, load = sys.argv[1:]
try:
    rep = json.load(open(path))
except Exception as e:
    print("%-16s bus=%-5s rate=%-5s  no report (%s)" % (name, bus, rate, e)); sys.exit()
r, s = rep["results"], rep.get("server", {})
ok, dl = r["latency_send_to_ok"], r["latency_send_to_delivered"]
print("%-16s bus=%-5s rate=%-5s ok/s %7.0f  send->ok p50 %6.2f p99 %7.2f ms  "
      "send->delivered p50 %6.2f p99 %7.2f ms  parleyd cpu %.2f cores  failed %d  load before %s" % (
          name, bus, rate, r["ok_per_s"], ok["p50_ms"], ok["p99_ms"], dl["p50_ms"], dl["p99_ms"],
          s.get("cpu_cores_during_run", 0), r.get("failed", 0), load))
PY
  sleep 2
}

echo "bus_cost: $ROUNDS rounds, $USERS users, $DUR s a run; reports in $OUT (load $(cut -d' ' -f1-3 /proc/loadavg))"
for round in $(seq 1 "$ROUNDS"); do
  run "max-none-$round" none max
  run "max-redis-$round" redis max
  run "rate-none-$round" none "$RATE"
  run "rate-redis-$round" redis "$RATE"
done
