#!/bin/bash
# CPU time per delivered message, for before/after pairs on a loaded machine
# (docs/benchmarks.md, "CPU per message").
#
#   bench/cpu_per_message.sh LABEL DIR RATE SECONDS
#
# DIR holds a parleyd and a parley-bench (copy the two binaries of each
# build to compare into a directory of its own, with the same parley-bench).
# Starts DIR/parleyd on a fresh data directory, signs 1,000 users up with a
# short chat run (not measured), then reads parleyd's utime+stime from
# /proc/PID/stat before and after `chat --users 1000 --rate RATE --duration
# SECONDS --warmup 0 --drain 30`, and counts parleyd's sendmsg/recvmsg and
# all syscalls meanwhile with `perf stat` (tracepoints; needs root or
# perf_event_paranoid <= 1, else those figures are left out). Prints one line:
# messages, delivered, server CPU, the store-writer thread's CPU (RocksDB) and
# bench CPU per delivered message, syscalls
# per delivered message, WebSocket frames the server sent and receipt events
# per delivered message, latency, and the 1-minute load at the start.
# BENCH_EXTRA: more options for the measured chat run (e.g. --own-copy).
set -u
LABEL=$1; BIN=$2; RATE=$3; DUR=$4
W=$(mktemp -d /tmp/cpu-per-message.XXXXXX)
trap 'rm -rf "$W"' EXIT
ulimit -n "$(ulimit -Hn)"
"$BIN/parleyd" --listen 127.0.0.1:0 --data-dir "$W/data" --log-level warn \
  --sms-provider "file:$W/codes.jsonl" --otp-per-address-per-hour 0 --otp-per-phone 0 \
  --device-send-rate 0 --device-write-rate 0 --device-fanout-rate 0 > "$W/out" 2> "$W/err" &
PID=$!
for _ in $(seq 200); do grep -q listening "$W/out" && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' "$W/out" | head -1)
if [ -z "$URL" ]; then echo "parleyd did not start" >&2; kill $PID; exit 1; fi
B=("$BIN/parley-bench" --url "$URL" --otp-file "$W/codes.jsonl" --accounts "$W/acc.jsonl" --no-progress --json)
"${B[@]}" chat --users 1000 --rate 2000 --duration 2 --warmup 1 > /dev/null 2>&1
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
# The store's writer thread alone (RocksDB; 0 when there is none).
writer_cpu() {
  local t
  for t in "/proc/$PID/task"/*; do
    if [ "$(cat "$t/comm" 2> /dev/null)" = store-writer ]; then awk '{print $14+$15}' "$t/stat"; return; fi
  done
  echo 0
}
frames() { curl -s "$URL/metrics" | awk '/^parley_ws_frames_out_total/ {n += $2} END {print n + 0}'; }
F0=$(frames)
C0=$(cpu); WC0=$(writer_cpu); L0=$(cut -d' ' -f1 /proc/loadavg)
perf stat -x, -e syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,raw_syscalls:sys_enter \
  -p $PID -o "$W/pstat" > /dev/null 2>&1 &
PS=$!
TIMEFORMAT='%U %S'
# shellcheck disable=SC2086
BT=$( { time "${B[@]}" chat --users 1000 --rate "$RATE" --duration "$DUR" --warmup 0 --drain 30 \
  ${BENCH_EXTRA:-} > "$W/run.json" 2> /dev/null; } 2>&1 )
C1=$(cpu); WC1=$(writer_cpu)
F1=$(frames)
kill -INT $PS 2> /dev/null; wait $PS 2> /dev/null
kill $PID; wait $PID 2> /dev/null
python3 - "$LABEL" "$C0" "$C1" "$BT" "$L0" "$W/run.json" "$W/pstat" "$F0" "$F1" "$WC0" "$WC1" <<'PY'
import json, os, sys
label, c0, c1, bt, load, run, pstat, f0, f1, wc0, wc1 = sys.argv[1:]
res = json.load(open(run))["results"]
d = res["delivered"]
server = (float(c1) - float(c0)) / os.sysconf("SC_CLK_TCK")
writer = (float(wc1) - float(wc0)) / os.sysconf("SC_CLK_TCK")
bench = sum(map(float, bt.split()))
lat = res["latency_send_to_delivered"]
calls = {}
if os.path.exists(pstat):
    for line in open(pstat):
        p = line.strip().split(",")
        if len(p) > 3 and p[0].isdigit():
            calls[p[2].split(":")[-1].replace("sys_enter_", "")] = int(p[0])
syscalls = " ".join(f"{k}/msg={v / d:.2f}" for k, v in calls.items()) if d else ""
print(f"{label} load={load} sent={res['sent']} delivered={d} unanswered={res['unanswered']} "
      f"server_cpu={server:.2f}s ({server / d * 1e6:.0f} us/msg) "
      f"writer_cpu={writer:.2f}s ({writer / d * 1e6:.0f} us/msg) "
      f"bench_cpu={bench:.2f}s ({bench / d * 1e6:.0f} us/msg) "
      f"frames_out/msg={(float(f1) - float(f0)) / d:.2f} "
      f"receipt_events/msg={res.get('receipt_events', float('nan')) / d:.2f} "
      f"p50={lat['p50_ms']} p99={lat['p99_ms']} ms {syscalls}")
PY
