#!/usr/bin/env bash
# Started by the peer harness (as CANDIDATE_CMD) with BENCH_* set: writes a
# tilegate config that trusts the harness's ES256 key, issuer and audience,
# proxies /small and /tiles/{z}/{x}/{y}.pbf to the backend with scope
# tiles:read, and execs the gateway with BENCH_WORKERS worker threads.
# TG_WORKERS (optional) sets `[server] workers`: a number or "per-core" runs
# the proxy listener as that many per-core workers (own current-thread
# runtime and SO_REUSEPORT socket each; BENCH_WORKERS then sizes only the
# main runtime of the background tasks); unset or "shared" is the default.
set -euo pipefail
port=${1:?port}
bin=${2:?binary}
: "${BENCH_BACKEND_URL:?} ${BENCH_KEYS_DIR:?} ${BENCH_JWT_ISS:?} ${BENCH_JWT_AUD:?} ${BENCH_JWT_KID:?} ${BENCH_RUN_DIR:?}"
dir=$BENCH_RUN_DIR/tilegate
mkdir -p "$dir"
case ${TG_WORKERS:-shared} in
    shared | per-core) workers="\"${TG_WORKERS:-shared}\"" ;;
    *[!0-9]* | "") echo "TG_WORKERS: \"shared\", \"per-core\" or a number" >&2; exit 2 ;;
    *) workers=$TG_WORKERS ;;
esac
cat >"$dir/bench.toml" <<CFG
[server]
listen = "127.0.0.1:$port"
access_log = false
watch_config = false
max_connections = 100000
workers = $workers
[admin]
listen = "127.0.0.1:$((port + 100))"
[store]
url = "sqlite://$dir/tilegate.db"
kek_file = "$dir/kek"
[tokens]
issuer = "http://127.0.0.1:$port"
audience = "tilegate"
[cache]
max_entries = 1000000
[scopes]
"tiles:read" = "Read tiles"
"datasets:stream" = "Stream datasets"
[[issuers]]
name = "bench"
issuer = "$BENCH_JWT_ISS"
audiences = ["$BENCH_JWT_AUD"]
algorithms = ["ES256"]
pem_file = "$BENCH_KEYS_DIR/es256-public.pem"
kid = "$BENCH_JWT_KID"
scopes = ["tiles:read", "datasets:stream"]
[[upstreams]]
name = "backend"
backends = ["$BENCH_BACKEND_URL"]
pool_max_idle = 1024
[[routes]]
name = "small"
path = "/small"
methods = ["GET"]
upstream = "backend"
scopes = ["tiles:read"]
issuers = ["self", "bench"]
[[routes]]
name = "tiles"
path = "/tiles/{z}/{x}/{y}.pbf"
methods = ["GET"]
upstream = "backend"
scopes = ["tiles:read"]
issuers = ["self", "bench"]
CFG
export TOKIO_WORKER_THREADS=${BENCH_WORKERS:-1}
export RUST_LOG=${RUST_LOG:-warn}
exec "$bin" serve --config "$dir/bench.toml"
