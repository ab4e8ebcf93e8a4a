#!/usr/bin/env bash
# A day of incidents, measured in the running daemon (release build): a
# process target that exits every EVERY seconds (default 10) is restarted
# by its ladder, each time an incident opened and closed, its alert raised
# and resolved (flapping after the fourth), its restart notice folded; the
# watchdog's bytes written to disk (/proc/PID/io write_bytes, which counts
# what reaches the block layer: the event log, alert state, incident
# records, the outbox, the metrics history) over SECS seconds (default
# 300), as a day's worth, beside the incidents counted.
# Usage: bench/incidents.sh  (BIN= another build, SECS=, EVERY=)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rvm-watchdog}
SECS=${SECS:-300}
EVERY=${EVERY:-10}
[ -x "$BIN" ] || cargo build --release
command -v curl >/dev/null || { echo "bench/incidents.sh needs curl" >&2; exit 1; }

# On disk, where write_bytes counts (not tmpfs).
dir=$(mktemp -d -p /var/tmp)
mkdir -p "$dir/policies"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/watchdog.toml" <<TOML
[log]
level = "warn"

[alerts]
default-escalation = "field-ops"

[channels.ops-webhook]
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[escalation.field-ops]
levels = [{ after = "0s", channels = ["ops-webhook"] }]
TOML
cat > "$dir/policies/crasher.toml" <<TOML
[target]
name = "crasher"
reset-after = "10s"

[target.process]
command = ["/bin/sh", "-c", "sleep $EVERY; exit 1"]

[[recovery]]
action = "restart"
attempts = 100
backoff = { initial = "1s", factor = 1.0, jitter = 0.0 }
healthy-for = "2s"

[alert]
severity = "critical"
TOML
"$BIN" run --config "$dir/watchdog.toml" --policies "$dir/policies" --state-dir "$dir/state" \
    --listen "127.0.0.1:$port" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done

written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$pid/io"; }
incidents() { curl -sf "http://127.0.0.1:$port/api/v1/incidents?limit=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["incidents"]))'; }

sleep 5
sync
w0=$(written); i0=$(incidents); s0=$(date +%s.%N)
for ((t = 0; t < SECS; t += 60)); do
    sleep $(( SECS - t < 60 ? SECS - t : 60 ))
    echo "  ${t}s+: $(incidents) incidents so far" >&2
done
sync
w1=$(written); i1=$(incidents); s1=$(date +%s.%N)
python3 - "$w0" "$w1" "$i0" "$i1" "$s0" "$s1" <<'PY'
import sys
w0, w1, i0, i1, s0, s1 = map(float, sys.argv[1:])
secs = s1 - s0
n = i1 - i0
per_day = (w1 - w0) / secs * 86400
print(f"{n:.0f} incidents in {secs:.0f} s ({n / secs * 86400:.0f} a day at this rate): "
      f"{(w1 - w0) / 1e6:.2f} MB written, {per_day / 1e6:.1f} MB a day "
      f"({(w1 - w0) / max(n, 1) / 1024:.1f} KiB an incident, everything included; target 50 MB a day)")
PY
curl -sf "http://127.0.0.1:$port/api/v1/alerts?state=all" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["alerts"]:
    print("  alert", a["name"], a.get("target"), a["state"], "flapping" if a["flapping"] else "")'
curl -sf "http://127.0.0.1:$port/api/v1/notifications?limit=1000" | python3 -c '
import json, sys
n = json.load(sys.stdin)["notifications"]
kinds = sorted({i["name"] + "/" + i["why"]["kind"] for x in n for i in x["notification"]["items"]})
print("  notifications:", len(n), ", ".join(kinds))'
