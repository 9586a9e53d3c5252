#!/usr/bin/env bash
# Run the shared peer benchmark (../shared/bench/peers.sh) with tilegate as
# the candidate, in the same run as nginx, HAProxy (plain and jwt_verify),
# Caddy, nginx+njs and Apache mod_oauth2. The harness pins tilegate to the
# server core and hands it the backend URL, key files, issuer, audience and
# scope in BENCH_* variables; benches/candidate.sh turns those into a config.
#
#   bash ../shared/bench/setup.sh          # once per machine
#   bash benches/peers.sh                  # ~5 min; results in target/peerbench/
#   TOKENS=1000 bash benches/peers.sh      # rotate 1,000 distinct tokens
#
# Any harness setting (DURATION, ROUNDS, CONNS, WORKLOADS, PEERS, …) passes
# through. Peers not installed are reported by the harness, not hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
harness=${HARNESS:-$repo/../shared/bench/peers.sh}
[ -f "$harness" ] || { echo "harness not found at $harness" >&2; exit 2; }
cargo build --release --locked --bin tilegate >&2
out=${OUT:-$repo/target/peerbench/$(date -u +%Y%m%dT%H%M%SZ)-tokens${TOKENS:-1}}
mkdir -p "$out"
export OUT=$out
export CANDIDATE_NAME=${CANDIDATE_NAME:-tilegate}
export CANDIDATE_URL=${CANDIDATE_URL:-http://127.0.0.1:18090}
export CANDIDATE_CMD="$repo/benches/candidate.sh 18090 $repo/target/release/tilegate"
bash "$harness"
echo "results: $out/results.md" >&2
