#!/usr/bin/env bash
# System calls per request, by call, for plain nginx, the plain hyper proxy
# (examples/plain_hyper.rs) and a gateway build, counted with `strace -c`
# on the process that does the work while wrk drives it (strace slows the
# servers down several times; the counts per request are what it is for,
# not the rates).
#
#   KEEP_RUN=1 RUN_DIR=/tmp/tg-ab PEERS=nginx ROUNDS=1 DURATION=2 CRYPTO_BASELINE=0 bash benches/peers.sh
#   cargo build --release --locked --bin tilegate --example plain_hyper
#   RUN_DIR=/tmp/tg-ab bash benches/syscalls.sh [target/release/tilegate]
#
# PATHQ the path (/small or /tiles/14/8190/5450.pbf). Pinned like
# benches/ab.sh: servers on core 1, wrk on core 0, 64 connections.
set -u
cd "$(dirname "$0")/.."
repo=$PWD
R=${RUN_DIR:?set RUN_DIR to a run dir kept by the harness (see the header)}
[ -f "$R/conf/nginx-backend.conf" ] && [ -f "$R/keys/token.txt" ] || { echo "no kept harness run in $R" >&2; exit 2; }
BIN=${1:-$repo/target/release/tilegate}
HYPER=${HYPER_PLAIN_BIN:-$repo/target/release/examples/plain_hyper}
PATHQ=${PATHQ:-/small}
. "$repo/benches/kept_run.sh"
ports_free 18080 18081 18088 18090
trap stop_started EXIT
start_nginx_pair sc
TOKIO_WORKER_THREADS=1 setsid taskset -c 1 "$HYPER" 127.0.0.1:18088 http://127.0.0.1:18080 >/dev/null 2>&1 &
pids+=($!)
(
    . "$R/keys/claims.env"
    export BENCH_JWT_ISS=$JWT_ISS BENCH_JWT_AUD=$JWT_AUD BENCH_JWT_KID=$JWT_KID BENCH_JWT_SCOPE=$JWT_SCOPE
    export BENCH_BACKEND_URL=http://127.0.0.1:18080 BENCH_KEYS_DIR=$R/keys BENCH_RUN_DIR=$R/sc-gw
    mkdir -p "$R/sc-gw"
    exec setsid taskset -c 1 "$repo/benches/candidate.sh" 18090 "$BIN" >"$R/sc-gw.log" 2>&1
) &
pids+=($!)
sleep 1.5
tok=$(cat "$R/keys/token.txt")
for t in nginx:18081 hyper-plain:18088 tilegate:18090; do
    name=${t%%:*} port=${t##*:}
    case $name in
    nginx) w=$(ps -o pid= --ppid "$(pgrep -f "$R/conf/nginx-proxy.conf" | head -1)" | head -1 | tr -d ' ') ;;
    hyper-plain) w=$(pgrep -f "plain_hyper 127.0.0.1:18088" | head -1) ;;
    tilegate) w=$(pgrep -f "$R/sc-gw/tilegate/bench.toml" | head -1) ;;
    esac
    taskset -c 0 wrk -t1 -c64 -d1s -H "Authorization: Bearer $tok" "http://127.0.0.1:$port$PATHQ" >/dev/null
    timeout -s INT 4 strace -c -f -p "$w" -o "$R/strace.$name" 2>/dev/null &
    sp=$!
    sleep 0.3
    out=$(taskset -c 0 wrk -t1 -c64 -d3s -H "Authorization: Bearer $tok" "http://127.0.0.1:$port$PATHQ")
    wait $sp
    n=$(echo "$out" | awk '/requests in/{print $1}')
    echo "$name ($PATHQ): system calls per request, over $n requests"
    awk -v n="$n" 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ {printf "  %-14s %5.2f\n", $NF, $4 / n; s += $4}
        END {printf "  %-14s %5.2f\n", "all", s / n}' "$R/strace.$name" | sort -k2 -rn | head -9
done
