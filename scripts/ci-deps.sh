#!/usr/bin/env bash
# Test dependencies outside cargo, idempotent: Python's PyJWT with the
# `cryptography` backend, the independent JWT library tests/issuance.rs
# verifies the gateway's tokens with (against its JWKS).
set -euo pipefail

have_pyjwt() { python3 -c 'import jwt, cryptography' >/dev/null 2>&1; }

if have_pyjwt; then
    echo "ci-deps: PyJWT + cryptography already installed" >&2
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "ci-deps: installing python3" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q python3 python3-pip
fi

echo "ci-deps: installing pyjwt[crypto]" >&2
# Debian's system Python refuses plain pip installs (PEP 668); retry with
# --break-system-packages there, then fall back to Debian's own packages.
python3 -m pip install --quiet 'pyjwt[crypto]' 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages 'pyjwt[crypto]' 2>/dev/null ||
    pip install --quiet 'pyjwt[crypto]' 2>/dev/null ||
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q python3-jwt python3-cryptography
    }

have_pyjwt || {
    echo "ci-deps: PyJWT is still not importable by python3" >&2
    exit 1
}
echo "ci-deps: ok" >&2
