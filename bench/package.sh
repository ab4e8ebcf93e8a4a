#!/usr/bin/env bash
# The Debian package on this machine (as root, with no systemd as PID 1,
# like tests/package.rs): the .deb's size and its installed size; the time
# from `dpkg -i` to /health answering, the daemon started as the unit
# starts it (`rvm-watchdog run` on the installed files; only the listen
# port is a free one, not 9184); `check` of the installed configuration;
# then it is purged. RUNS= repeats the install (default 3).
# Then, when target/debian holds the arm64 package: its size, its binary's,
# and `check` of the configuration it ships under qemu-aarch64-static
# (RUNS times).
# Usage: bench/package.sh  (DEB= another package)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "bench/package.sh installs a package: run it as root" >&2; exit 1; }
[ ! -d /run/systemd/system ] || { echo "bench/package.sh: systemd is PID 1 here; postinst would start the watchdog for real" >&2; exit 1; }
if dpkg-query -W -f='${Status}' rvm-watchdog 2>/dev/null | grep -q "ok installed" || [ -e /etc/rvm-watchdog ]; then
    echo "bench/package.sh: rvm-watchdog is installed or configured here already: not touching it" >&2
    exit 1
fi
DEB=${DEB:-$(ls -t target/debian/rvm-watchdog_*_amd64.deb 2>/dev/null | head -n 1)}
[ -n "$DEB" ] || { echo "bench/package.sh: no package: build it with packaging/build-deb.sh" >&2; exit 1; }
RUNS=${RUNS:-3}

pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; dpkg --purge rvm-watchdog >/dev/null 2>&1 || true' EXIT

echo "package: $DEB"
echo "  .deb: $(stat -c %s "$DEB") bytes; installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB;" \
     "binary $(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/bin/rvm-watchdog | wc -c) bytes"
for run in $(seq "$RUNS"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    t0=$(date +%s%N)
    dpkg -i "$DEB" >/dev/null
    t1=$(date +%s%N)
    /usr/bin/rvm-watchdog run --listen "127.0.0.1:$port" --log-level warn 2>/dev/null &
    pid=$!
    until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do
        kill -0 "$pid" 2>/dev/null || { echo "the installed daemon exited" >&2; exit 1; }
        sleep 0.01
    done
    t2=$(date +%s%N)
    c0=$(date +%s%N)
    /usr/bin/rvm-watchdog check >/dev/null
    c1=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    dpkg --purge rvm-watchdog >/dev/null
    echo "  run $run: dpkg -i $(( (t1 - t0) / 1000000 )) ms, then /health answering $(( (t2 - t1) / 1000000 )) ms later:" \
         "$(( (t2 - t0) / 1000000 )) ms in all; check of the installed configuration $(( (c1 - c0) / 1000000 )) ms"
done

ARM=$(ls -t target/debian/rvm-watchdog_*_arm64.deb 2>/dev/null | head -n 1)
if [ -z "$ARM" ] || ! command -v qemu-aarch64-static >/dev/null; then
    echo "arm64: no package in target/debian (packaging/build-deb.sh --arch arm64) or no qemu-aarch64-static: not measured"
    exit 0
fi
arm=$(mktemp -d)
trap 'rm -rf "$arm"' EXIT
dpkg-deb -x "$ARM" "$arm"
sed "s|^hooks-dirs = .*|hooks-dirs = [\"$arm/usr/share/rvm-watchdog/hooks\"]|" "$arm/etc/rvm-watchdog/watchdog.toml" > "$arm/watchdog.toml"
echo "package: $ARM"
echo "  .deb: $(stat -c %s "$ARM") bytes; installed size $(dpkg-deb -f "$ARM" Installed-Size) KiB; binary $(stat -c %s "$arm/usr/bin/rvm-watchdog") bytes"
for run in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$arm/usr/bin/rvm-watchdog" check \
        --config "$arm/watchdog.toml" --policies "$arm/etc/rvm-watchdog/policies" >/dev/null
    t1=$(date +%s%N)
    echo "  run $run: check of the shipped configuration under qemu-aarch64-static $(( (t1 - t0) / 1000000 )) ms"
done
