#!/usr/bin/env bash
# The one test command (README; .ci/run calls exactly this). Installs and
# starts what the tests need, idempotently: PostgreSQL from Debian's
# packages (with TLS), PyJWT for the independent JWT check, authlib as a
# real OAuth client, Go for the app-backend sample, Node packages and
# Chromium for the browser test. Then runs the Rust suite and the JS client suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL: your own server when TILEGATE_TEST_PG_URL is set (a role that
# may CREATE DATABASE; each test makes its own), else the test cluster that
# .ci/pg.sh installs and starts (as root; it stays running afterwards).
if [ -z "${TILEGATE_TEST_PG_URL:-}" ]; then
    # pg.sh's last stdout line is the URL. Read from a file, not a pipe, so
    # a daemon that kept a copy of the descriptor could never stall this.
    PG_OUT=$(mktemp)
    bash .ci/pg.sh >"$PG_OUT"
    TILEGATE_TEST_PG_URL=$(tail -n 1 "$PG_OUT")
    rm -f "$PG_OUT"
    # The CA of the cluster's TLS certificate (pg.sh makes it), for the
    # tests that connect with sslmode=verify-full.
    export TILEGATE_TEST_PG_CA=${TILEGATE_TEST_PG_CA:-/var/lib/tilegate-test-pg-tls/ca.pem}
else
    echo "test.sh: using TILEGATE_TEST_PG_URL as given (TLS tests need TILEGATE_TEST_PG_CA)" >&2
fi
export TILEGATE_TEST_PG_URL
if [ -f scripts/ci-deps.sh ]; then bash scripts/ci-deps.sh; fi

# Go for the Go app-backend sample (tests/samples.rs runs it; Python and
# Node are here already), from Debian's packages when missing.
if ! command -v go >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends golang-go
fi

cargo test --locked

# Deployment files: manifests, unit, Dockerfile and configs (offline).
bash deploy/validate.sh

# The browser end-to-end test of the MapLibre example, then the JS client's
# unit tests (node's test runner).
bash scripts/e2e.sh
(cd clients/js && npm test)
