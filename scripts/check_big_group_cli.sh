#!/bin/bash
# By-hand check of issue 17 with the real binaries: a fresh parleyd, 256
# users logged in with the parley CLI (keys published), one creates a group
# with the other 255 and sends two encrypted messages with
# `parley send --group`; three members print the group's history (decrypted).
# Usage: scripts/check_big_group_cli.sh [BUILD_DIR [MEMBERS]]
# (default: build, 255 members besides the sender)
# Takes minutes (512 CLI runs for the logins); not part of make test.
set -u
B=${1:-build}
N=${2:-255}
W=$(mktemp -d /tmp/parley-big-group-XXXXXX)
mkdir -p "$W/data" "$W/xdg"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$B/parleyd" --listen 127.0.0.1:$PORT --data-dir "$W/data" --sms-provider "file:$W/sms" \
  --otp-per-address-per-hour 0 --otp-per-phone 0 --device-send-rate 0 2>"$W/parleyd.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 50); do grep -q listening "$W/parleyd.log" && break; sleep 0.2; done
export XDG_DATA_HOME=$W/xdg
P="$B/cli/parley --json --server http://127.0.0.1:$PORT"
last() { python3 -c "import json,sys;print(json.loads(sys.stdin.readlines()[-1])$1)"; }
login() { # profile phone -> user id
  $P --profile "$1" login --phone "$2" --request-code >/dev/null || return 1
  code=$(grep "\"$2\"" "$W/sms" | tail -1 | last '["code"]')
  $P --profile "$1" login --phone "$2" --code "$code" | last '["user_id"]'
}
t0=$(date +%s.%N)
login sender +15557000000 >/dev/null
pids=()
for i in $(seq 1 "$N"); do
  (login u$i +1555710$(printf %04d $i) >"$W/m.$i" || echo "login $i failed") &
  pids+=($!)
  if ((i % 8 == 0)); then wait "${pids[@]}"; pids=(); fi
done
wait "${pids[@]}"
cat "$W"/m.* >"$W/members"
echo "logins: $(wc -l <"$W/members") members in $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s"
G=$($P --profile sender group create big $(cat "$W/members") | last '["group_id"]')
echo "group $G: $($P --profile sender group info "$G" | last '["members"].__len__()') members"
for n in 1 2; do
  s=$(date +%s.%N)
  $P --profile sender send --group "$G" "hello 256, message $n"
  echo "exit $?; send $n took $(python3 -c "print(round($(date +%s.%N)-$s,2))") s"
done
for i in 1 $(((N + 1) / 2)) "$N"; do
  echo "u$i:"
  $P --profile u$i history --group "$G" | tail -2
done
