#!/usr/bin/env python3
"""End-to-end benchmark: healthgate side by side with nginx and blackbox_exporter.

Run through benches/e2e.sh (which installs nginx, wrk and
prometheus-blackbox-exporter and builds the release binary). Everything
listens on 127.0.0.1; every load loop is bounded in time. Servers run pinned
to CPU 0, load generators and targets to CPU 1, so the ratios compare like
with like. Prints a Markdown report on stdout; progress goes to stderr.

Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS (per round, default 10),
BENCH_PROBE_COUNTS (default "100,1000,10000"), BENCH_ONLY=acting (only
section 5, acting on health), BENCH_ONLY=state (only section 6, the state
store).
"""

import http.client
import http.server
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "healthgate")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
PROBE_COUNTS = [int(n) for n in os.environ.get("BENCH_PROBE_COUNTS", "100,1000,10000").split(",")]
TICK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="healthgate-bench-")
children = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, cpu, name, env=None):
    out = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdout=out, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    children.append(p)
    return p


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def stolen_seconds(cpu=0):
    """Time the hypervisor gave CPU `cpu` to someone else (steal, /proc/stat):
    on a shared VM, what can stall a run whatever the code does."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                return int(fields[8]) / TICK
    return 0.0


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url, within=30):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {within}s")


def get(port, path, timeout=2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --- the peers ---------------------------------------------------------------

def nginx(cpu, name):
    """A single-process nginx: `return 200` everywhere, stub_status at /status."""
    port = free_port()
    conf = os.path.join(WORK, name + ".conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1;
pid {WORK}/{name}.pid; error_log {WORK}/{name}.err warn;
events {{ worker_connections 16384; }}
http {{
  access_log off; keepalive_requests 100000000; keepalive_timeout 60s;
  client_body_temp_path {WORK}; proxy_temp_path {WORK}; fastcgi_temp_path {WORK};
  uwsgi_temp_path {WORK}; scgi_temp_path {WORK};
  server {{
    listen 127.0.0.1:{port} backlog=16384;
    location = /status {{ stub_status; }}
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
""")
    p = spawn(["nginx", "-c", conf, "-p", WORK], cpu, name)
    wait_http(f"http://127.0.0.1:{port}/status")
    return p, port


def nginx_requests(port):
    _, body = get(port, "/status")
    # "server accepts handled requests\n A B C"
    return int(body.decode().split("\n")[2].split()[2])


def healthgate(checks_toml, cpu, name, extra=""):
    port, admin = free_port(), free_port()
    path = os.path.join(WORK, name + ".toml")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
[reload]
poll_interval = "0s"
debounce = "50ms"
{extra}
{checks_toml}""")
    env = dict(os.environ, RUST_LOG="warn")
    p = spawn([BIN, "run", "--config", path], cpu, name, env)
    wait_http(f"http://127.0.0.1:{admin}/livez")
    return p, port, admin, path


def http_checks(n, target_port, interval="1s", timeout="2s"):
    return f'[defaults]\ninterval = "{interval}"\ntimeout = "{timeout}"\n' + "".join(
        f'[[checks]]\nname = "c{i}"\ntype = "http"\nurl = "http://127.0.0.1:{target_port}/ok?{i}"\n'
        for i in range(n))


# --- wrk -----------------------------------------------------------------------

def wrk(url, connections=64, close=False, seconds=SECONDS):
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    pct = {}
    for q, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[q] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]  # ms
    return {"rps": rps, "total": total, "p50": pct.get("50"), "p99": pct.get("99"),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def measured_wrk(pid, url, close):
    before = cpu_seconds(pid)
    r = wrk(url, close=close)
    r["cpu_us_per_req"] = (cpu_seconds(pid) - before) / max(r["total"], 1) * 1e6
    return r


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


# --- 1. verdict endpoint -----------------------------------------------------------

def verdict_endpoint():
    log("1. /readyz vs nginx return 200")
    target, target_port = nginx(1, "target-1")
    gate, port, _, _ = healthgate(http_checks(1, target_port), 0, "gate-1")
    poll_until(port, 200, 10)  # the check has its first verdict
    server, server_port = nginx(0, "nginx-1")
    results = {}
    for mode, close in [("keep-alive", False), ("new connection", True)]:
        for name, pid, url in [("healthgate /readyz", gate.pid, f"http://127.0.0.1:{port}/readyz"),
                               ("nginx return 200", server.pid, f"http://127.0.0.1:{server_port}/ok")]:
            runs = [measured_wrk(pid, url, close) for _ in range(ROUNDS)]
            bad = [r for r in runs if r["non2xx"] or r["socket_errors"]]
            results[(mode, name)] = {k: median_of(runs, k) for k in ["rps", "p50", "p99", "cpu_us_per_req"]}
            results[(mode, name)]["errors"] = "; ".join(f"{r['non2xx']} non-2xx {r['socket_errors']}" for r in bad)
            log(f"   {mode:15} {name:20} {results[(mode, name)]}")
    for p in (gate, server, target):
        stop(p)
    return results


# --- 2. probe cost ------------------------------------------------------------------

def ms(value):
    """A lateness for the report: past the histogram's top bucket (1 s) it is only known to be more."""
    return "> 1000" if value == float("inf") else f"{value:.1f}"


def lateness_buckets(body):
    """The start-lateness histogram's cumulative buckets in a `/metrics` body, {le: count}."""
    return {float("inf") if le == "+Inf" else float(le): float(count)
            for le, count in re.findall(
                r'^healthgate_scheduler_lateness_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$',
                body.decode(), re.M)}


def lateness_p99(before, after):
    """p99 start lateness (ms) of the starts between two bucket readings,
    interpolated in the histogram's buckets; and how many starts."""
    buckets = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = buckets[-1][1]
    rank = 0.99 * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return float("inf"), total
            return (lower_le + (le - lower_le) * (rank - lower_count) / max(count - lower_count, 1)) * 1e3, total
        lower_le, lower_count = le, count
    return float("nan"), total


def probe_cost_healthgate(n, interval="1s"):
    """Steady state: after the first runs, ROUNDS windows of SECONDS, each
    opened by a /metrics scrape as Prometheus would make (every 10 s by
    default, more often than the usual 15-60 s), so the lateness, CPU and
    RSS include rendering the exposition. CPU is read in clock ticks (10 ms),
    so the figures come from the sums over all windows, not a median: at 100
    checks a window holds only about 11 ticks."""
    target, target_port = nginx(1, f"target-{n}")
    gate, _, admin, _ = healthgate(http_checks(n, target_port, interval=interval), 0, f"gate-{n}-{interval}")
    time.sleep(5)  # every check has made its first run (jitter < 1 interval, at most 2 s)
    windows, rss, scrapes, before, stolen = [], 0.0, [], None, -stolen_seconds()
    for _ in range(ROUNDS):
        c0, r0, t0 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
        _, body = get(admin, "/metrics", timeout=30)
        scrapes.append(time.monotonic() - t0)
        before = before or lateness_buckets(body)
        rss = max(rss, rss_mb(gate.pid))
        time.sleep(max(0.0, SECONDS - (time.monotonic() - t0)))
        c1, r1, t1 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
        probes = r1 - r0 - 1  # the stub_status request itself
        windows.append((probes, c1 - c0, t1 - t0))
    stolen += stolen_seconds()
    rss = max(rss, rss_mb(gate.pid))
    p99, starts = lateness_p99(before, lateness_buckets(get(admin, "/metrics", timeout=30)[1]))
    stop(gate)
    stop(target)
    probes, cpu, seconds = (sum(w[i] for w in windows) for i in range(3))
    result = {"probes_per_s": probes / seconds, "cpu_per_1000": cpu / probes * 1000, "cpu_share": cpu / seconds}
    result.update(rss=rss, lateness_p99_ms=p99, starts=starts, scrape_ms=statistics.median(scrapes) * 1e3,
                  interval=interval, stolen_share=stolen / seconds)
    log(f"   healthgate {n:6} checks every {interval}: {result}")
    return result


def paced(port, path, rate, seconds, threads):
    """GETs `path` `rate` times a second for `seconds`, spread over `threads`
    keep-alive connections, as Prometheus scraping `rate` targets each second
    would. Runs on CPU 1 with the targets. Returns how many failed."""
    failed = []
    start = time.monotonic()
    period = threads / rate

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        due = start + k * period / threads
        while due < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                c.request("GET", path)
                if b"probe_success 1" not in c.getresponse().read():
                    failed.append(k)
            except OSError:
                failed.append(k)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            due += period

    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        os.sched_setaffinity(0, affinity)
    return len(failed)


def probe_cost_blackbox(rates):
    """blackbox_exporter driven by wrk at its full rate (8 connections), then
    paced at each of `rates` probes a second it can keep up with (below 80 %
    of its full rate), the rates healthgate ran at: a
    prober's CPU per probe depends on the rate (at full rate nothing sleeps
    and its target never has to be woken)."""
    target, target_port = nginx(1, "target-bb")
    port = free_port()
    conf = os.path.join(WORK, "blackbox.yml")
    with open(conf, "w") as f:
        f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n"
                "    http:\n      preferred_ip_protocol: ip4\n")
    bb = spawn(["prometheus-blackbox-exporter", f"--config.file={conf}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], 0, "blackbox")
    url = f"http://127.0.0.1:{port}/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/ok"
    wait_http(url)
    runs = []
    for _ in range(ROUNDS):
        c0, r0 = cpu_seconds(bb.pid), nginx_requests(target_port)
        w = wrk(url, connections=8)
        probes = nginx_requests(target_port) - r0 - 1
        ok = b"probe_success 1" in get(port, url.split(str(port), 1)[1])[1]
        runs.append({"probes_per_s": w["rps"], "cpu_per_1000": (cpu_seconds(bb.pid) - c0) / probes * 1000,
                     "probes": probes, "requests": w["total"], "success": ok})
    result = {k: statistics.median(r[k] for r in runs) for k in ["probes_per_s", "cpu_per_1000"]}
    result["rss"] = rss_mb(bb.pid)
    result["all_succeeded"] = all(r["success"] for r in runs)
    result["paced"] = {}
    path = url.split(str(port), 1)[1]
    for rate in (r for r in rates if r < 0.8 * result["probes_per_s"]):
        c0, r0, t0 = cpu_seconds(bb.pid), nginx_requests(target_port), time.monotonic()
        failed = paced(port, path, rate, ROUNDS * SECONDS, threads=max(2, rate // 50))
        c1, r1, t1 = cpu_seconds(bb.pid), nginx_requests(target_port), time.monotonic()
        probes = r1 - r0 - 1
        result["paced"][rate] = {"probes_per_s": probes / (t1 - t0), "cpu_per_1000": (c1 - c0) / probes * 1000,
                                 "cpu_share": (c1 - c0) / (t1 - t0), "rss": rss_mb(bb.pid), "failed": failed}
    log(f"   blackbox_exporter: {result} {runs}")
    stop(bb)
    stop(target)
    return result


# --- 3. idle ------------------------------------------------------------------------

def idle_rss():
    gate, _, _, _ = healthgate("", 0, "gate-idle")
    time.sleep(3)
    rss = rss_mb(gate.pid)
    stop(gate)
    return rss


# --- 4. reaction ----------------------------------------------------------------------

class Flip(http.server.BaseHTTPRequestHandler):
    healthy = True

    def do_GET(self):
        code = 200 if Flip.healthy else 503
        self.send_response(code)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def poll_until(port, want, within, path="/readyz"):
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            if get(port, path)[0] == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"{path} did not answer {want} within {within}s")


def reaction():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    interval, threshold, timeout = 1.0, 3, 1.0
    checks = (f'[defaults]\ninterval = "1s"\ntimeout = "1s"\nfailure_threshold = {threshold}\n'
              f'[[checks]]\nname = "api"\ntype = "http"\nurl = "http://127.0.0.1:{server.server_port}/"\n')
    gate, port, admin, path = healthgate(checks, 0, "gate-reaction")
    poll_until(port, 200, 10)
    to_fail = []
    for _ in range(ROUNDS + 2):
        Flip.healthy = False
        t0 = time.monotonic()
        to_fail.append((poll_until(port, 503, 15) - t0) * 1e3)
        Flip.healthy = True
        poll_until(port, 200, 15)
    applied = []
    for i in range(ROUNDS + 2):
        with open(path) as f:
            text = f.read()
        text += f'[[checks]]\nname = "added{i}"\ntype = "tcp"\naddress = "127.0.0.1:1"\n'
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        os.rename(tmp, path)  # as editors and ConfigMap updates do
        applied.append((poll_until(admin, 200, 10, f"/api/checks/added{i}") - t0) * 1e3)
    stop(gate)
    server.shutdown()
    bound = (threshold * interval + timeout) * 1e3
    return {"to_fail_ms": to_fail, "bound_ms": bound, "config_ms": applied}


# --- 5. acting on health ------------------------------------------------------

ACTING_CHECKS = 1000
# Each configuration is run this many times, alternating with the other.
ACTING_ALTERNATIONS = int(os.environ.get("BENCH_ACTING_ALTERNATIONS", "3"))


def acting():
    """ACTING_CHECKS HTTP checks every 1 s, without and with every event
    consumer: a webhook and an Alertmanager notifier (to a second nginx, which
    answers 200 to any POST), on_failure/on_recovery on every check, readiness
    actions, and an SSE client reading /api/events. In both, a drain is
    started and ended every 5 s (0.8 events a second: drain, verdict, and
    their ends) through the admin API, so events flow through every consumer
    while probes run. Probe CPU from the windows as in section 2, then
    /readyz with wrk (keep-alive) against the same gateway."""
    target, target_port = nginx(1, "target-acting")
    sink, sink_port = nginx(1, "sink-acting")
    consumers = f"""
[[notifiers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{sink_port}/hook"
min_interval = "0s"
[[notifiers]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:{sink_port}"
min_interval = "0s"
[actions.readiness.on_failure]
command = ["true"]
max_runs = 1000
window = "1m"
[actions.readiness.on_recovery]
command = ["true"]
max_runs = 1000
window = "1m"
"""
    action = 'on_failure = { command = ["true"] }\non_recovery = { command = ["true"] }\n'
    plain = http_checks(ACTING_CHECKS, target_port)
    head, *each = plain.split("[[checks]]")
    with_actions = head + "".join(f"[[checks]]{c}{action}" for c in each)
    runs_of = {"no consumers": [], "every consumer": []}
    # Alternated, so a drift of the machine (this VM's neighbours) falls on both.
    plan = [("no consumers", "", plain), ("every consumer", consumers, with_actions)] * ACTING_ALTERNATIONS
    for turn, (label, extra, checks) in enumerate(plan):
        gate, port, admin, _ = healthgate(checks, 0, f"gate-acting-{turn}", extra=extra)
        time.sleep(5)
        stop_flag = threading.Event()
        toggles = [0]

        def toggle():
            # Held for 1 s: long enough for every snapshot, so each toggle
            # is 4 events (drain, /readyz 503, drain ended, /readyz 200).
            while not stop_flag.wait(4):
                for method in ("POST", "DELETE"):
                    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
                    c.request(method, "/admin/drain")
                    c.getresponse().read()
                    c.close()
                    if method == "POST":
                        stop_flag.wait(1)
                toggles[0] += 1

        streamed = [0]

        def stream():
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=30)
            c.request("GET", "/api/events")
            r = c.getresponse()
            while not stop_flag.is_set():
                line = r.fp.readline()
                if not line:
                    return
                if line.startswith(b"id: "):
                    streamed[0] += 1

        threads = [threading.Thread(target=toggle, daemon=True)]
        if extra:
            threads.append(threading.Thread(target=stream, daemon=True))
        for t in threads:
            t.start()
        windows = []
        for _ in range(ROUNDS):
            c0, r0, t0 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
            time.sleep(SECONDS)
            c1, r1, t1 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
            windows.append((r1 - r0 - 1, c1 - c0, t1 - t0))
        runs = [measured_wrk(gate.pid, f"http://127.0.0.1:{port}/readyz", False) for _ in range(ROUNDS)]
        _, body = get(admin, "/metrics", timeout=30)
        stop_flag.set()
        stop(gate)
        probes, cpu, seconds = (sum(w[i] for w in windows) for i in range(3))
        text = body.decode()
        delivered = sum(float(v) for v in re.findall(
            r'^healthgate_notifications_total\{[^}]*result="delivered"[^}]*\} (\S+)$', text, re.M))
        ran = sum(float(v) for v in re.findall(
            r'^healthgate_actions_total\{[^}]*result="ok"[^}]*\} (\S+)$', text, re.M))
        dropped = sum(float(v) for v in re.findall(
            r'^healthgate_events_dropped_total\{[^}]*\} (\S+)$', text, re.M))
        run = {"probes_per_s": probes / seconds, "cpu_per_1000": cpu / probes * 1000,
               "rps": median_of(runs, "rps"), "cpu_us_per_req": median_of(runs, "cpu_us_per_req"),
               "p99": median_of(runs, "p99"), "toggles": toggles[0], "delivered": delivered,
               "actions": ran, "dropped": dropped, "streamed": streamed[0]}
        runs_of[label].append(run)
        log(f"   {label}: {run}")
    stop(target)
    stop(sink)
    return {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}
            for label, runs in runs_of.items()}


def report_acting(rows):
    print(f"\n### 5. Acting on health ({ACTING_CHECKS} HTTP checks every 1 s, a drain toggled every 5 s)\n")
    print("| consumers | probes/s | CPU-s per 1000 probes | `/readyz` keep-alive requests/s | µs CPU/request | p99 ms "
          "| notifications delivered | actions run | events streamed | events dropped |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows.items():
        print(f"| {label} | {r['probes_per_s']:.0f} | {r['cpu_per_1000']:.3f} | {r['rps']:.0f} | "
              f"{r['cpu_us_per_req']:.1f} | {r['p99']:.3f} | {r['delivered']:.0f} | {r['actions']:.0f} | "
              f"{r['streamed']:.0f} | {r['dropped']:.0f} |")
    base, every = rows["no consumers"], rows["every consumer"]
    print(f"\nMedians of {len(base['runs'])} runs of each, alternated; each run's figures from {ROUNDS} windows "
          f"(probes) and {ROUNDS} wrk rounds (`/readyz`). Per run, CPU-s per 1000 probes: "
          + "; ".join(f"{label} " + ", ".join(f"{r['cpu_per_1000']:.3f}" for r in rows[label]['runs'])
                      for label in rows) + ".")
    print(f"\nEvery consumer on: CPU per probe **{every['cpu_per_1000'] / base['cpu_per_1000'] * 100 - 100:+.1f} %**, "
          f"`/readyz` throughput **{every['rps'] / base['rps'] * 100 - 100:+.1f} %** (budget: within 5 %).")


STATE_CHECKS = 1000


def state_store():
    """STATE_CHECKS HTTP checks every 1 s, without and with the state store
    (flushed every 10 s, as by default), alternated ACTING_ALTERNATIONS times:
    CPU per probe from the windows as in section 2, peak RSS over them, and
    the store's file size and rows at the end."""
    target, target_port = nginx(1, "target-state")
    checks = http_checks(STATE_CHECKS, target_port)
    runs_of = {"store off": [], "store on": []}
    plan = [("store off", False), ("store on", True)] * ACTING_ALTERNATIONS
    for turn, (label, on) in enumerate(plan):
        store = os.path.join(WORK, f"state-{turn}")
        extra = f'[state]\ndir = "{store}"\n' if on else ""
        gate, _, admin, _ = healthgate(checks, 0, f"gate-state-{turn}", extra=extra)
        time.sleep(5)
        windows, rss = [], 0.0
        for _ in range(ROUNDS):
            c0, r0, t0 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
            time.sleep(SECONDS)
            c1, r1, t1 = cpu_seconds(gate.pid), nginx_requests(target_port), time.monotonic()
            windows.append((r1 - r0 - 1, c1 - c0, t1 - t0))
            rss = max(rss, rss_mb(gate.pid))
        _, body = get(admin, "/metrics", timeout=30)
        stop(gate)
        written = sum(float(v) for v in re.findall(r'^healthgate_state_runs_written_total (\S+)$', body.decode(), re.M))
        size = os.path.getsize(os.path.join(store, "healthgate.redb")) / 1e6 if on else 0.0
        probes, cpu, seconds = (sum(w[i] for w in windows) for i in range(3))
        run = {"probes_per_s": probes / seconds, "cpu_per_1000": cpu / probes * 1000, "rss": rss,
               "written": written, "size_mb": size}
        runs_of[label].append(run)
        log(f"   {label}: {run}")
    stop(target)
    return {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}
            for label, runs in runs_of.items()}


def report_state(rows):
    print(f"\n### 6. The state store ({STATE_CHECKS} HTTP checks every 1 s, batches every 10 s)\n")
    print("| store | probes/s | CPU-s per 1000 probes | peak RSS MB | runs written | file MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows.items():
        print(f"| {label} | {r['probes_per_s']:.0f} | {r['cpu_per_1000']:.3f} | {r['rss']:.1f} | "
              f"{r['written']:.0f} | {r['size_mb']:.2f} |")
    off, on = rows["store off"], rows["store on"]
    print(f"\nMedians of {len(off['runs'])} runs of each, alternated. Per run, CPU-s per 1000 probes: "
          + "; ".join(f"{label} " + ", ".join(f"{r['cpu_per_1000']:.3f}" for r in rows[label]['runs'])
                      for label in rows) + ".")
    print(f"\nStore on: CPU per probe **{on['cpu_per_1000'] / off['cpu_per_1000'] * 100 - 100:+.1f} %** "
          f"(budget: within 10 %), peak RSS **{on['rss'] - off['rss']:+.1f} MB** (budget: within 10 MB).")


def main():
    if not os.path.exists(BIN):
        raise SystemExit(f"build {BIN} first: cargo build --release")
    if os.environ.get("BENCH_ONLY") == "state":
        try:
            rows = state_store()
        finally:
            for p in children:
                stop(p)
        print(f"Medians of {ROUNDS} rounds of {SECONDS} s. Servers on CPU 0, wrk and targets on CPU 1.")
        report_state(rows)
        return
    if os.environ.get("BENCH_ONLY") == "acting":
        try:
            rows = acting()
        finally:
            for p in children:
                stop(p)
        print(f"Medians of {ROUNDS} rounds of {SECONDS} s. Servers on CPU 0, wrk and targets on CPU 1.")
        report_acting(rows)
        return
    try:
        verdict = verdict_endpoint()
        log("2. probe cost")
        costs = {n: probe_cost_healthgate(n) for n in PROBE_COUNTS}
        most = max(PROBE_COUNTS)
        # A machine that cannot make `most` probes a second measures its own
        # backlog at 1 s (late starts, probes piling up in flight): the same
        # checks every 2 s show what they cost below saturation.
        below = probe_cost_healthgate(most, "2s") if costs[most]["probes_per_s"] < 0.95 * most else None
        bb = probe_cost_blackbox(PROBE_COUNTS)
        log("3. idle")
        idle = idle_rss()
        log("4. reaction")
        react = reaction()
        log("5. acting on health")
        acted = acting()
    finally:
        for p in children:
            stop(p)
    report(verdict, costs, below, bb, idle, react)
    report_acting(acted)


def report(verdict, costs, below, bb, idle, react):
    print(f"Medians of {ROUNDS} rounds of {SECONDS} s. Servers on CPU 0, wrk and targets on CPU 1.\n")
    print("### 1. Verdict endpoint (wrk, 1 thread, 64 connections)\n")
    print("| mode | server | requests/s | p50 ms | p99 ms | server CPU µs/request | errors |")
    print("|---|---|---:|---:|---:|---:|---|")
    for (mode, name), r in verdict.items():
        print(f"| {mode} | {name} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | "
              f"{r['cpu_us_per_req']:.1f} | {r['errors'] or '-'} |")
    for mode in ["keep-alive", "new connection"]:
        g, n = verdict[(mode, "healthgate /readyz")], verdict[(mode, "nginx return 200")]
        print(f"\n{mode}: healthgate/nginx throughput **{g['rps'] / n['rps'] * 100:.0f} %**, "
              f"CPU per request {g['cpu_us_per_req'] / n['cpu_us_per_req']:.2f}x nginx's.")
    print("\n### 2. Probe cost (HTTP probes of a local nginx, fresh connection each)\n")
    print("| prober | checks | probes/s | CPU-s per 1000 probes | CPU share of one core | peak RSS MB | "
          "start lateness p99 ms | `/metrics` scrape ms | CPU 0 stolen |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in list(costs.items()) + ([(max(costs), below)] if below else []):
        print(f"| healthgate (interval {r['interval']}) | {n} | {r['probes_per_s']:.0f} | {r['cpu_per_1000']:.3f} | "
              f"{r['cpu_share'] * 100:.0f} % | {r['rss']:.1f} | {ms(r['lateness_p99_ms'])} | {r['scrape_ms']:.0f} | "
              f"{r['stolen_share'] * 100:.1f} % |")
    for rate, r in bb["paced"].items():
        print(f"| blackbox_exporter (paced at {rate}/s) | - | {r['probes_per_s']:.0f} | {r['cpu_per_1000']:.3f} | "
              f"{r['cpu_share'] * 100:.0f} % | {r['rss']:.1f} | - | - | - |")
    print(f"| blackbox_exporter (wrk, 8 connections) | - | {bb['probes_per_s']:.0f} | {bb['cpu_per_1000']:.3f} | "
          f"100 % | {bb['rss']:.1f} | - | - | - |")
    print(f"\nhealthgate: {ROUNDS} windows of {SECONDS} s, each opened by a `/metrics` scrape; probes and CPU "
          f"summed over the windows (CPU comes in 10 ms ticks); RSS the highest seen after a scrape; "
          f"lateness over the windows' starts; CPU 0 stolen: the share of the windows the hypervisor "
          f"ran something else on healthgate's core (steal in /proc/stat).")
    for n, r in costs.items():
        same = bb["paced"].get(n)
        print(f"\n{n} checks: healthgate uses **{r['cpu_per_1000'] / (same or bb)['cpu_per_1000'] * 100:.0f} %** of "
              f"blackbox_exporter's CPU per probe "
              + (f"at the same rate ({r['cpu_per_1000'] / bb['cpu_per_1000'] * 100:.0f} % of its full-rate cost)."
                 if same else "at its full rate."), end="")
    failed = sum(r["failed"] for r in bb["paced"].values())
    print(f"\n\nblackbox_exporter probes all succeeded: {bb['all_succeeded'] and not failed}.")
    print(f"\n### 3. Scale\n\nIdle RSS with 0 checks: **{idle:.1f} MB**. "
          + " ".join(f"{n} checks: {r['rss']:.1f} MB, {r['cpu_share'] * 100:.0f} % of a core, "
                     f"p99 start lateness {ms(r['lateness_p99_ms'])} ms ({r['starts']:.0f} starts)."
                     for n, r in costs.items()))
    if below:
        n = max(costs)
        print(f"\n{n} checks at 1 s made only {costs[n]['probes_per_s']:.0f} probes/s here: saturated, so its RSS "
              f"and lateness measure the backlog. The same checks every 2 s ({below['probes_per_s']:.0f} probes/s): "
              f"**{below['rss']:.1f} MB**, {below['cpu_share'] * 100:.0f} % of a core, p99 start lateness "
              f"{ms(below['lateness_p99_ms'])} ms ({below['starts']:.0f} starts).")
    t, c = react["to_fail_ms"], react["config_ms"]
    print(f"\n### 4. Reaction\n\nTarget fails → `/readyz` 503 (interval 1 s, failure_threshold 3, timeout 1 s; "
          f"bound {react['bound_ms']:.0f} ms): median **{statistics.median(t):.0f} ms**, max {max(t):.0f} ms "
          f"over {len(t)} rounds ({', '.join(f'{x:.0f}' for x in t)}).")
    print(f"\nConfig written (rename) → new check served by the admin API: median **{statistics.median(c):.0f} ms**, "
          f"max {max(c):.0f} ms over {len(c)} rounds.")


if __name__ == "__main__":
    main()
