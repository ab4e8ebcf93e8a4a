#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds each (default 60), on the seed
# corpus in fuzz/corpus/<target> (new inputs found go to a scratch copy,
# not into the repository), and fails on the first crash, printing the
# input that made it (kept in fuzz/artifacts/<target>/).
# Needs the nightly toolchain and cargo-fuzz (installed when missing).
# Usage: fuzz/run.sh [TARGET...]   (SECS= seconds per target)
set -euo pipefail
cd "$(dirname "$0")"

SECS=${SECS:-60}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cargo +nightly --version >/dev/null 2>&1 || { echo "fuzz/run.sh needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 3; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config tegrastats ingest_json prometheus_text)
echo "== building ${targets[*]}"
cargo +nightly fuzz build --fuzz-dir .
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    cp -r "corpus/$t/." "$scratch/$t/"
    echo "== $t for ${SECS}s"
    start=$(date +%s)
    cargo +nightly fuzz run --fuzz-dir . "$t" "$scratch/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>"$scratch/$t.log" \
        || { tail -n 40 "$scratch/$t.log"; echo "fuzz/run.sh: $t crashed (input in fuzz/artifacts/$t/)" >&2; exit 1; }
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$scratch/$t.log")
    echo "   $t: clean, ${runs:-?} inputs in $(( $(date +%s) - start )) s, corpus $(ls "$scratch/$t" | wc -l) inputs"
done
