#!/usr/bin/env bash
# A candidate script (benches/instructions.sh CANDIDATES=…) for the plain
# hyper proxy, examples/plain_hyper.rs: it takes the same arguments as
# benches/candidate.sh and forwards everything to the harness's backend.
set -euo pipefail
port=${1:?port}
bin=${2:?binary}
export TOKIO_WORKER_THREADS=${BENCH_WORKERS:-1}
exec "$bin" "127.0.0.1:$port" "${BENCH_BACKEND_URL:?}"
