#!/usr/bin/env bash
# CPU cost of the metric collectors and their scheduler (benches/collect.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench collect "$@"
