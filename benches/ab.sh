#!/usr/bin/env bash
# A/B of gateway builds beside plain nginx, per request: CPU of the proxy
# (user and total) and of the backend, syscalls, and context switches.
# Finer-grained than the peer harness and quicker; use it to decide whether
# a change to the hot path is worth keeping, then run benches/peers.sh for
# the figures in docs/performance.md.
#
# It reuses the harness's rendered backend and nginx configs and its keys
# and token, from a run kept with KEEP_RUN=1:
#
#   KEEP_RUN=1 RUN_DIR=/tmp/tg-ab PEERS=nginx ROUNDS=1 DURATION=2 \
#     CRYPTO_BASELINE=0 bash benches/peers.sh
#   RUN_DIR=/tmp/tg-ab bash benches/ab.sh target/release/tilegate /tmp/other-build
#
# Everything is pinned like the harness (servers on core 1, wrk on core 0,
# 64 connections). ROUNDS="1 2 3" sets the rounds, D the seconds per run,
# PATHQ the path (/small or /tiles/14/8190/5450.pbf). HYPER_PLAIN_BIN
# (target/release/examples/plain_hyper) adds the plain hyper proxy as a
# third row, on port 18088. PROF=1 records a perf
# profile (user space, call graphs) of the first build instead, into
# $RUN_DIR/perf.user.data. Needs perf for the syscall counts.
# TG_WORKERS sets `[server] workers` for every build (benches/candidate.sh);
# AB_WORKERS="shared 1" sets it per build, in the order of the builds, so
# one binary given twice compares the two worker models:
#   AB_WORKERS="shared 1" RUN_DIR=/tmp/tg-ab bash benches/ab.sh target/release/tilegate target/release/tilegate
# For PROF=1 give a build with line tables: `cargo build --profile profiling`
# and pass target/profiling/tilegate (the release binary has no DWARF).
set -u
cd "$(dirname "$0")/.."
repo=$PWD
R=${RUN_DIR:?set RUN_DIR to a run dir kept by the harness (see the header)}
[ -f "$R/conf/nginx-backend.conf" ] && [ -f "$R/keys/token.txt" ] || { echo "no kept harness run in $R" >&2; exit 2; }
BINS=("${@:-$repo/target/release/tilegate}")
PATHQ=${PATHQ:-/small}
D=${D:-5}
. "$repo/benches/kept_run.sh"
ports_free 18080 18081 18088 $(seq 18090 $((18089 + ${#BINS[@]})))
trap stop_started EXIT
start_nginx_pair ab
if [ -n "${HYPER_PLAIN_BIN:-}" ]; then
    TOKIO_WORKER_THREADS=1 setsid taskset -c 1 "$HYPER_PLAIN_BIN" 127.0.0.1:18088 http://127.0.0.1:18080 >"$R/logs/ab-hyper.log" 2>&1 &
    pids+=($!)
fi
read -ra ab_workers <<<"${AB_WORKERS:-}"
i=0
for BIN in "${BINS[@]}"; do
    mkdir -p "$R/ab-gw$i"
    (
        . "$R/keys/claims.env"
        export BENCH_JWT_ISS=$JWT_ISS BENCH_JWT_AUD=$JWT_AUD BENCH_JWT_KID=$JWT_KID BENCH_JWT_SCOPE=$JWT_SCOPE
        export BENCH_BACKEND_URL=http://127.0.0.1:18080 BENCH_KEYS_DIR=$R/keys BENCH_RUN_DIR=$R/ab-gw$i
        export TG_WORKERS=${ab_workers[$i]:-${TG_WORKERS:-shared}}
        exec setsid taskset -c 1 "$repo/benches/candidate.sh" $((18090 + i)) "$BIN" >"$R/ab-gw$i.log" 2>&1
    ) &
    pids+=($!)
    i=$((i + 1))
done
sleep 1.5
tok=$(cat "$R/keys/token.txt")

# The process that does the work: nginx's worker, the gateway itself.
worker() {
    local master
    case $1 in
    backend) master=$(pgrep -f "$R/conf/nginx-backend.conf" | head -1) ;;
    nginx) master=$(pgrep -f "$R/conf/nginx-proxy.conf" | head -1) ;;
    tg*) pgrep -f "$R/ab-gw${1#tg}/tilegate/bench.toml" | head -1; return ;;
    hyper) pgrep -f "plain_hyper 127.0.0.1:18088" | head -1; return ;;
    esac
    ps -o pid= --ppid "$master" | head -1 | tr -d ' '
}
# Summed over the process's threads (a tokio process works on its worker
# threads, not the main one).
field() { cat /proc/"$1"/task/*/status 2>/dev/null | awk -v k="$2" '$1 == k":" {n += $2} END {print n + 0}'; }
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

wrk_run() { taskset -c 0 wrk -t1 -c64 -d"$2" -H "Authorization: Bearer $tok" "http://127.0.0.1:$1$PATHQ"; }

run() {
    local name=$1 port=$2 w b
    wrk_run "$port" 1s >/dev/null
    w=$(worker "$name")
    b=$(worker backend)
    read -r wu0 ws0 < <(ticks "$w")
    read -r bu0 bs0 < <(ticks "$b")
    local wn0 wv0 bv0
    wn0=$(field "$w" nonvoluntary_ctxt_switches)
    wv0=$(field "$w" voluntary_ctxt_switches)
    bv0=$(field "$b" voluntary_ctxt_switches)
    perf stat -x, -e raw_syscalls:sys_enter -p "$w" -o "$R/ab-perf.$name" -- sleep "$D" >/dev/null 2>&1 &
    local pp=$!
    local out
    out=$(wrk_run "$port" "${D}s")
    wait $pp
    read -r wu1 ws1 < <(ticks "$w")
    read -r bu1 bs1 < <(ticks "$b")
    local wn1 wv1 bv1
    wn1=$(field "$w" nonvoluntary_ctxt_switches)
    wv1=$(field "$w" voluntary_ctxt_switches)
    bv1=$(field "$b" voluntary_ctxt_switches)
    local n sc
    n=$(echo "$out" | awk '/requests in/{print $1}')
    sc=$(grep raw_syscalls "$R/ab-perf.$name" | cut -d, -f1)
    awk -v name="$name" -v n="$n" -v d="$D" -v sc="${sc:-0}" \
        -v wu=$((wu1 - wu0)) -v ws=$((ws1 - ws0)) -v bc=$((bu1 + bs1 - bu0 - bs0)) \
        -v wn=$((wn1 - wn0)) -v wv=$((wv1 - wv0)) -v bv=$((bv1 - bv0)) 'BEGIN {
        # clock ticks are 10 ms
        printf "%-7s %7.0f req/s  proxy CPU %5.1f us/req (user %4.1f)  backend %5.1f  syscalls %4.2f  proxy preempted %4.2f  proxy sleeps %4.2f  backend wakeups %4.2f /req\n",
            name, n / d, (wu + ws) * 10000 / n, wu * 10000 / n, bc * 10000 / n, sc / n, wn / n, wv / n, bv / n }'
}

if [ -n "${PROF:-}" ]; then
    wrk_run 18090 1s >/dev/null
    perf record -F 4999 -e cpu-clock --all-user --call-graph dwarf,16384 -o "$R/perf.user.data" \
        -p "$(worker tg0)" -- sleep 4 >/dev/null 2>&1 &
    pp=$!
    wrk_run 18090 5s
    wait $pp
    echo "perf report -i $R/perf.user.data --no-children --sort symbol"
    exit 0
fi
for r in ${ROUNDS:-1 2}; do
    echo "round $r"
    run nginx 18081
    [ -n "${HYPER_PLAIN_BIN:-}" ] && run hyper 18088
    for ((j = 0; j < ${#BINS[@]}; j++)); do run "tg$j" $((18090 + j)); done
done
