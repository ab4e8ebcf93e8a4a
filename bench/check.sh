#!/usr/bin/env bash
# `rvm-watchdog check` on generated policies of 1,000, 10,000 and 50,000
# probes: wall time, CPU time (user + system; steadier than wall time on a
# busy machine) and peak memory (max RSS).
#
#   bench/check.sh                 build the release binary, run all sizes
#   bench/check.sh 2000 20000      other sizes
#   BIN=path/to/rvm-watchdog bench/check.sh   measure that binary, no build
#
# Each policy file holds one target with up to 1,000 probes (about 120 KB,
# under the 1 MiB a file may hold) and depends on the previous target, so
# the cross-file checks see a chain as long as the number of files.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/time ]]; then
    echo "needs GNU time: apt-get install time" >&2
    exit 1
fi
if [[ -z "${BIN:-}" ]]; then
    cargo build --release --bin rvm-watchdog
    BIN=target/release/rvm-watchdog
fi
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 10000 50000)
per_file=1000

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One policy file: target t$1 with probes [$2, $3), depending on t$(($1 - 1)).
policy() {
    awk -v t="$1" -v from="$2" -v to="$3" 'BEGIN {
        printf "[target]\nname = \"t%d\"\nunit = \"svc-%d.service\"\n", t, t
        if (t > 0) printf "depends-on = [\"t%d\"]\n", t - 1
        printf "startup-grace = \"30s\"\n\n"
        for (i = from; i < to; i++) {
            k = i % 5
            printf "[[probe]]\nname = \"p%d\"\n", i
            if (k == 0) printf "kind = \"http\"\nurl = \"http://127.0.0.1:%d/health\"\nexpect-status = [200, 204]\n", 1024 + i % 60000
            if (k == 1) printf "kind = \"tcp\"\naddress = \"127.0.0.1:%d\"\n", 1024 + i % 60000
            if (k == 2) printf "kind = \"file-age\"\nfile = \"/run/app/%d.beat\"\nmax-age = \"1m\"\n", i
            if (k == 3) printf "kind = \"disk\"\nmount = \"/\"\nwarn-above = 80.0\nfail-above = 90.0\n"
            if (k == 4) printf "kind = \"exec\"\ncommand = [\"/usr/bin/true\", \"%d\"]\n", i
            printf "interval = \"10s\"\ntimeout = \"2s\"\nfail-after = 3\npass-after = 2\n\n"
        }
        printf "[[recovery]]\naction = \"restart\"\nattempts = 3\nbackoff = { initial = \"1s\", factor = 2.0, max = \"1m\" }\n\n"
        printf "[alert]\nseverity = \"warning\"\n"
    }'
}

printf "%8s %6s %8s %8s %12s %s\n" probes files wall-s cpu-s max-rss-MiB result
for probes in "${sizes[@]}"; do
    dir="$work/$probes"
    mkdir -p "$dir/policies"
    files=0
    for ((from = 0; from < probes; from += per_file)); do
        to=$((from + per_file < probes ? from + per_file : probes))
        policy "$files" "$from" "$to" > "$dir/policies/t$(printf %05d "$files").toml"
        files=$((files + 1))
    done
    set +e
    /usr/bin/time -v "$BIN" check --config packaging/watchdog.toml --policies "$dir/policies" \
        > "$dir/out.txt" 2> "$dir/time.txt"
    code=$?
    set -e
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s }' "$dir/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$dir/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$dir/time.txt")
    printf "%8d %6d %8s %8s %12s exit %d: %s\n" "$probes" "$files" "$wall" "$cpu" "$rss" "$code" \
        "$(tail -n 1 "$dir/out.txt")"
done
