#!/usr/bin/env bash
# The metrics path in the running daemon (release build), in one run:
#  1. the embedded default configuration, idle for IDLE seconds: CPU as a
#     share of one core, RSS, and the bytes it wrote to disk, as a day's worth;
#  2. 2,000 pushed series: how long GET /metrics takes (median and p99 of
#     200 requests over loopback, curl's total time);
#  3. 1,000 series pushed every second for LOAD seconds: CPU and RSS.
# Usage: bench/metrics.sh  (BIN= another build, IDLE= and LOAD= seconds)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rvm-watchdog}
IDLE=${IDLE:-60}
LOAD=${LOAD:-60}
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

python3 - "$dir/1000.prom" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(f'bench_load{{sensor="s{i}"}} {i}\n')
EOF
t0=$(ticks); s0=$(date +%s.%N)
end=$(( $(date +%s) + LOAD ))
while [ "$(date +%s)" -lt "$end" ]; do
    push "$dir/1000.prom"
    sleep 1
done
t1=$(ticks); s1=$(date +%s.%N)
python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$(rss_kib)" <<'EOF'
import sys
t0, t1, s0, s1, hz, rss = map(float, sys.argv[1:])
secs = s1 - s0
print(f"1,000 series pushed every second: {(t1 - t0) / hz / secs * 100:.2f} % of a core "
      f"(parsing and recording included), RSS {rss / 1024:.1f} MiB")
EOF
