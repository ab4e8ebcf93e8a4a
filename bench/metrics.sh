#!/usr/bin/env bash
# The metrics path in the running daemon (release build), in one run:
#  1. the embedded default configuration, idle for IDLE seconds: CPU as a
#     share of one core, RSS, and the bytes it wrote to disk, as a day's worth;
#  2. 2,000 pushed series: how long GET /metrics takes (median and p99 of
#     200 requests over loopback, curl's total time);
#  3. 1,000 series pushed every second for LOAD seconds: CPU and RSS. The
#     series are those of the history bench: a third counters, a third
#     gauges that step every 30 s, a third noisy ratios.
#     With HOUR=fill, the RAM hour is filled first: the hour before those
#     LOAD seconds is pushed at once with each sample's own timestamp (a
#     body a second as live, with a few milliseconds of jitter as a real
#     push has), so at the end the rings hold a full hour
#     as if it had been pushed live, in minutes (LOAD=3600 pushes a real
#     hour instead). The history's own count of samples held is printed.
# Usage: bench/metrics.sh  (BIN= another build, IDLE= and LOAD= seconds, HOUR=fill)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rvm-watchdog}
IDLE=${IDLE:-60}
LOAD=${LOAD:-60}
HOUR=${HOUR:-}
[ -x "$BIN" ] || cargo build --release
command -v curl >/dev/null || { echo "bench/metrics.sh needs curl" >&2; exit 1; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" run --state-dir "$dir/state" --listen "127.0.0.1:$port" --log-level warn 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
token=$(cat "$dir/state/api.token")
hz=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$pid/io"; }

# Let the first rounds and the store settle.
sleep 5
t0=$(ticks); w0=$(written); s0=$(date +%s.%N)
sleep "$IDLE"
t1=$(ticks); w1=$(written); s1=$(date +%s.%N)
python3 - "$t0" "$t1" "$w0" "$w1" "$s0" "$s1" "$hz" "$(rss_kib)" <<'EOF'
import sys
t0, t1, w0, w1, s0, s1, hz, rss = map(float, sys.argv[1:])
secs = s1 - s0
print(f"idle, embedded default: {(t1 - t0) / hz / secs * 100:.2f} % of a core, "
      f"RSS {rss / 1024:.1f} MiB, {(w1 - w0) / secs * 86400 / 1e6:.1f} MB written a day "
      f"({w1 - w0:.0f} bytes in {secs:.0f} s)")
EOF

push() {
    curl -sf -X POST -H "Authorization: Bearer $token" -H 'content-type: text/plain' \
        --data-binary @"$1" "http://127.0.0.1:$port/api/v1/ingest" >/dev/null
}
python3 - "$dir/2000.prom" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(2000):
        f.write(f'bench_value{{device="d{i % 50}",channel="c{i // 50}"}} {i * 0.5}\n')
EOF
push "$dir/2000.prom"
sleep 1
for _ in $(seq 200); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"
done | sort -n | awk '{a[NR]=$1} END {printf "GET /metrics with %d series: median %.2f ms, p99 %.2f ms\n", 2000, a[int(NR/2)]*1000, a[int(NR*0.99)]*1000}'
echo "  ($(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#') sample lines)"

# The 1,000 series: `push.py fill FROM TO` pushes seconds [FROM, TO) of
# them at once, with timestamps, a second a body, second TO being now;
# `push.py live FROM SECONDS` pushes one body a second without them.
cat >"$dir/push.py" <<'EOF'
import sys, math, time, urllib.request
port, token, mode, start, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
url = f"http://127.0.0.1:{port}/api/v1/ingest"
NAMES = ["bench_load_bytes_total", "bench_load_memory_bytes", "bench_load_usage_ratio"]
HEAD = "# TYPE bench_load_bytes_total counter\n"

def value(i, t):
    # As benches/history.rs: a counter, a gauge stepping every 30 s, a noisy ratio.
    if i % 3 == 0:
        return str(t * (1000 + i * 17) + (t * t) % 97)
    if i % 3 == 1:
        return str(100_000_000 + ((t // 30 + i) % 50) * 4096)
    return repr(0.5 + 0.3 * math.sin(t * 0.01 + i) + ((t * 7 + i) % 13) * 1e-4)

def lines(t, at_ms):
    stamp = f" {at_ms}" if at_ms else ""
    return [f'{NAMES[i % 3]}{{sensor="s{i}"}} {value(i, t)}{stamp}\n' for i in range(1000)]

def post(body):
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "content-type": "text/plain"})
    urllib.request.urlopen(req).read()

if mode == "fill":
    end_ms = int(time.time() * 1000)
    for t in range(start, count):
        post(HEAD + "".join(lines(t, end_ms - (count - t) * 1000 + (t * 7919) % 23)))
else:
    next_at = time.time()
    for t in range(start, start + count):
        post(HEAD + "".join(lines(t, None)))
        next_at += 1
        time.sleep(max(0.0, next_at - time.time()))
EOF
filled=0
if [ "$HOUR" = fill ] && [ "$LOAD" -lt 3600 ]; then
    filled=$(( 3600 - LOAD ))
    f0=$(date +%s)
    python3 "$dir/push.py" "$port" "$token" fill 0 "$filled"
    echo "the hour before the load pushed with timestamps: $filled s of 1,000 series in $(( $(date +%s) - f0 )) s, RSS $(awk '{printf "%.1f", $1 / 1024}' <<<"$(rss_kib)") MiB"
fi
t0=$(ticks); s0=$(date +%s.%N)
python3 "$dir/push.py" "$port" "$token" live "$filled" "$LOAD"
t1=$(ticks); s1=$(date +%s.%N)
held=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "rvm_watchdog_history_ram_samples" {print $2}')
ram=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "rvm_watchdog_history_ram_bytes" {printf "%.1f", $2 / 1048576}')
python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$(rss_kib)" "$(( filled + LOAD ))" "${held:-?}" <<'EOF'
import sys
t0, t1, s0, s1, hz, rss, held_s = map(float, sys.argv[1:8])
secs = s1 - s0
print(f"1,000 series pushed every second: {(t1 - t0) / hz / secs * 100:.2f} % of a core "
      f"(parsing and recording included), RSS {rss / 1024:.1f} MiB "
      f"with {held_s / 60:.0f} min of them in the RAM ring ({sys.argv[8] if sys.argv[8] == '?' else int(float(sys.argv[8]))} samples held)")
EOF
echo "  the rings' own count of their heap: ${ram:-?} MiB"
grep -E '^(Rss|Anonymous)' "/proc/$pid/smaps_rollup" 2>/dev/null | tr -s ' ' | paste -sd ' ' | sed 's/^/  smaps_rollup: /' || true
