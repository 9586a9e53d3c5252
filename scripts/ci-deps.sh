#!/usr/bin/env bash
# Test dependencies outside cargo, idempotent: Python's PyJWT with the
# `cryptography` backend, the independent JWT library tests/issuance.rs
# verifies the gateway's tokens with (against its JWKS); and authlib with
# requests, the most used Python OAuth client, which tests/issuance.rs runs
# against the gateway (client_secret_jwt).
set -euo pipefail

have_pyjwt() { python3 -c 'import jwt, cryptography' >/dev/null 2>&1; }
have_authlib() { python3 -c 'import authlib.integrations.requests_client, authlib.oauth2.rfc7523' >/dev/null 2>&1; }

if have_pyjwt && have_authlib; then
    echo "ci-deps: PyJWT + cryptography and authlib already installed" >&2
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "ci-deps: installing python3" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q python3 python3-pip
fi

# Debian's system Python refuses plain pip installs (PEP 668); retry with
# --break-system-packages there, then fall back to Debian's own packages.
pip_install() {
    python3 -m pip install --quiet "$@" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "$@" 2>/dev/null ||
        pip install --quiet "$@" 2>/dev/null
}

if ! have_pyjwt; then
    echo "ci-deps: installing pyjwt[crypto]" >&2
    pip_install 'pyjwt[crypto]' || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q python3-jwt python3-cryptography
    }
fi

if ! have_authlib; then
    echo "ci-deps: installing authlib and requests" >&2
    pip_install authlib requests || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q python3-authlib python3-requests
    }
fi

have_pyjwt || {
    echo "ci-deps: PyJWT is still not importable by python3" >&2
    exit 1
}
have_authlib || {
    echo "ci-deps: authlib is still not importable by python3" >&2
    exit 1
}
echo "ci-deps: ok" >&2
