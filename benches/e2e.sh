#!/usr/bin/env bash
# End-to-end benchmark (see BENCHMARKS.md): installs nginx, wrk and
# prometheus-blackbox-exporter from Debian, builds the release binary, and
# prints a Markdown report. Takes about 9 minutes on 2 cores.
#   benches/e2e.sh > /tmp/report.md
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null \
   || ! command -v prometheus-blackbox-exporter >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nginx wrk prometheus-blackbox-exporter >/dev/null
fi
cargo build --release --locked -q >&2
# Many sockets at once with 10,000 checks.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "Machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), Linux $(uname -r)." 
echo "Versions: healthgate $(git rev-parse --short HEAD), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(prometheus-blackbox-exporter --version 2>&1 | head -1 | cut -d' ' -f1-3)."
echo
exec python3 benches/e2e.py
