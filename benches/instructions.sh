#!/usr/bin/env bash
# Instructions per proxied cache-hit request, counted by valgrind's
# callgrind: the same count for the same binary and inputs whatever else
# the machine is doing, so builds can be compared on a busy machine where
# the timing benchmarks (peers.sh, ab.sh) only show noise.
#
# It reuses the harness's backend config, keys and token from a run kept
# with KEEP_RUN=1 (see benches/ab.sh), runs each build under callgrind
# twice (N1 and N2 keep-alive requests with `ab`, after one warm-up
# request that fills the verification cache and opens the upstream
# connection) and prints (count(N2) - count(N1)) / (N2 - N1): start-up and
# shutdown cancel out.
#
#   KEEP_RUN=1 RUN_DIR=/tmp/tg-ab PEERS=nginx ROUNDS=1 DURATION=2 \
#     CRYPTO_BASELINE=0 bash benches/peers.sh
#   RUN_DIR=/tmp/tg-ab bash benches/instructions.sh target/release/tilegate /tmp/other-build
#
# CANDIDATES="a.sh b.sh" gives each build its own config script (an older
# build may not read the current benches/candidate.sh config); PATHQ the
# path (/small or /tiles/14/8190/5450.pbf); N1, N2 the request counts.
# The callgrind outputs stay as $RUN_DIR/cg-<binary name>-<N>.out; with
# benches/cg_per_request.py they give the instructions per request by
# function (where a build spends them).
set -u
cd "$(dirname "$0")/.."
repo=$PWD
R=${RUN_DIR:?set RUN_DIR to a run dir kept by the harness (see the header)}
[ -f "$R/conf/nginx-backend.conf" ] && [ -f "$R/keys/token.txt" ] || { echo "no kept harness run in $R" >&2; exit 2; }
command -v valgrind >/dev/null && command -v ab >/dev/null || { echo "needs valgrind and ab (apache2-utils)" >&2; exit 2; }
BINS=("${@:-$repo/target/release/tilegate}")
read -r -a CANDS <<<"${CANDIDATES:-}"
PATHQ=${PATHQ:-/small}
N1=${N1:-1000}
N2=${N2:-6000}
port=18095
for p in 18080 $port; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use: stop what holds it first" >&2
        exit 2
    fi
done
tok=$(cat "$R/keys/token.txt")
. "$R/keys/claims.env"
export BENCH_JWT_ISS=$JWT_ISS BENCH_JWT_AUD=$JWT_AUD BENCH_JWT_KID=$JWT_KID BENCH_JWT_SCOPE=$JWT_SCOPE
export BENCH_BACKEND_URL=http://127.0.0.1:18080 BENCH_KEYS_DIR=$R/keys
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null; done; }
trap cleanup EXIT
setsid nginx -p "$R" -e "$R/logs/cg-backend.err" -c "$R/conf/nginx-backend.conf" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

count() { # bin candidate n -> total instructions
    local bin=$1 cand=$2 n=$3 d=$R/cg-run
    rm -rf "$d" && mkdir -p "$d"
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/out "%s" "$@"\n' "$d" "$bin" >"$d/wrap.sh"
    chmod +x "$d/wrap.sh"
    BENCH_RUN_DIR=$d setsid "$cand" $port "$d/wrap.sh" >"$d/log" 2>&1 &
    local gp=$!
    for _ in $(seq 1 240); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.5; done
    curl -s -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$port$PATHQ"
    ab -q -k -n "$n" -c 4 -H "Authorization: Bearer $tok" "http://127.0.0.1:$port$PATHQ" >"$d/ab" 2>&1
    kill -TERM -- "-$gp" 2>/dev/null
    wait "$gp" 2>/dev/null
    if ! grep -q "Complete requests: *$n" "$d/ab" || grep -q "Non-2xx" "$d/ab"; then
        echo "requests failed for $bin (see $d/ab, $d/log)" >&2
        exit 1
    fi
    cat "$d"/out* >"$R/cg-$(basename "$bin")-$n.out"
    awk '/^(summary|totals):/ {print $2; exit}' "$d"/out*
}
i=0
for bin in "${BINS[@]}"; do
    cand=${CANDS[$i]:-$repo/benches/candidate.sh}
    a=$(count "$bin" "$cand" "$N1") || exit 1
    b=$(count "$bin" "$cand" "$N2") || exit 1
    printf '%-50s %7d instructions per request (%s)\n' "$bin" $(((b - a) / (N2 - N1))) "$PATHQ"
    i=$((i + 1))
done
