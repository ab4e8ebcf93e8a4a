#!/usr/bin/env bash
# 500 probes at a 1 s interval: scheduling lag and CPU (benches/probe_schedule.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench probe_schedule "$@"
