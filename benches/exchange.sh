#!/usr/bin/env bash
# Load test of the API-key exchange (POST /v1/auth/token) with keep-alive
# on loopback: the release binary on a throw-away SQLite store, one API key
# (cached after its first use), wrk on one core, the gateway on the other.
#
#   bash benches/exchange.sh            # DURATION=10 CONNS=64 ALG=ES256
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
ALG=${ALG:-ES256}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --locked --bin tilegate >&2
bin=$PWD/target/release/tilegate
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/t.toml" <<CFG
[server]
listen = "127.0.0.1:18190"
access_log = false
watch_config = false
[admin]
listen = ""
[store]
url = "sqlite://$dir/t.db"
kek_file = "$dir/kek"
[tokens]
issuer = "http://127.0.0.1:18190"
algorithm = "$ALG"
[scopes]
"tiles:read" = "r"
[[upstreams]]
name = "none"
backends = ["http://127.0.0.1:9"]
CFG
org=$("$bin" --config "$dir/t.toml" --json org create bench | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
sa=$("$bin" --config "$dir/t.toml" --json service-account create --org "$org" --name bench | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
export TILEGATE_BENCH_API_KEY=$("$bin" --config "$dir/t.toml" --json api-key create --service-account "$sa" --scope tiles:read | python3 -c 'import sys,json;print(json.load(sys.stdin)["api_key"])')
TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 1 "$bin" serve --config "$dir/t.toml" &
pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TILEGATE_BENCH_API_KEY" http://127.0.0.1:18190/v1/auth/token && break; sleep 0.1; done
echo "tilegate $(git rev-parse --short HEAD 2>/dev/null), $ALG, $CONNS connections, ${DURATION}s, gateway pinned to core 1 (1 core), wrk on core 0:"
taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s benches/exchange.lua http://127.0.0.1:18190/v1/auth/token | tail -n 1
