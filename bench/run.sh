#!/usr/bin/env bash
# `make bench`: parleyd's start-up time and idle memory (bench/startup.sh, on
# servers of its own), then a fresh parleyd on a temporary data directory and
# each scenario of parley-bench briefly (--json), a one-line summary per
# scenario, and a table of the figures against the goals, which also replaces
# the text between <!-- bench:begin --> and <!-- bench:end --> in
# docs/benchmarks.md (bench/results_table.py). The server is always stopped
# at the end (SIGTERM, then SIGKILL after 15 s). Total: about 2 minutes.
#
# Environment:
#   PARLEY_BENCH_OUT  where the reports go (default: a temporary directory,
#                     printed at the end)
#   BENCH_SCALE       full (default) or smoke: every scenario shrunk to a
#                     few seconds and tens of users (about 35 s in all), to
#                     test this script
#   BENCH_DOC         the markdown file to rewrite (default
#                     docs/benchmarks.md at full scale; at smoke scale only
#                     when set); "none" or empty: do not rewrite any
set -uo pipefail

BUILD_DIR=${1:-build}
PARLEYD=$BUILD_DIR/parleyd
BENCH=$BUILD_DIR/bench/parley-bench
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
for b in "$PARLEYD" "$BENCH"; do
  [[ -x $b ]] || { echo "bench: $b is missing (make bench builds it)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "bench: needs python3 (for the table of results)" >&2; exit 1; }

scale=${BENCH_SCALE:-full}
case $scale in
  full)
    startup_runs=5
    connect=(connect --users 15000 --hold 5 --procs 2)
    chat_rate=(chat --users 1000 --rate 2000 --duration 10)
    chat_max=(chat --users 1000 --rate max --duration 10)
    chat_5000=(chat --users 1000 --rate 5000 --duration 10)
    chat_half=(chat --users 1000 --duration 10) # --rate: half of chat-max
    sync=(sync --messages 10000)
    storm=(storm --rate max --duration 5)
    fanout=(fanout --members 256 --rate 100 --duration 10)
    doc=${BENCH_DOC-$repo/docs/benchmarks.md}
    ;;
  smoke)
    startup_runs=2
    connect=(connect --users 50 --hold 1)
    chat_rate=(chat --users 50 --rate 200 --duration 2 --warmup 1)
    chat_max=(chat --users 50 --rate max --duration 2 --warmup 1)
    chat_5000=(chat --users 50 --rate 500 --duration 2 --warmup 1)
    chat_half=(chat --users 50 --duration 2 --warmup 1)
    sync=(sync --messages 500)
    storm=(storm --users 200 --rate max --duration 2 --warmup 1) # a pool above --window 64: no 4409
    fanout=(fanout --members 16 --rate 10 --duration 2 --warmup 1)
    doc=${BENCH_DOC-}
    ;;
  *) echo "bench: BENCH_SCALE must be full or smoke, not '$scale'" >&2; exit 2 ;;
esac
[[ $doc == none ]] && doc=
if [[ -n $doc && ! -w $doc ]]; then
  echo "bench: BENCH_DOC $doc is not a writable file" >&2
  exit 1
fi

started=$(date -u '+%Y-%m-%d %H:%M')
load_start=$(cut -d' ' -f1-3 /proc/loadavg | sed 's| | / |g')
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Dirty: tracked files changed, other than the document this run rewrites.
doc_rel=
[[ -n $doc ]] && doc_rel=$(realpath -m --relative-to="$repo" "$doc")
[[ $doc_rel == ../* ]] && doc_rel=
if [[ $commit != unknown ]] && [[ -n $(git -C "$repo" status --porcelain --untracked-files=no -- . \
  ${doc_rel:+":(exclude)$doc_rel"} 2>/dev/null) ]]; then
  commit+=-dirty
fi

work=$(mktemp -d /tmp/parley-bench.XXXXXX)
out=${PARLEY_BENCH_OUT:-$work/reports}
mkdir -p "$out"
failed=0
pid=
sdir=
servers=0

# Stops the current server and drops its data (its log goes with the reports).
stop_server() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  [[ -n $pid ]] && wait "$pid" 2>/dev/null
  pid=
  [[ -n $sdir ]] && rm -rf "$sdir/data"
}

stop() {
  stop_server
  if [[ $out != "$work"/* ]]; then # the reports are elsewhere
    rm -rf "$work"
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

# Start-up first, each start on a server of its own, before anything else
# runs: it stops every server it starts.
echo "bench: startup: bench/startup.sh --runs $startup_runs (load $(cut -d' ' -f1 /proc/loadavg))" >&2
if ! timeout 120 "$here/startup.sh" --json --runs "$startup_runs" "$BUILD_DIR" \
  >"$out/startup.json" 2>"$out/startup.log"; then
  echo "bench: startup failed: $(tail -n 1 "$out/startup.log")" >&2
  failed=1
fi

# Every scenario gets a fresh parleyd on an empty data directory (and signs
# its users up anew): a figure does not depend on what ran before it.
# The sign-up and send limits protect a real server; a load generator that
# signs up thousands of users from one address has to be let through.
start_server() {
  local name=$1
  sdir=$work/$name
  mkdir -p "$sdir"
  "$PARLEYD" --listen 127.0.0.1:0 --data-dir "$sdir/data" --sms-provider "file:$sdir/codes.jsonl" \
    --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 --device-write-rate 0 \
    --device-fanout-rate 0 --log-level warn \
    >"$sdir/parleyd.out" 2>"$out/$name.parleyd.log" &
  pid=$!
  url=
  for _ in $(seq 200); do
    url=$(sed -n 's/^parleyd listening on //p' "$sdir/parleyd.out")
    [[ -n $url ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $url ]]; then
    echo "bench: $name: parleyd did not start; its log:" >&2
    cat "$out/$name.parleyd.log" >&2
    return 1
  fi
  servers=$((servers + 1))
  common=(--url "$url" --otp-file "$sdir/codes.jsonl" --accounts "$sdir/accounts.jsonl" --json)
}

run() {
  local name=$1
  shift
  if ! start_server "$name"; then
    failed=1
    return
  fi
  echo "bench: $name: parley-bench $* (load $(cut -d' ' -f1 /proc/loadavg); parleyd $url)" >&2
  if ! timeout 300 "$BENCH" "$@" "${common[@]}" >"$out/$name.json" 2>"$out/$name.log"; then
    echo "bench: $name failed: $(tail -n 1 "$out/$name.log")" >&2
    failed=1
  fi
  stop_server
  sleep 2 # the next run starts on a quiet machine
}

run connect "${connect[@]}"
run chat-rate "${chat_rate[@]}"
run chat-max "${chat_max[@]}"
# Half of the measured maximum (ok msgs/s), rounded down.
half=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["results"]["ok_per_s"] // 2))' \
  "$out/chat-max.json" 2>/dev/null || echo 0)
if ((half >= 1)); then
  run chat-half "${chat_half[@]}" --rate "$half"
else
  echo "bench: chat-half skipped: no maximum from chat-max" >&2
  rm -f "$out/chat-half.json"
  failed=1
fi
run chat-5000 "${chat_5000[@]}"
run sync "${sync[@]}"
run storm "${storm[@]}"
run fanout "${fanout[@]}"

echo
echo "parley-bench summary ($(nproc) CPUs; reports in $out):"
"$BENCH" summary "$out"/connect.json "$out"/chat-rate.json "$out"/chat-max.json \
  "$out"/chat-half.json "$out"/chat-5000.json "$out"/sync.json "$out"/storm.json \
  "$out"/fanout.json || failed=1

echo
echo "Goals (bench/results_table.py):"
python3 "$here/results_table.py" --reports "$out" ${doc:+--doc "$doc"} --scale "$scale" \
  --started "$started" --commit "$commit" --load-start "$load_start" || failed=1
[[ -z $doc ]] && echo "(no BENCH_DOC at scale $scale: no document rewritten)"
exit $failed
