#!/usr/bin/env bash
# parley-bench against parleyd on RocksDB and on PostgreSQL, one after the
# other in one sitting (docs/benchmarks.md "PostgreSQL store"): chat at max,
# chat at 2,000/s, sync of 10,000, fanout 256 at 100/s. PostgreSQL is a
# throwaway server (initdb in a temporary folder, as the postgres user when
# run as root, unix socket only) on the same machine. For each run it prints
# the parley-bench summary line, the CPU seconds parleyd (and the PostgreSQL
# server, all its processes) used during the run, and the load average; at
# the end the mean latency of every store read from parleyd's /metrics.
#   bench/pg_vs_rocks.sh [BUILD_DIR]   (BENCH_SHORT=1: 5 s runs; BENCH_LIGHT=1: see below;
#   PG_SETTINGS: more PostgreSQL server options, e.g. "-c wal_init_zero=on")
# wal_init_zero=off: a fresh cluster has no old WAL segments to recycle and
# zero-fills a new 16-MB one every 2-3 s at 2,000 msgs/s, each time holding
# up the COMMITs behind it (up to 120 ms on this machine's disk); a server
# that has run through checkpoints recycles segments instead (docs/operations.md).
set -uo pipefail
BUILD=${1:-build}
PARLEYD=$(realpath "$BUILD/parleyd")
BENCH=$(realpath "$BUILD/bench/parley-bench")
PGBIN=${PARLEY_PG_BIN:-/usr/lib/postgresql/15/bin}
dur=10; sync_n=10000; users=1000; rate=2000; members=256; fan_rate=100; window=8
[[ ${BENCH_SHORT:-0} == 1 ]] && { dur=5; sync_n=2000; }
# BENCH_LIGHT=1: a light load for a machine others are loading (100 users,
# one send in flight each, 200/s, sync of 2,000, fanout 32 at 10/s).
[[ ${BENCH_LIGHT:-0} == 1 ]] && { sync_n=2000; users=100; rate=200; members=32; fan_rate=10; window=1; }
work=$(mktemp -d /tmp/parley-pgbench.XXXXXX)
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres "$work"
port=$((20000 + RANDOM % 20000))
as_pg "$PGBIN/initdb" --no-sync -A trust -U postgres -E UTF8 --locale=C -D "$work/pg" >/dev/null
as_pg "$PGBIN/pg_ctl" start -w -s -D "$work/pg" -l "$work/pg.log" \
  -o "-p $port -k $work -c listen_addresses='' -c max_connections=100 -c shared_buffers=128MB -c wal_init_zero=off ${PG_SETTINGS:-}"
pm=$(head -1 "$work/pg/postmaster.pid")
cleanup() {
  [[ -n ${srv:-} ]] && kill -9 "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  as_pg "$PGBIN/pg_ctl" stop -s -m fast -D "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

ticks() { # utime+stime of a pid, in clock ticks
  awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
pg_ticks() { # the postmaster and its children
  local t=0 p
  for p in $pm $(pgrep -P "$pm"); do t=$((t + $(ticks "$p"))); done
  echo $t
}
hz=$(getconf CLK_TCK)

start_parleyd() { # $1 name, $2 store
  local d=$work/$1
  mkdir -p "$d/data"
  "$PARLEYD" --listen 127.0.0.1:0 --data-dir "$d/data" --store "$2" \
    --sms-provider "file:$d/codes.jsonl" --otp-per-address-per-hour 0 --otp-per-phone 0 \
    --device-send-rate 0 --device-write-rate 0 --device-fanout-rate 0 --log-level warn \
    >"$d/out" 2>"$d/log" &
  srv=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/^parleyd listening on //p' "$d/out")
    [[ -n $url ]] && return 0
    sleep 0.1
  done
  echo "parleyd did not start: $(cat "$d/log")" >&2
  exit 1
}

run() { # $1 backend, $2 name, rest: scenario args
  local backend=$1 name=$2; shift 2
  local d=$work/$backend
  local p0 g0 p1 g1
  p0=$(ticks "$srv"); g0=$(pg_ticks)
  "$BENCH" "$@" --url "$url" --otp-file "$d/codes.jsonl" --accounts "$d/accounts.jsonl" \
    --json >"$d/$name.json" 2>"$d/$name.err" || echo "$backend $name: parley-bench failed: $(tail -2 "$d/$name.err")"
  p1=$(ticks "$srv"); g1=$(pg_ticks)
  echo "$backend $name: $("$BENCH" summary "$d/$name.json" 2>/dev/null | tail -1)"
  echo "$backend $name: cpu parleyd $(( (p1 - p0) * 1000 / hz )) ms, postgresql $(( (g1 - g0) * 1000 / hz )) ms, load $(cut -d' ' -f1-3 /proc/loadavg)"
  # What a saturated server still has queued must not spill into the next
  # scenario: a fresh parleyd on the same store (accounts are kept).
  store_metrics "$backend" "$name"
  stop_parleyd
  start_parleyd "$backend" "$store"
}

stop_parleyd() { # SIGTERM drains the write queue; SIGKILL after 60 s
  kill "$srv" 2>/dev/null
  for _ in $(seq 600); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  srv=
}

store_metrics() { # mean latency of each store operation during the last run
  curl -s "$url/metrics" | awk -v b="$1" -v n="$2" '
    /^parley_store_op_seconds_sum/ { match($0, /op="[^"]*"/); op=substr($0, RSTART+4, RLENGTH-5); sum[op]=$NF }
    /^parley_store_op_seconds_count/ { match($0, /op="[^"]*"/); op=substr($0, RSTART+4, RLENGTH-5); cnt[op]=$NF }
    END { for (op in cnt) if (cnt[op] > 0) printf "%s %s store %s: %d calls, mean %.1f us\n", b, n, op, cnt[op], sum[op] / cnt[op] * 1e6 }' | sort
}

for backend in ${BENCH_BACKENDS:-rocksdb postgresql}; do
  # What the last backend's runs left dirty in the page cache is written
  # back now, not under the next backend's commits.
  sync
  if [[ $backend == postgresql ]]; then
    as_pg "$PGBIN/psql" -q -h "$work" -p "$port" -U postgres -c "CREATE DATABASE parley" postgres
    store="postgresql://postgres@/parley?host=$work&port=$port"
  else
    store=rocksdb
  fi
  start_parleyd "$backend" "$store"
  run "$backend" chat-max chat --users "$users" --rate max --window "$window" --duration "$dur"
  run "$backend" "chat-$rate" chat --users "$users" --rate "$rate" --duration "$dur"
  run "$backend" sync sync --messages "$sync_n"
  run "$backend" fanout fanout --members "$members" --rate "$fan_rate" --duration "$dur"
  stop_parleyd
done
