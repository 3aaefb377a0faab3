#!/usr/bin/env bash
# Soak (see RELIABILITY.md): an hour at 1,000 checks with a reload every
# 10 s, a flapping target, an OTLP collector that comes and goes, and a
# steady /readyz load, all on 127.0.0.1. Not run in CI.
#   benches/soak.sh > /tmp/soak.md        # SOAK_SECONDS=600 for a short one
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 benches/soak.py
