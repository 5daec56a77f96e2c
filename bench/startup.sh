#!/usr/bin/env bash
# bench/startup.sh [--json] [--runs N] [BUILD_DIR]
#
# parleyd's start-up time and idle memory. Starts
#   BUILD_DIR/parleyd --listen 127.0.0.1:0 --data-dir DIR --log-level warn
# N times (default 5) on a fresh, empty data directory each time, then once
# unmeasured to create a data directory and N times more restarting on that
# existing directory. Each start is timed from just before the exec until the
# "parleyd listening on http://HOST:PORT" line has appeared on its stdout AND
# a TCP connect to PORT has succeeded (polled every ~1 ms). Reports min,
# median and max in ms for each kind.
#
# Idle memory: on the last start of each kind the server is left idle for
# 2 s, then VmRSS (and its anonymous and file-backed parts, RssAnon and
# RssFile) is read from /proc/PID/status and process_resident_memory_bytes
# from GET /metrics (curl).
#
# Prints a human summary, or with --json one JSON object on stdout. The
# server is always stopped (SIGTERM, SIGKILL after 15 s), also when this
# script is interrupted; it also gets SIGKILL if this script dies
# (PR_SET_PDEATHSIG). Data directories are temporary and removed.
#
# Needs python3 and curl (nothing is installed).
set -euo pipefail

json=0
runs=5
build_dir=
while (($#)); do
  case $1 in
    --json) json=1 ;;
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --runs=*) runs=${1#--runs=} ;;
    -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "startup: unknown option $1" >&2; exit 2 ;;
    *) build_dir=$1 ;;
  esac
  shift
done
build_dir=${build_dir:-build}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "startup: --runs must be a positive integer" >&2; exit 2; }
parleyd=$build_dir/parleyd
[[ -x $parleyd ]] || { echo "startup: $parleyd is missing" >&2; exit 1; }
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "startup: needs $tool" >&2; exit 1; }
done

exec python3 - "$parleyd" "$runs" "$json" <<'PY'
import ctypes, json, os, select, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

parleyd, runs, as_json = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
PREFIX = "parleyd listening on "
START_TIMEOUT_S = 30
IDLE_S = 2

libc = ctypes.CDLL(None, use_errno=True)
def die_with_parent():  # runs in the child between fork and exec
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

class Interrupted(Exception):
    pass
def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, on_signal)

current = None  # the running server, so that it is stopped whatever happens

def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()

def start(data_dir, log_path):
    """Starts parleyd; returns (proc, port, line_ms, ready_ms)."""
    global current
    cmd = [parleyd, "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--log-level", "warn"]
    log = open(log_path, "ab")
    t0 = time.monotonic_ns()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                            preexec_fn=die_with_parent)
    current = proc
    log.close()
    deadline = t0 + START_TIMEOUT_S * 10**9
    fd = proc.stdout.fileno()
    buf = b""
    port = None
    while port is None:
        left = (deadline - time.monotonic_ns()) / 1e9
        if left <= 0:
            raise RuntimeError(f"no listening line within {START_TIMEOUT_S} s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"parleyd exited ({proc.wait()}) before listening")
        buf += chunk
        for line in buf.decode(errors="replace").splitlines(keepends=True):
            if line.startswith(PREFIX) and line.endswith("\n"):
                port = int(line[len(PREFIX):].strip().rsplit(":", 1)[1])
    t_line = time.monotonic_ns()
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                pass
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"parleyd exited ({proc.returncode}) before accepting")
            if time.monotonic_ns() > deadline:
                raise RuntimeError(f"port {port} did not accept within {START_TIMEOUT_S} s")
            time.sleep(0.001)
    t_ready = time.monotonic_ns()
    return proc, port, (t_line - t0) / 1e6, (t_ready - t0) / 1e6

def idle_memory(proc, port):
    time.sleep(IDLE_S)
    status = {}
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                n = int(value.split()[0])
                status[key] = n if key == "Threads" else n * 1024
    metrics_rss = None
    out = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"],
                         capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("process_resident_memory_bytes"):
            metrics_rss = int(float(line.split()[-1]))
    return {"vmrss_bytes": status.get("VmRSS"), "metrics_rss_bytes": metrics_rss,
            # VmRSS = RssAnon (heap, stacks) + RssFile (mapped binary and shared
            # libraries) + RssShmem
            "rss_anon_bytes": status.get("RssAnon"), "rss_file_bytes": status.get("RssFile"),
            "threads": status.get("Threads")}

def stats(xs):
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3),
            "max": round(max(xs), 3), "all": [round(x, 3) for x in xs]}

def measure(kind, data_dir_for, work):
    ready, line, memory = [], [], None
    for i in range(runs):
        data_dir = data_dir_for(i)
        proc, port, line_ms, ready_ms = start(data_dir, os.path.join(work, "parleyd.log"))
        line.append(line_ms)
        ready.append(ready_ms)
        if i == runs - 1:
            memory = idle_memory(proc, port)
        stop(proc)
        if kind == "fresh":
            shutil.rmtree(data_dir, ignore_errors=True)
    return {"ready_ms": stats(ready), "line_ms": stats(line), "idle": memory}

def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])

work = tempfile.mkdtemp(prefix="parley-startup.")
report = {"parleyd": parleyd, "runs": runs, "idle_s": IDLE_S,
          "machine": {"cpus": len(os.sched_getaffinity(0)), "loadavg_1m_start": loadavg()}}
rc = 0
try:
    report["fresh"] = measure("fresh", lambda i: os.path.join(work, f"fresh-{i}"), work)
    existing = os.path.join(work, "existing")
    proc, _, _, _ = start(existing, os.path.join(work, "parleyd.log"))  # creates it, not counted
    stop(proc)
    report["existing"] = measure("existing", lambda i: existing, work)
except (Exception, Interrupted) as e:
    rc = 130 if isinstance(e, Interrupted) else 1
    report["error"] = str(e)
    try:
        with open(os.path.join(work, "parleyd.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        if tail:
            print("startup: parleyd's log:\n" + tail, file=sys.stderr)
    except OSError:
        pass
finally:
    if current is not None:
        stop(current)
    shutil.rmtree(work, ignore_errors=True)
report["machine"]["loadavg_1m_end"] = loadavg()

if as_json:
    print(json.dumps(report))
else:
    def mb(b):
        return "?" if b is None else f"{b / 1e6:.1f} MB"
    print(f"parleyd start-up: exec until the listening line and a TCP connect, {runs} runs each "
          f"({report['machine']['cpus']} CPUs, load {report['machine']['loadavg_1m_start']:.2f})")
    for kind, label in (("fresh", "fresh data dir   "), ("existing", "existing data dir")):
        r = report.get(kind)
        if not r:
            continue
        s, l = r["ready_ms"], r["line_ms"]
        print(f"  {label}  min {s['min']:.1f}  median {s['median']:.1f}  max {s['max']:.1f} ms"
              f"   (line alone: median {l['median']:.1f} ms)")
    for kind in ("fresh", "existing"):
        r = report.get(kind)
        if r and r["idle"]:
            m = r["idle"]
            print(f"  idle after {IDLE_S} s ({kind} data dir): VmRSS {mb(m['vmrss_bytes'])} "
                  f"(anon {mb(m['rss_anon_bytes'])}, file {mb(m['rss_file_bytes'])}; "
                  f"{m['threads']} threads), /metrics process_resident_memory_bytes "
                  f"{mb(m['metrics_rss_bytes'])}")
if "error" in report:
    print(f"startup: {report['error']}", file=sys.stderr)
sys.exit(rc)
PY
