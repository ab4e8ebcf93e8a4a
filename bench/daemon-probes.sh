#!/usr/bin/env bash
# 500 probes at a 1 s interval in the running daemon (release build): the
# daemon's own CPU use, read from /proc/PID/stat, and the scheduling lag
# from its /metrics histogram (rvm_watchdog_probe_lag_seconds), both over
# the same window after a warm-up. 50 targets of 10 file-age probes each.
#
#   bench/daemon-probes.sh            # 60 s window
#   RUN=120 TARGETS=100 bench/daemon-probes.sh
#   BIN=/tmp/rvm-watchdog-old bench/daemon-probes.sh   # another build, to compare
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=${TARGETS:-50}
PER=${PER:-10}
RUN=${RUN:-60}
WARMUP=${WARMUP:-10}
PORT=${PORT:-19184}

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
fi
bin=${BIN:-target/release/rvm-watchdog}
dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/policies" "$dir/state"
touch "$dir/heartbeat"
cat > "$dir/watchdog.toml" <<TOML
[log]
level = "info"
output = "stderr"
TOML
for t in $(seq 1 "$TARGETS"); do
    f="$dir/policies/t$t.toml"
    printf '[target]\nname = "t%s"\n' "$t" > "$f"
    for p in $(seq 1 "$PER"); do
        printf '\n[[probe]]\nname = "p%s"\nkind = "file-age"\nfile = "%s"\nmax-age = "1h"\ninterval = "1s"\ntimeout = "500ms"\n' \
            "$p" "$dir/heartbeat" >> "$f"
    done
done

"$bin" run --config "$dir/watchdog.toml" --policies "$dir/policies" \
    --state-dir "$dir/state" --listen "127.0.0.1:$PORT" 2> "$dir/log" &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/livez" > /dev/null 2>&1 && break
    sleep 0.1
done
echo "daemon pid $pid: $((TARGETS * PER)) probes at 1 s; warm-up ${WARMUP} s, window ${RUN} s"
sleep "$WARMUP"

ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
t0=$(date +%s.%N); c0=$(ticks)
curl -sf "http://127.0.0.1:$PORT/metrics" > "$dir/m0"
sleep "$RUN"
t1=$(date +%s.%N); c1=$(ticks)
curl -sf "http://127.0.0.1:$PORT/metrics" > "$dir/m1"
kb=$(rss)

python3 - "$dir/m0" "$dir/m1" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" "$kb" <<'PY'
import sys
m0, m1, t0, t1, c0, c1, hz, kb = sys.argv[1:]
def hist(path):
    b, count = [], 0
    for line in open(path):
        if line.startswith("rvm_watchdog_probe_lag_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            b.append((float("inf") if le == "+Inf" else float(le), int(line.split()[-1])))
        elif line.startswith("rvm_watchdog_probe_lag_seconds_count"):
            count = int(line.split()[-1])
    return b, count
(b0, n0), (b1, n1) = hist(m0), hist(m1)
buckets = [(le, c - d) for (le, c), (_, d) in zip(b1, b0)]
n = n1 - n0
def quantile(q):
    # As Prometheus's histogram_quantile: linear within the bucket.
    rank, lo, below = q * n, 0.0, 0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(c - below, 1)
        lo, below = le, c
    return lo
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(hz)
print(f"runs: {n} in {wall:.1f} s ({n / wall:.1f}/s)")
print(f"lag p50 <= {quantile(0.5) * 1000:.2f} ms, p99 <= {quantile(0.99) * 1000:.2f} ms (histogram estimate)")
for le, c in buckets:
    print(f"  lag <= {le * 1000:g} ms: {c} ({100 * c / max(n, 1):.2f} %)")
print(f"daemon CPU: {cpu:.2f} s in {wall:.1f} s = {100 * cpu / wall:.2f} % of one core")
print(f"daemon RSS at the end: {int(kb) / 1024:.1f} MiB")
PY
