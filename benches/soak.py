#!/usr/bin/env python3
"""Soak: healthgate for an hour under churn, on 127.0.0.1 only.

Run through benches/soak.sh (which builds the release binary). Not in CI.

- 1,000 checks every 2 s: 900 tcp checks against a listener that accepts and
  closes, 90 http checks against /ok, 10 http checks (not critical) against
  /flap, which turns 200/503 every 7 s;
- the config rewritten (temp file + rename) every 10 s: a check's interval
  changes, one check is added or removed;
- an OTLP/HTTP receiver that answers for 60 s, then is gone for 60 s;
- /readyz asked 20 times a second on a fresh connection each time.

Reports (Markdown on stdout): RSS and open-fd slope per hour over the run
after the first 10 minutes, every /readyz answer that was not 200, the
panics in the log, and whether the process is still alive.

Environment: SOAK_SECONDS (default 3600), SOAK_CHECKS (default 1000).
"""

import http.client
import http.server
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "healthgate")
SECONDS = int(os.environ.get("SOAK_SECONDS", "3600"))
CHECKS = int(os.environ.get("SOAK_CHECKS", "1000"))
WARMUP = min(600, SECONDS // 6)
WORK = tempfile.mkdtemp(prefix="healthgate-soak-")
stop_all = threading.Event()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"ok"):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Target(Quiet):
    def do_GET(self):
        if self.path == "/flap":
            self.answer(200 if int(time.time() / 7) % 2 == 0 else 503)
        else:
            self.answer(200)


class Collector(Quiet):
    """OTLP/HTTP: any POST gets an empty (valid) protobuf response."""

    received = 0

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        Collector.received += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve(handler, port):
    server = Server(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def accept_and_close(port):
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)

    def run():
        while not stop_all.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                return

    threading.Thread(target=run, daemon=True).start()
    return listener


def config(round_, ports):
    lb, admin, target, tcp, otlp = ports
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{lb}"',
        f'admin_listen = "127.0.0.1:{admin}"',
        "[reload]",
        'poll_interval = "30s"',
        "[defaults]",
        'interval = "2s"',
        'timeout = "1s"',
        "failure_threshold = 2",
        "[telemetry.otlp]",
        f'endpoint = "http://127.0.0.1:{otlp}"',
        'protocol = "http/protobuf"',
        'interval = "10s"',
        'timeout = "2s"',
        "[telemetry.traces]",
        "enabled = true",
        "sample_ratio = 0.01",
    ]
    # One check comes and goes with the rounds; one changes its interval.
    extra = 1 if round_ % 2 else 0
    for i in range(CHECKS + extra):
        name = f"c{i:05d}"
        if i % 100 < 90:
            lines += ["[[checks]]", f'name = "{name}"', 'type = "tcp"', f'address = "127.0.0.1:{tcp}"']
        elif i % 100 < 99:
            lines += ["[[checks]]", f'name = "{name}"', 'type = "http"', f'url = "http://127.0.0.1:{target}/ok"']
        else:
            lines += ["[[checks]]", f'name = "{name}"', 'type = "http"',
                      f'url = "http://127.0.0.1:{target}/flap"', "critical = false"]
        if i == 0:
            lines.append(f'interval = "{2 + round_ % 3}s"')
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def readyz_load(port, stats):
    interval = 1 / 20
    next_at = time.monotonic()
    while not stop_all.is_set():
        next_at += interval
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
        except Exception as e:  # noqa: BLE001 - every failure is counted
            status = type(e).__name__
        stats["asked"] += 1
        if status != 200:
            stats["not_200"].append((round(time.monotonic() - stats["began"], 1), status))
        time.sleep(max(0.0, next_at - time.monotonic()))


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def slope_per_hour(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if den == 0 else 3600 * sum((t - mx) * (v - my) for t, v in points) / den


def main():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    ports = [free_port() for _ in range(5)]
    lb, admin, target_port, tcp_port, otlp_port = ports
    serve(Target, target_port)
    listener = accept_and_close(tcp_port)
    path = os.path.join(WORK, "healthgate.toml")
    write_atomically(path, config(0, ports))
    stderr = open(os.path.join(WORK, "healthgate.log"), "w")
    proc = subprocess.Popen([BIN, "--log-format", "json", "run", "--config", path],
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    began = time.monotonic()
    deadline = began + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", lb, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        sys.exit("healthgate did not become ready in 30 s")
    log(f"ready; soaking for {SECONDS} s in {WORK}")
    stats = {"asked": 0, "not_200": [], "began": time.monotonic()}
    threading.Thread(target=readyz_load, args=(lb, stats), daemon=True).start()
    samples = []
    collector = None
    reloads = 0
    start = time.monotonic()
    while time.monotonic() - start < SECONDS and proc.poll() is None:
        now = time.monotonic() - start
        # The collector: up for a minute, gone for a minute.
        up = int(now / 60) % 2 == 0
        if up and collector is None:
            collector = serve(Collector, otlp_port)
        elif not up and collector is not None:
            collector.shutdown()
            collector.server_close()
            collector = None
        reloads += 1
        write_atomically(path, config(reloads, ports))
        rss, fds = sample(proc.pid)
        samples.append((now, rss, fds))
        log(f"{now:7.0f} s  rss {rss / 1024:6.1f} MB  fds {fds:5d}  readyz {stats['asked']} "
            f"(not 200: {len(stats['not_200'])})  otlp posts {Collector.received}")
        time.sleep(10)
    alive = proc.poll() is None
    stop_all.set()
    if alive:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    listener.close()
    stderr.close()
    text = open(os.path.join(WORK, "healthgate.log")).read()
    panics = text.count("panicked")
    applied = text.count("config reloaded")
    rejected = text.count("config reload rejected")
    steady = [s for s in samples if s[0] >= WARMUP]
    rss_slope = slope_per_hour([(t, r / 1024) for t, r, _ in steady])
    fd_slope = slope_per_hour([(t, f) for t, _, f in steady])
    rss = [r / 1024 for _, r, _ in samples]
    fds = [f for _, _, f in samples]
    print(f"## Soak: {SECONDS} s, {CHECKS} checks every 2 s, a reload every 10 s\n")
    print(f"healthgate {commit} (HEAD when the soak began), {os.cpu_count()} CPUs.\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| alive at the end | {'yes' if alive else 'no (exit ' + str(proc.returncode) + ')'} |")
    print(f"| panics in the log | {panics} |")
    print(f"| /readyz asked | {stats['asked']} |")
    print(f"| /readyz answers not 200 | {len(stats['not_200'])} |")
    print(f"| reloads written / applied / rejected | {reloads} / {applied} / {rejected} |")
    print(f"| OTLP exports received (collector up half the time) | {Collector.received} |")
    print(f"| RSS first / min / max / last (MB) | {rss[0]:.1f} / {min(rss):.1f} / {max(rss):.1f} / {rss[-1]:.1f} |")
    print(f"| RSS slope after {WARMUP} s (MB per hour) | {rss_slope:+.2f} |")
    print(f"| open fds first / min / max / last | {fds[0]} / {min(fds)} / {max(fds)} / {fds[-1]} |")
    print(f"| open-fd slope after {WARMUP} s (per hour) | {fd_slope:+.2f} |")
    if stats["not_200"]:
        print("\nFirst answers that were not 200 (seconds into the load, status):",
              stats["not_200"][:20])
    ok = alive and panics == 0 and not stats["not_200"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
