#!/usr/bin/env bash
# Crash detection and restart latency against systemd's own signal and
# Restart= (benches/unit_events.rs). Needs root: it starts a private systemd.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench unit_events "$@"
