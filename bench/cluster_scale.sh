#!/usr/bin/env bash
# `make bench-cluster`: the cluster scale run of issue 13 item 5
# (docs/benchmarks.md, "Cluster scale run"). On loopback, in a throwaway
# folder: PostgreSQL 15 (the shared store), redis-server (the bus) and
# $NODES parleyd nodes; then parley-bench's `scale` scenario with every node
# as a --url (clients connect to the nodes directly, no HAProxy: a proxied
# socket costs it two descriptors), which
#   1. signs up $SESSIONS accounts (through the first node) and opens one
#      authenticated session each, account i on node i mod $NODES;
#   2. holds them $HOLD s and reads every node's /metrics; this script then
#      measures Redis (INFO memory), /proc/meminfo and the processes' PSS;
#   3. sends $RATE 1:1 messages/s among them for $DUR s (peers at random, so
#      (N-1)/N of them cross nodes; send -> delivered split cross/same node);
#   4. SIGKILLs node $KILL_NODE; its clients reconnect at once to the other
#      nodes (hello with resume_after; retries at 100 ms doubling to 1 s),
#      timed from the kill.
# Meanwhile every node's /ready is polled every 200 ms: the figures end
# with how often each node answered 503 and logged `bus unreachable`.
# Prints the figures against the issue's goals; the full report is
# $OUT/scale.json. Everything is stopped and removed at the end (KEEP=1
# keeps the folder). Run it alone on the machine (it takes every core):
#   flock /work/.heavy.lock bench/cluster_scale.sh      (after a build)
#
# Usage: bench/cluster_scale.sh [BUILD_DIR]      (default: build)
# Environment: SESSIONS (100000), NODES (7), RATE (1000), DUR (30),
#   HOLD (10), KILL_NODE (the last), PROCS (parley-bench worker processes;
#   default: what the open-files limit needs), BASE_PORT (31080: nodes on
#   BASE_PORT+1...), REDIS_PORT (31079), PG_PORT (31432, a unix socket),
#   OUT (where scale.json and the logs go; default the folder), CLUSTER_DIR,
#   KEEP, PARLEY_PG_BIN, PARLEYD (default BUILD_DIR/parleyd), PG_SETTINGS
#   (more server options, e.g. "-c wal_init_zero=off"). Ports sit below the ephemeral range
#   (/proc/sys/net/ipv4/ip_local_port_range), which 100,000 client sockets use.
#
# Internal: `cluster_scale.sh measure DIR LABEL` is what parley-bench runs
# (--at-ready) while the sessions are held.
set -euo pipefail

# ---- measuring (also run by parley-bench --at-ready) ---------------------
# KEY=VALUE lines into DIR/LABEL.env: machine memory in use (MemTotal -
# MemAvailable), Redis used_memory, and the PSS of the nodes, Redis,
# PostgreSQL and parley-bench (PSS shares shared pages out fairly).
pss_kib() {
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
measure() {
  local dir=$1 label=$2 f
  f="$dir/$label.env"
  {
    awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print "machine_used_kib=" t-a}' /proc/meminfo
    echo "redis_used_memory=$(redis-cli -p "$(cat "$dir/redis.port")" info memory |
      awk -F: '/^used_memory:/ {print $2+0}')"
    local nodes pg bench
    read -ra nodes <"$dir/node.pids"
    echo "nodes_pss_kib=$(pss_kib "${nodes[@]}")"
    echo "redis_pss_kib=$(pss_kib "$(cat "$dir/redis.pid")")"
    pg=$(head -1 "$dir/pg/data/postmaster.pid" 2>/dev/null || true)
    echo "pg_pss_kib=$(pss_kib ${pg:+$pg $(children "$pg")})"
    bench=$(cat "$dir/bench.pid" 2>/dev/null || true)
    echo "bench_pss_kib=$(pss_kib ${bench:+$bench $(children "$bench")})"
    echo "loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
  } >"$f"
}
if [[ ${1:-} == measure ]]; then
  measure "$2" "$3"
  exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/cluster_scale.sh"
BUILD=${1:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
SESSIONS=${SESSIONS:-100000}
NODES=${NODES:-7}
RATE=${RATE:-1000}
DUR=${DUR:-30}
HOLD=${HOLD:-10}
KILL_NODE=${KILL_NODE:-$NODES}
BASE_PORT=${BASE_PORT:-31080}
REDIS_PORT=${REDIS_PORT:-31079}
PG_PORT=${PG_PORT:-31432}
PG_BIN=${PARLEY_PG_BIN:-/usr/lib/postgresql/15/bin}
PARLEYD=${PARLEYD:-$BUILD/parleyd}
DIR=${CLUSTER_DIR:-$(mktemp -d /tmp/parley-scale.XXXXXX)}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
OUT=${OUT:-$DIR}
mkdir -p "$OUT"

say() { echo "cluster-scale: $*" >&2; }
die() {
  say "$*"
  exit 1
}

for bin in "$PARLEYD" "$BUILD/bench/parley-bench" "$PG_BIN/initdb" "$PG_BIN/pg_ctl" \
  "$(command -v redis-server || true)" "$(command -v redis-cli || true)" \
  "$(command -v curl || true)" "$(command -v python3 || true)"; do
  [[ -n "$bin" && -x "$bin" ]] || die "missing ${bin:-a program}: make bench-cluster builds it (scripts/bootstrap installs the rest)"
done
((NODES >= 2 && NODES <= 16)) || die "NODES must be 2 to 16"
((KILL_NODE >= 1 && KILL_NODE <= NODES)) || die "KILL_NODE must be 1 to $NODES"

# ---- stopping ---------------------------------------------------------------
PIDS=()
PG_STARTED=0
as_pg() {
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_all() {
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((PG_STARTED)); then as_pg "$PG_BIN/pg_ctl" stop -s -m fast -D "$DIR/pg/data" >/dev/null 2>&1 || true; fi
  if [[ -z "${KEEP:-}" && "$OUT" != "$DIR" ]]; then
    rm -rf "$DIR"
  elif [[ -z "${KEEP:-}" ]]; then
    # The report stays; the database and the nodes' folders go.
    rm -rf "${DIR:?}/pg" "${DIR:?}"/n[0-9]* "${DIR:?}/media" "${DIR:?}/redis"
  fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$REDIS_PORT" $(seq $((BASE_PORT + 1)) $((BASE_PORT + NODES))); do
  port_free "$p" || die "port $p is in use; set BASE_PORT / REDIS_PORT"
done

measure_base() {
  awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print "machine_used_kib=" t-a}' /proc/meminfo >"$DIR/base.env"
  echo "loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$DIR/base.env"
}
measure_base
say "folder $DIR; load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- PostgreSQL ---------------------------------------------------------------
mkdir -p "$DIR/pg"
((EUID == 0)) && chown postgres:postgres "$DIR/pg" && chmod 755 "$DIR"
as_pg "$PG_BIN/initdb" --no-sync -A trust -U postgres -E UTF8 --locale=C -D "$DIR/pg/data" \
  >"$DIR/pg/initdb.log" 2>&1 || die "initdb failed: $DIR/pg/initdb.log"
as_pg "$PG_BIN/pg_ctl" start -w -t 60 -s -D "$DIR/pg/data" -l "$DIR/pg/server.log" \
  -o "-p $PG_PORT -k $DIR/pg -c listen_addresses='' -c max_connections=200 ${PG_SETTINGS:-}" ||
  die "PostgreSQL did not start: $DIR/pg/server.log"
PG_STARTED=1
as_pg "$PG_BIN/createdb" -h "$DIR/pg" -p "$PG_PORT" -U postgres parley || die "createdb failed"
STORE="postgresql://postgres@/parley?host=$DIR/pg&port=$PG_PORT"

# ---- Redis --------------------------------------------------------------------
mkdir -p "$DIR/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$DIR/redis" --logfile "$DIR/redis/redis.log" &
PIDS+=($!)
echo $! >"$DIR/redis.pid"
echo "$REDIS_PORT" >"$DIR/redis.port"
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "redis-server did not start: $DIR/redis/redis.log"

# ---- parleyd --------------------------------------------------------------------
# The abuse limits that would refuse a load generator's sign-ups and sends
# are off; access tokens outlive the run. Logs at warn: 100,000 sessions.
mkdir -p "$DIR/media"
: >"$DIR/sms.txt"
NODE_PIDS=()
URLS=()
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i))
  mkdir -p "$DIR/n$i"
  "$PARLEYD" --listen "127.0.0.1:$port" --data-dir "$DIR/n$i" --store "$STORE" \
    --bus "redis://127.0.0.1:$REDIS_PORT" --node-id "n$i" --media-dir "$DIR/media" \
    --sms-provider "file:$DIR/sms.txt" --log-level warn \
    --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 \
    --device-write-rate 0 --device-fanout-rate 0 --access-token-ttl-s 7200 \
    >"$DIR/n$i/stdout.log" 2>"$DIR/n$i/parleyd.log" &
  PIDS+=($!)
  NODE_PIDS+=($!)
  URLS+=("--url" "http://127.0.0.1:$port")
  # The first node creates the schema and the shared secrets.
  if ((i == 1)); then
    for _ in $(seq 300); do
      curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
      kill -0 "${PIDS[-1]}" 2>/dev/null || die "n1 exited: $DIR/n1/parleyd.log"
      sleep 0.1
    done
  fi
done
echo "${NODE_PIDS[*]}" >"$DIR/node.pids"
for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i))
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 || die "n$i is not ready: $DIR/n$i/parleyd.log"
done
# Readiness as a load balancer sees it: every node's /ready every 200 ms
# from here on; anything but 200 (a node flipping to 503 under the connect
# storm, issue 13) is written down with its time. The killed node's refused
# connections show as 000. One curl a round for all the nodes: a curl per
# node took about 9% of the machine during the traffic.
(
  urls=()
  for i in $(seq 1 "$NODES"); do urls+=(-o /dev/null "http://127.0.0.1:$((BASE_PORT + i))/ready"); done
  while :; do
    curl -s -m 1 -w '%{http_code} %{url}\n' "${urls[@]}" | while read -r code url; do
      [[ $code == 200 ]] && continue
      port=${url#http://127.0.0.1:}
      echo "$(date +%s.%N) n$((${port%%/*} - BASE_PORT)) $code"
    done
    sleep 0.2
  done
) >"$DIR/ready.log" 2>/dev/null &
PIDS+=($!)
sleep 1
measure "$DIR" idle
say "PostgreSQL, Redis and $NODES nodes up (pids ${NODE_PIDS[*]}); load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- parley-bench ----------------------------------------------------------------
KILL_PID=${NODE_PIDS[$((KILL_NODE - 1))]}
BENCH_ARGS=(scale "${URLS[@]}" --otp-file "$DIR/sms.txt" --users "$SESSIONS" --rate "$RATE"
  --duration "$DUR" --warmup 5 --drain 5 --hold "$HOLD" --setup-timeout 900
  --signup-concurrency 64 --kill-pid "$KILL_PID" --kill-wait 30
  --at-ready "$SELF measure $DIR held" --json)
[[ -n "${PROCS:-}" ]] && BENCH_ARGS+=(--procs "$PROCS")
{
  echo "parleyd: $PARLEYD (modified $(date -u -r "$PARLEYD" '+%F %T') UTC)"
  echo "$BUILD/bench/parley-bench ${BENCH_ARGS[*]}"
} >"$OUT/command.txt"
say "parley-bench: $SESSIONS sessions over $NODES nodes, $RATE msgs/s for $DUR s, then SIGKILL n$KILL_NODE (pid $KILL_PID)"
"$BUILD/bench/parley-bench" "${BENCH_ARGS[@]}" >"$OUT/scale.json" 2>"$OUT/bench.log" &
BENCH_PID=$!
echo "$BENCH_PID" >"$DIR/bench.pid"
rc=0
wait "$BENCH_PID" || rc=$?
((rc == 0)) || die "parley-bench failed ($rc): $OUT/bench.log"
[[ -f "$DIR/held.env" ]] || die "the --at-ready measurement did not run: $OUT/bench.log"
cp "$DIR"/base.env "$DIR"/idle.env "$DIR"/held.env "$OUT/" 2>/dev/null || true

# ---- figures ----------------------------------------------------------------------
python3 - "$OUT/scale.json" "$DIR/base.env" "$DIR/idle.env" "$DIR/held.env" "$KILL_NODE" <<'EOF'
import json, sys, shlex

def env(path):
    out = {}
    for line in open(path):
        k, _, v = line.strip().partition("=")
        if k:
            out[k] = shlex.split(v)[0] if v.startswith('"') else float(v or 0)
    return out

rep = json.load(open(sys.argv[1]))
base, idle, held = env(sys.argv[2]), env(sys.argv[3]), env(sys.argv[4])
kill_node = int(sys.argv[5])
r = rep["results"]
n = r.get("sessions_held", 0) or 1
nodes = r.get("per_node", [])
kib = 1024.0

def lat(o):
    return "p50 %.2f / p99 %.2f / max %.2f ms (n=%d)" % (
        o.get("p50_ms", 0), o.get("p99_ms", 0), o.get("max_ms", 0), o.get("count", 0))

def verdict(value, goal):
    return "meets" if value <= goal else "MISSES"

print("\n== cluster scale run: %d sessions held over %d nodes ==" % (n, len(nodes)))
print("load average: start %s, sessions held %s, end %.2f" % (
    base.get("loadavg"), held.get("loadavg"), rep["machine"]["loadavg_1m_end"]))
print("setup: %d sessions ok, %d failed, %.1f s; sign-up %.1f s" % (
    rep["setup"]["sessions_ok"], rep["setup"]["sessions_failed"], rep["setup"]["seconds"],
    rep["provision"]["seconds"]))
for i, node in enumerate(nodes):
    print("  n%d: %d sessions, RSS %.1f -> %.1f MB, %.0f B/session, %d fds" % (
        i + 1, node.get("sessions", 0), node.get("rss_before_bytes", 0) / 1e6,
        node.get("rss_held_bytes", 0) / 1e6, node.get("rss_per_session_bytes", 0),
        node.get("open_fds_held", 0)))
per = r.get("server_rss_per_session_bytes", 0)
print("parleyd memory per session: %.0f B (worst node %.0f B)  goal <= 10 KB: %s" % (
    per, r.get("server_rss_per_session_bytes_worst_node", 0), verdict(per, 10240)))
redis = (held["redis_used_memory"] - idle["redis_used_memory"]) / n
print("Redis used_memory per session: %.0f B (%.1f -> %.1f MB)  goal <= 600 B: %s" % (
    redis, idle["redis_used_memory"] / 1e6, held["redis_used_memory"] / 1e6, verdict(redis, 600)))
machine = (held["machine_used_kib"] - base["machine_used_kib"]) * kib
print("whole machine, memory in use: +%.2f GB with the sessions held (%.2f -> %.2f GB, "
      "bench clients included)  goal <= 4 GB: %s" % (
          machine / 1e9, base["machine_used_kib"] * kib / 1e9, held["machine_used_kib"] * kib / 1e9,
          verdict(machine, 4e9)))
print("  PSS held: nodes %.2f GB, Redis %.1f MB, PostgreSQL %.1f MB, parley-bench %.2f GB" % (
    held["nodes_pss_kib"] * kib / 1e9, held["redis_pss_kib"] * kib / 1e6,
    held["pg_pss_kib"] * kib / 1e6, held["bench_pss_kib"] * kib / 1e9))
print("traffic: %d sent, %d ok, %d failed, %d delivered (%d cross-node, %d same node), %d skipped, "
      "%.0f msgs/s" % (r["sent"], r["ok"], r["failed"], r["delivered"],
                      r.get("delivered_cross_node", 0), r.get("delivered_same_node", 0),
                      r["skipped"], r["sent_per_s"]))
cross = r.get("latency_send_to_delivered_cross_node", {})
print("send -> ok: " + lat(r["latency_send_to_ok"]))
print("send -> delivered, cross-node: %s  goal p99 <= 10 ms: %s" % (
    lat(cross), verdict(cross.get("p99_ms", 1e9), 10)))
print("send -> delivered, same node:  " + lat(r.get("latency_send_to_delivered_same_node", {})))
k = r.get("kill", {})
expected = nodes[kill_node - 1].get("sessions", 0) if len(nodes) >= kill_node else 0
back = k.get("kill_to_back", {})
print("SIGKILL n%d (%d sessions): %d clients moved, %d back, %d not back, %d tries (%d failed)%s" % (
    kill_node, expected, k.get("clients_moved", 0), k.get("clients_back", 0),
    k.get("clients_not_back", 0), k.get("reconnect_tries", 0), k.get("reconnect_failed_tries", 0),
    ("; " + k["error"]) if "error" in k else ""))
print("kill -> back (hello ok on another node): %s  goal p99 <= 2 s: %s" % (
    lat(back), verdict(back.get("p99_ms", 1e9), 2000)))
print("  of which kill -> the client sees the close: %s; close -> back: %s" % (
    lat(k.get("kill_to_close", {})), lat(k.get("close_to_back", {}))))
print("errors: %s" % json.dumps(rep.get("errors", {})))
EOF
for i in $(seq 1 "$NODES"); do
  echo "n$i: /ready answered 503 $(grep -c " n$i 503\$" "$DIR/ready.log") times (polled every 200 ms);" \
    "'bus unreachable' logged $(grep -c 'bus unreachable' "$DIR/n$i/parleyd.log") times," \
    "'no reply within' $(grep -c 'no reply within' "$DIR/n$i/parleyd.log")"
done
cp "$DIR/ready.log" "$OUT/" 2>/dev/null || true
say "report: $OUT/scale.json (command in $OUT/command.txt)"
