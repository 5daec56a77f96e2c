#!/usr/bin/env bash
# Media throughput and memory, over loopback with curl (docs/benchmarks.md):
# upload and download speed of one file, then parleyd's peak RSS (VmHWM)
# while N concurrent downloads of it run, measured on a freshly restarted
# server so that the upload's own peak does not count.
#
# Usage: bench/media_bench.sh [SIZE_MIB=100] [CONCURRENT=50]
set -euo pipefail
SIZE_MIB=${1:-100}
CONC=${2:-50}
BIN=${PARLEYD:-build/parleyd}
DIR=$(mktemp -d /tmp/parley-media-bench.XXXXXX)
PORT=${PORT:-18931}
trap 'kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT

start() {
  "$BIN" --listen "127.0.0.1:$PORT" --data-dir "$DIR/data" --sms-provider "file:$DIR/sms" \
    --log-level warn >"$DIR/log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return; sleep 0.1; done
  echo "parleyd did not start" >&2; exit 1
}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }

start
PHONE=+15550001234
curl -sf -X POST "http://127.0.0.1:$PORT/v1/auth/otp" -d "{\"phone\":\"$PHONE\"}" >/dev/null
for _ in $(seq 50); do [[ -s "$DIR/sms" ]] && break; sleep 0.1; done
CODE=$(tail -1 "$DIR/sms" | sed 's/.*"code":"\([0-9]*\)".*/\1/')
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/auth/verify" \
  -d "{\"phone\":\"$PHONE\",\"code\":\"$CODE\",\"device\":{\"name\":\"bench\",\"platform\":\"cli\"}}" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/')
head -c $((SIZE_MIB << 20)) /dev/urandom >"$DIR/file.bin"

UP=$(curl -sf -X POST -T "$DIR/file.bin" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/octet-stream" -o "$DIR/up.json" \
  -w '%{speed_upload} %{time_total}' "http://127.0.0.1:$PORT/v1/media")
ID=$(sed 's/.*"media_id":"\([0-9]*\)".*/\1/' "$DIR/up.json")
DOWN=$(curl -sf -H "Authorization: Bearer $TOKEN" -o /dev/null \
  -w '%{speed_download} %{time_total}' "http://127.0.0.1:$PORT/v1/media/$ID")
LOC=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H "Tus-Resumable: 1.0.0" \
  -H "Upload-Length: $((SIZE_MIB << 20))" -o /dev/null -w '%{redirect_url}%{header_json}' \
  "http://127.0.0.1:$PORT/v1/uploads" | sed -n 's/.*"location":\["\([^"]*\)".*/\1/p')
TUS=$(curl -sf -X PATCH -T "$DIR/file.bin" -H "Authorization: Bearer $TOKEN" \
  -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" \
  -H "Content-Type: application/offset+octet-stream" -o /dev/null \
  -w '%{speed_upload} %{time_total}' "http://127.0.0.1:$PORT$LOC")
echo "upload   ${SIZE_MIB} MiB: $(awk '{printf "%.0f MB/s (%.2f s)", $1/1e6, $2}' <<<"$UP")"
echo "tus PATCH ${SIZE_MIB} MiB: $(awk '{printf "%.0f MB/s (%.2f s)", $1/1e6, $2}' <<<"$TUS")"
echo "download ${SIZE_MIB} MiB: $(awk '{printf "%.0f MB/s (%.2f s)", $1/1e6, $2}' <<<"$DOWN")"
echo "peak RSS after upload and one download: $(hwm) KiB"

kill "$PID"; wait "$PID" 2>/dev/null || true
start
BASE=$(hwm)
T0=$(date +%s.%N)
CURLS=()
for _ in $(seq "$CONC"); do
  curl -sf -H "Authorization: Bearer $TOKEN" -o /dev/null "http://127.0.0.1:$PORT/v1/media/$ID" &
  CURLS+=($!)
done
PEAK=0
running() { for p in "${CURLS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
  H=$(hwm); if ((H > PEAK)); then PEAK=$H; fi
  sleep 0.05
done
FAILED=0
for p in "${CURLS[@]}"; do wait "$p" || FAILED=$((FAILED + 1)); done
T1=$(date +%s.%N)
H=$(hwm); if ((H > PEAK)); then PEAK=$H; fi
echo "failed downloads: $FAILED"
echo "$CONC concurrent downloads: $(awk -v a="$T0" -v b="$T1" -v n="$CONC" -v s="$SIZE_MIB" \
  'BEGIN {printf "%.2f s, aggregate %.0f MB/s", b-a, n*s*1048576/(b-a)/1e6}')"
echo "peak RSS (VmHWM): idle after restart $BASE KiB, during the downloads $PEAK KiB"
