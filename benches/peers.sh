#!/usr/bin/env bash
# Run the peer benchmark (benches/harness/, the team's harness kept in the
# repository) with tilegate as the candidate, in the same run as nginx, HAProxy (plain and jwt_verify),
# a plain hyper proxy (examples/plain_hyper.rs: the same stack without tilegate's logic), Caddy,
# nginx+njs and Apache mod_oauth2. The harness pins tilegate to the
# server core and hands it the backend URL, key files, issuer, audience and
# scope in BENCH_* variables; benches/candidate.sh turns those into a config.
#
#   bash benches/peers.sh                  # ~5 min; results in target/peerbench/
#   TOKENS=1000 bash benches/peers.sh      # rotate 1,000 distinct tokens
#   TG_WORKERS=1 bash benches/peers.sh     # tilegate as per-core workers ([server] workers = 1;
#                                          # "per-core" or N; with SERVER_CPUS=… listing N cores)
#
# Any harness setting (DURATION, ROUNDS, CONNS, WORKLOADS, PEERS, …) passes
# through. The peers (nginx, njs, HAProxy, Apache mod_oauth2, wrk from
# Debian's packages; Caddy and PyJWT in a venv under /opt/peerbench) are
# installed first by benches/harness/setup.sh (root, idempotent; SETUP=0
# skips it); peers still missing are reported by the harness, not hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
harness=${HARNESS:-$repo/benches/harness/peers.sh}
[ -f "$harness" ] || { echo "harness not found at $harness" >&2; exit 2; }
if [ "${SETUP:-1}" != 0 ]; then bash "$(dirname "$harness")/setup.sh" >&2; fi
cargo build --release --locked --bin tilegate --example plain_hyper >&2
export HYPER_PLAIN_BIN=${HYPER_PLAIN_BIN:-$repo/target/release/examples/plain_hyper}
out=${OUT:-$repo/target/peerbench/$(date -u +%Y%m%dT%H%M%SZ)-tokens${TOKENS:-1}}
mkdir -p "$out"
export OUT=$out
# Per-core workers are named in the results (tilegate-w1, tilegate-wper-core).
export TG_WORKERS=${TG_WORKERS:-shared}
if [ "$TG_WORKERS" = shared ]; then
    export CANDIDATE_NAME=${CANDIDATE_NAME:-tilegate}
else
    export CANDIDATE_NAME=${CANDIDATE_NAME:-tilegate-w$TG_WORKERS}
fi
export CANDIDATE_URL=${CANDIDATE_URL:-http://127.0.0.1:18090}
export CANDIDATE_CMD="$repo/benches/candidate.sh 18090 $repo/target/release/tilegate"
bash "$harness"
echo "results: $out/results.md" >&2
