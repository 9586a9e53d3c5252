#!/usr/bin/env bash
# The one test command (README; .ci/run calls exactly this). Installs and
# starts what the tests need, idempotently: PostgreSQL from Debian's
# packages, PyJWT for the independent JWT check, Node packages and Chromium
# for the browser test. Then runs the Rust suite and the JS client suite.
set -euo pipefail
cd "$(dirname "$0")/.."

TILEGATE_TEST_PG_URL=$(bash .ci/pg.sh | tail -n 1)
export TILEGATE_TEST_PG_URL
if [ -f scripts/ci-deps.sh ]; then bash scripts/ci-deps.sh; fi

cargo test --locked

# Deployment files: manifests, unit, Dockerfile and configs (offline).
bash deploy/validate.sh

# The browser end-to-end test of the MapLibre example, then the JS client's
# unit tests (node's test runner).
bash scripts/e2e.sh
(cd clients/js && npm test)
