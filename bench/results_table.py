#!/usr/bin/env python3
"""The goals table of a `make bench` run (bench/run.sh).

Reads the --json reports that bench/run.sh leaves in REPORTS (connect,
chat-max, chat-5000, chat-half, sync, storm, fanout, startup), prints a
markdown section with the date, commit, machine, load and one row per goal,
and, with --doc, replaces everything between the lines
`<!-- bench:begin -->` and `<!-- bench:end -->` of that file with it.
Nothing outside the markers is touched, so running it again leaves one
table. A missing or failed report gives a row that says so.

Only the Python standard library is used.
"""
import argparse
import datetime
import json
import os
import sys
import tempfile

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
# Order of the runs in bench/run.sh, for the load line under the table.
RUNS = ["connect", "chat-rate", "chat-max", "chat-half", "chat-5000", "sync", "storm", "fanout"]


def load(reports, name):
    try:
        with open(os.path.join(reports, name + ".json")) as f:
            r = json.load(f)
        return r if isinstance(r, dict) else None
    except (OSError, ValueError):
        return None


def get(r, *path, default=0):
    cur = r
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return default
        cur = cur[k]
    return cur if cur is not None else default


def problems(r):
    """Errors, failed, skipped or unanswered requests in a report, as text ('' if none)."""
    parts = []
    errors = sum(v for v in get(r, "errors", default={}).values() if isinstance(v, (int, float)))
    if errors:
        parts.append(f"{errors:,.0f} errors")
    res = get(r, "results", default={})
    for key in ("failed", "sessions_failed", "skipped", "skipped_overload", "unanswered"):
        if res.get(key):
            parts.append(f"{key.replace('_', ' ')}: {res[key]:,.0f}")
    return "; ".join(parts)


def yes(ok):
    return "yes" if ok else "**no**"


def row(figure, goal, r, measure):
    """measure(r) -> (measured text, met bool); r None -> no report."""
    if r is None:
        return [figure, goal, "no report (the run failed or was skipped; see its log)", "—"]
    try:
        text, met = measure(r)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        return [figure, goal, f"report unreadable ({e})", "—"]
    p = problems(r) if "scenario" in r else ""
    if p:
        text += f"; {p}"
        met = False
    return [figure, goal, text, yes(met)]


def lat(r, name):
    h = get(r, "results", name, default={})
    return float(h.get("p50_ms", 0)), float(h.get("p99_ms", 0)), int(h.get("count", 0))


def m_memory(r):
    res = r["results"]
    per, held = float(res["server_rss_per_session_bytes"]), int(res["sessions_held_at_end"])
    text = (f"{per:,.0f} B/session ({held:,} sessions held; server RSS "
            f"{res['server_rss_before_bytes'] / 1e6:.1f} → {res['server_rss_held_bytes'] / 1e6:.1f} MB)")
    return text, held > 0 and per <= 6 * 1024  # issue 15


def m_max(r):
    res = r["results"]
    ok = float(res["ok_per_s"])
    return (f"{ok:,.0f} msgs/s ok, {float(res['delivered_per_s']):,.0f} delivered/s "
            f"({int(get(r, 'params', 'users')):,} users, closed loop)", ok >= 60000)


def m_chat(p50_goal, p99_goal, half_of=None):
    def measure(r):
        res = r["results"]
        p50, p99, n = lat(r, "latency_send_to_delivered")
        rate = float(get(r, "params", "rate"))
        at = f"at {rate:,.0f}/s"
        if half_of is not None:
            at += f", half of {half_of:,.0f}"
        text = (f"send→delivered p50 {p50:.2f} / p99 {p99:.2f} ms ({at}; "
                f"{float(res['delivered_per_s']):,.0f} delivered/s, {int(get(r, 'params', 'users')):,} users)")
        ok = n > 0 and p99 <= p99_goal and (p50_goal is None or p50 <= p50_goal)
        return text, ok
    return measure


def m_sync(r):
    res = r["results"]
    s, got, want = float(res["sync_seconds"]), int(res["received"]), int(res["messages"])
    text = f"{s:.3f} s for {got:,} of {want:,} events ({float(res['sync_events_per_s']):,.0f} events/s)"
    if not res.get("complete", False):
        text += ", incomplete"
    return text, bool(res.get("complete")) and got == want and s <= 0.2


def m_fanout(r):
    res = r["results"]
    p50, p99, n = lat(r, "latency_send_to_last_member")
    sent, complete = int(res["sent"]), int(res["messages_complete"])
    text = (f"send→last member p50 {p50:.1f} / p99 {p99:.1f} ms ({int(res['members'])} members, "
            f"{float(res['ok_per_s']):,.0f} msgs/s; {complete:,} of {sent:,} reached all)")
    return text, n > 0 and complete == sent and p99 <= 20


def m_storm(r):
    res = r["results"]
    s = float(res["sessions_per_s"])
    rate = get(r, "params", "rate")
    p50, p99, _ = lat(r, "session_latency")
    return (f"{s:,.0f} sessions/s ({int(res['sessions_ok']):,} in all; rate {rate}; "
            f"session p50 {p50:.1f} / p99 {p99:.1f} ms)", s >= 10000)


def m_start(r):
    fresh, existing = r["fresh"]["ready_ms"], r["existing"]["ready_ms"]
    text = (f"median {fresh['median']:.0f} ms on a fresh data dir (min {fresh['min']:.0f}, max "
            f"{fresh['max']:.0f}); restart on an existing one: median {existing['median']:.0f} ms "
            f"(min {existing['min']:.0f}, max {existing['max']:.0f}); {r['runs']} runs each")
    return text, fresh["median"] <= 200 and existing["median"] <= 200


def m_idle(r):
    f, e = r["fresh"]["idle"], r["existing"]["idle"]
    worst = max(f["vmrss_bytes"], e["vmrss_bytes"])
    text = (f"VmRSS {f['vmrss_bytes'] / 1e6:.1f} MB fresh, {e['vmrss_bytes'] / 1e6:.1f} MB after a "
            f"restart (/metrics: {(f['metrics_rss_bytes'] or 0) / 1e6:.1f} / "
            f"{(e['metrics_rss_bytes'] or 0) / 1e6:.1f} MB), {r['idle_s']} s after start")
    if f.get("rss_anon_bytes") is not None and f.get("rss_file_bytes") is not None:
        text += (f"; fresh: {f['rss_anon_bytes'] / 1e6:.1f} MB anonymous, "
                 f"{f['rss_file_bytes'] / 1e6:.1f} MB file-backed (binary and libraries)")
    return text, worst <= 30e6


def machine():
    model, mem_kb = "?", 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    return len(os.sched_getaffinity(0)), model, mem_kb


def section(args):
    rep = {n: load(args.reports, n) for n in RUNS + ["startup"]}
    startup = rep["startup"]
    if startup is not None and ("fresh" not in startup or "existing" not in startup):
        startup = None
    half_of = get(rep["chat-max"], "results", "ok_per_s", default=None) if rep["chat-max"] else None

    rows = [
        row("memory per idle session", "≤ 6 KiB", rep["connect"], m_memory),
        row("1:1 msgs/s at max", "≥ 60,000/s", rep["chat-max"], m_max),
        row("latency at 5,000/s", "p99 ≤ 1 ms", rep["chat-5000"], m_chat(None, 1.0)),
        row("latency at half of max", "p50 ≤ 1 ms, p99 ≤ 5 ms", rep["chat-half"],
            m_chat(1.0, 5.0, half_of)),
        row("sync of a 10,000 backlog", "≤ 0.2 s", rep["sync"], m_sync),
        row("fanout at 100/s, to the last member", "p99 ≤ 20 ms", rep["fanout"], m_fanout),
        row("new sessions/s (storm)", "≥ 10,000/s", rep["storm"], m_storm),
        row("cold start to listening", "≤ 200 ms", startup, m_start),
        row("idle RSS", "≤ 30 MB", startup, m_idle),
    ]

    cpus, model, mem_kb = machine()
    with open("/proc/loadavg") as f:
        load_end = " / ".join(f.read().split()[:3])
    end = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M")
    out = []
    out.append(f"Run on {args.started}–{end} UTC at commit `{args.commit}`, scale `{args.scale}`, "
               f"with `bench/run.sh`. Machine: {cpus} CPUs ({model}), MemTotal "
               f"{mem_kb / 1048576:.1f} GiB. Load average (1 / 5 / 15 min): {args.load_start} at the "
               f"start, {load_end} at the end. MB = 10⁶ bytes.")
    if args.scale != "full":
        out.append("")
        out.append(f"**Scale `{args.scale}`**: small user counts and rates, a few seconds per "
                   "scenario. These figures only show that the run works; they say nothing about "
                   "the goals.")
    out.append("")
    out.append("| figure | goal | measured | met? |")
    out.append("|---|---|---|---|")
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    loads = []
    for n in RUNS:
        r = rep[n]
        if r is None:
            continue
        loads.append(f"{n} {get(r, 'machine', 'loadavg_1m_start'):.2f} "
                     f"({get(r, 'server', 'cpu_cores_during_run'):.2f} / "
                     f"{get(r, 'bench', 'cpu_cores_during_run'):.2f})")
    if startup is not None:
        loads.insert(0, f"startup {get(startup, 'machine', 'loadavg_1m_start'):.2f}")
    out.append("")
    out.append("1-minute load at the start of each run (server / bench CPU cores during it): "
               + ", ".join(loads) + "." if loads else "No reports.")
    return "\n".join(out) + "\n"


def rewrite(doc, body):
    with open(doc) as f:
        text = f.read()
    # The markers count only as lines of their own (the prose may name them).
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1:
        raise SystemExit(f"results_table: {doc} needs exactly one line {BEGIN} and one line {END}")
    b, e = begins[0], ends[0]
    if e < b:
        raise SystemExit(f"results_table: {END} comes before {BEGIN} in {doc}")
    new = "".join(lines[:b + 1]) + body + "".join(lines[e:])
    if new == text:
        return
    d = os.path.dirname(os.path.abspath(doc))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".bench-doc.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        os.chmod(tmp, os.stat(doc).st_mode & 0o7777)
        os.replace(tmp, doc)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", required=True, help="directory with the run's *.json reports")
    ap.add_argument("--doc", help="markdown file whose bench:begin/end section is replaced")
    ap.add_argument("--scale", default="full")
    ap.add_argument("--started", required=True, help="start of the run, 'YYYY-MM-DD HH:MM' UTC")
    ap.add_argument("--commit", required=True)
    ap.add_argument("--load-start", required=True, help="'1m / 5m / 15m' load average at the start")
    args = ap.parse_args()
    body = section(args)
    print(body, end="")
    if args.doc:
        rewrite(args.doc, body)
        print(f"\n(written between the bench markers of {args.doc})")


if __name__ == "__main__":
    main()
