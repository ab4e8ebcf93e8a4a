#!/usr/bin/env bash
# The API under load from a second process on loopback, beside a floor.
#  1. the floor: examples/floor.rs, the same HTTP stack answering a fixed
#     small body and nothing else; then the daemon's GET /health, GET
#     /metrics (plain and gzip), each with `wrk -t2 -c8 -d${SECS}s --latency`:
#     requests a second, p99, the daemon's CPU per request and its RSS;
#  2. the live stream: STREAMS clients on GET /api/v1/stream for HOLD
#     seconds: the daemon's CPU and RSS beside idle.
# The daemon runs the embedded default configuration with a process target
# and a probed target added, so /health carries checks, a ladder and a
# last action. Every server here binds 127.0.0.1 and stops with the script.
# Usage: bench/api.sh  (BIN=, FLOOR= other builds; SECS=, STREAMS=, HOLD=)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rvm-watchdog}
FLOOR=${FLOOR:-target/release/examples/floor}
SECS=${SECS:-10}
STREAMS=${STREAMS:-50}
HOLD=${HOLD:-20}
[ -x "$BIN" ] && [ -x "$FLOOR" ] || cargo build --release --bin rvm-watchdog --example floor
if ! command -v wrk >/dev/null; then
    echo "bench/api.sh: installing wrk" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

floor_port=$(free_port)
"$FLOOR" "127.0.0.1:$floor_port" 2>/dev/null &
pids+=($!)

mkdir -p "$dir/policies"
cat >"$dir/watchdog.toml" <<'TOML'
[log]
output = "stderr"
TOML
cat >"$dir/policies/helper.toml" <<'TOML'
[target]
name = "helper"

[target.process]
command = ["/bin/sleep", "3600"]

[[recovery]]
action = "restart"
TOML
cat >"$dir/policies/edge.toml" <<TOML
[target]
name = "edge"

[[probe]]
name = "api"
kind = "tcp"
address = "127.0.0.1:$floor_port"
interval = "5s"
TOML
port=$(free_port)
"$BIN" run --config "$dir/watchdog.toml" --policies "$dir/policies" --state-dir "$dir/state" \
    --listen "127.0.0.1:$port" --log-level warn 2>"$dir/log" &
pid=$!
pids+=($pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
[ -s "$dir/state/api.token" ] || { echo "bench/api.sh: the daemon did not start:" >&2; cat "$dir/log" >&2; exit 1; }
token=$(cat "$dir/state/api.token")
# A last action to show.
curl -sf -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/targets/helper/restart" >/dev/null
sleep 2
echo "/health is $(curl -s "http://127.0.0.1:$port/health" | wc -c) bytes; /metrics $(curl -s "http://127.0.0.1:$port/metrics" | wc -c) bytes, $(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics" | wc -c) gzipped"

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# One wrk run: prints "NAME: R req/s, p99 P; the daemon C µs of CPU a request, RSS M MiB".
run() {
    local name=$1 url=$2 target_pid=$3
    shift 3
    local t0 t1 out
    t0=$(ticks "$target_pid")
    out=$(wrk -t2 -c8 -d"${SECS}s" --latency "$@" "$url")
    t1=$(ticks "$target_pid")
    python3 - "$name" "$t0" "$t1" "$hz" "$(rss_kib "$target_pid")" <<PY
import re, sys
name, t0, t1, hz, rss = sys.argv[1], *map(float, sys.argv[2:])
out = """$out"""
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        sys.exit(f"cannot read the latency {text!r} in:\n{out}")
    v, unit = m.groups()
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
cpu = (t1 - t0) / hz / total * 1e6
print(f"{name}: {rate:,.0f} req/s, median {p50:.2f} ms, p99 {p99:.2f} ms; "
      f"{cpu:.1f} µs of CPU a request, RSS {rss / 1024:.1f} MiB"
      + (f"; {errors.group(1)} non-2xx" if errors else ""))
open("$dir/rate-" + name.split()[0].strip(":"), "w").write(str(rate))
PY
}

floor_pid=${pids[0]}
run "floor" "http://127.0.0.1:$floor_port/" "$floor_pid"
run "health" "http://127.0.0.1:$port/health" "$pid"
run "metrics" "http://127.0.0.1:$port/metrics" "$pid"
run "metrics-gzip" "http://127.0.0.1:$port/metrics" "$pid" -H "Accept-Encoding: gzip"
python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
r = lambda n: float(open(f"{d}/rate-{n}").read())
print(f"/health at {r('health') / r('floor'):.2f} of the floor's rate (target 0.5); "
      f"/metrics at {r('metrics') / r('floor'):.2f}, gzipped {r('metrics-gzip') / r('floor'):.2f}")
PY

# The live stream: idle first, then STREAMS clients for HOLD seconds.
sleep 2
i0=$(ticks "$pid"); r0=$(rss_kib "$pid"); s0=$(date +%s.%N)
sleep "$HOLD"
i1=$(ticks "$pid"); s1=$(date +%s.%N)
python3 - "$port" "$STREAMS" "$HOLD" "$pid" "$hz" "$i0" "$i1" "$s0" "$s1" "$r0" <<'PY'
import socket, sys, time
port, n, hold, pid = (int(x) for x in sys.argv[1:5])
hz, i0, i1, s0, s1, r0 = map(float, sys.argv[5:])
def ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
clients = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    s.setblocking(False)
    clients.append(s)
time.sleep(1)
got = 0
def drain():
    global got
    for s in clients:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b.count(b"\nevent: ")
        except BlockingIOError:
            pass
drain()
t0, w0 = ticks(), time.time()
peak = rss()
end = time.time() + hold
while time.time() < end:
    time.sleep(1)
    drain()
    peak = max(peak, rss())
t1, w1 = ticks(), time.time()
idle = (i1 - i0) / hz / (s1 - s0) * 100
busy = (t1 - t0) / hz / (w1 - w0) * 100
print(f"stream: idle {idle:.2f} % of a core, RSS {r0 / 1024:.1f} MiB; with {n} clients "
      f"{busy:.2f} % of a core, RSS {peak / 1024:.1f} MiB at most "
      f"({(peak - r0) / 1024:+.2f} MiB; target +2 MiB); {got} messages read")
for s in clients:
    s.close()
PY
