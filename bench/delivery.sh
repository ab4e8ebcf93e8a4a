#!/usr/bin/env bash
# Delivery in the running daemon (release build), to a webhook receiver on
# loopback (python3's http.server, answering 200):
#  1. latency: N targets (default 100) fail one after another, 200 ms
#     apart, with no group wait; each process writes the time it exits,
#     the receiver the time the notification naming it arrives: median,
#     p99 and max of the difference;
#  2. drain: the daemon stopped, QUEUED notifications (default 10,000) are
#     put in its outbox as a backlog of minutes would leave them, the
#     daemon started again: how long until the receiver has them all, and
#     the daemon's RSS while the outbox holds them.
# Usage: bench/delivery.sh  (BIN= another build, N=, QUEUED=)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rvm-watchdog}
N=${N:-100}
QUEUED=${QUEUED:-10000}
[ -x "$BIN" ] || cargo build --release
command -v curl >/dev/null || { echo "bench/delivery.sh needs curl" >&2; exit 1; }

dir=$(mktemp -d -p /var/tmp)
mkdir -p "$dir/policies" "$dir/exit"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
hook=$(free_port)
cat > "$dir/receiver.py" <<'PY'
import http.server, sys, time
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer in one write, sent at once: no Nagle / delayed-ACK stall
    # of 40 ms a request, the receiver's and not the daemon's.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        out.write(f"{time.time():.6f} {body.decode()}\n")
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$dir/receiver.py" "$hook" "$dir/got" &
rpid=$!
cat > "$dir/watchdog.toml" <<TOML
[log]
level = "warn"

[alerts]
default-escalation = "ops"
group-wait = "0s"
flap-count = 100

[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:$hook/hook"

[escalation.ops]
levels = [{ after = "0s", channels = ["hook"] }]
TOML
for i in $(seq 0 $((N - 1))); do
    name=$(printf 't%03d' "$i")
    wait=$(python3 -c "print(3 + $i * 0.2)")
    cat > "$dir/policies/$name.toml" <<TOML
[target]
name = "$name"

[target.process]
command = ["/bin/sh", "-c", "sleep $wait; date +%s.%N > $dir/exit/$name; exit 1"]
TOML
done
start() {
    "$BIN" run --config "$dir/watchdog.toml" --policies "$dir/policies" --state-dir "$dir/state" \
        --listen "127.0.0.1:$port" 2>>"$dir/log" &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
}
trap 'kill $pid $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
start
sleep $(python3 -c "print(3 + $N * 0.2 + 3)")
python3 - "$dir" "$N" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
first = {}
for line in open(os.path.join(d, "got")):
    at, body = line.split(" ", 1)
    for item in json.loads(body)["items"]:
        t = item.get("target")
        if item["name"] == "target-failing" and t and t not in first:
            first[t] = float(at)
lat = []
for name in sorted(os.listdir(os.path.join(d, "exit"))):
    exited = float(open(os.path.join(d, "exit", name)).read())
    if name in first:
        lat.append((first[name] - exited) * 1000)
lat.sort()
if not lat:
    sys.exit("no notification arrived")
p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]
print(f"target failing -> notification received: {len(lat)} of {n} failures, "
      f"median {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms (target: median under 20 ms)")
PY

# The drain: a backlog put in the outbox while the daemon is stopped.
kill -TERM $pid; wait $pid 2>/dev/null || true
rm -f "$dir/policies/"*.toml
: > "$dir/got"
python3 - "$dir/state/state.db" "$QUEUED" <<'PY'
import json, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time() * 1000)
rows = []
for i in range(n):
    key = f"bench-{i}"
    body = {"key": key, "channel": "hook", "createdAt": now, "severity": "warning",
            "items": [{"fingerprint": f"fp{i:08x}", "why": {"kind": "firing"}, "name": "target-failing",
                       "target": f"t{i % 100:03d}", "labels": {}, "severity": "warning",
                       "summary": f"backlog {i}", "startedAt": now, "resolvedAt": None, "incident": None}]}
    rows.append((key, "hook", now, "warning", json.dumps(body)))
c.executemany("INSERT INTO outbox (key, channel, created_ms, severity, body) VALUES (?, ?, ?, ?, ?)", rows)
c.commit()
PY
t0=$(date +%s.%N)
start
peak=0
while :; do
    got=$(grep -c '"key":"bench-' "$dir/got" || true)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    [ "$got" -ge "$QUEUED" ] && break
    if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $t0 < 600 else 1)"; then sleep 0.2; else echo "drain: gave up after 600 s with $got" >&2; break; fi
done
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$got" "$peak" <<'PY'
import sys
t0, t1, got, peak = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"drain: {got} queued notifications delivered in {t1 - t0:.1f} s from the start "
      f"({got / (t1 - t0):.0f} a second), peak RSS {peak / 1024:.1f} MiB while the outbox held them")
PY
