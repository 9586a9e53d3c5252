#!/usr/bin/env bash
# Provisions a local PostgreSQL for tilegate's store tests; idempotent.
# Runs as root on Debian bookworm: installs Debian's postgresql package when
# missing, starts the cluster listening on 127.0.0.1:5432, creates the role
# `tilegate` (password `tilegate`, CREATEDB: each test makes its own database)
# and the database `tilegate_test`.
#
# Progress goes to stderr; the only stdout line is the URL, so:
#   TILEGATE_TEST_PG_URL=$(bash .ci/pg.sh | tail -1)
#
# TLS: the cluster also speaks TLS with a certificate for 127.0.0.1, ::1
# and localhost, signed by a test CA made here once (openssl) in
# /var/lib/tilegate-test-pg-tls/. The CA certificate, ca.pem there, is what
# tests trust (scripts/test.sh exports its path as TILEGATE_TEST_PG_CA).
# Plaintext stays allowed: the URL above has no sslmode (sqlx's `prefer`),
# and tests that are not about TLS use it as it is.
set -euo pipefail

ROLE=tilegate
PASSWORD=tilegate
DATABASE=tilegate_test
HOST=127.0.0.1
PORT=5432

exec 3>&1 1>&2 # keep stdout for the URL
log() { echo "pg.sh: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root"
    exit 1
fi

have_postgres() {
    command -v pg_ctlcluster >/dev/null 2>&1 &&
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Anything that may start the postgres daemon (the package's postinst,
# pg_createcluster, pg_ctlcluster) must not inherit our stdout, stderr or
# any other open descriptor: the daemon would hold them open, and a caller
# reading our output (`$(bash .ci/pg.sh | tail -1)`) or a CI harness reading
# its pipe would wait for EOF forever.
DAEMON_LOG=/tmp/tilegate-pg-setup.log
detached() {
    if ! (
        # Close every descriptor above 2, ours (fd 3) and any a caller's
        # harness passed down, then run the command on the log.
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec "$@"
    ) </dev/null >>"$DAEMON_LOG" 2>&1; then
        log "failed: $*"
        tail -n 30 "$DAEMON_LOG" >&2
        exit 1
    fi
}

if ! have_postgres; then
    log "installing postgresql from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    detached apt-get update -q
    detached apt-get install -y -q postgresql
fi

VERSION=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
log "PostgreSQL $VERSION"

if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    log "creating cluster $VERSION/main"
    detached pg_createcluster "$VERSION" main --port "$PORT"
fi

# Listen on 127.0.0.1:$PORT (restart only when a setting changes). The
# port goes into postgresql.conf (pg_lsclusters and psql read it there), the
# address into a conf.d drop-in.
changed=0
if [ "$(pg_conftool -s "$VERSION" main get port || true)" != "$PORT" ]; then
    pg_conftool "$VERSION" main set port "$PORT"
    changed=1
fi
CONF_D=/etc/postgresql/$VERSION/main/conf.d
WANT="listen_addresses = '$HOST'"
if [ "$(cat "$CONF_D/tilegate.conf" 2>/dev/null || true)" != "$WANT" ]; then
    install -d -o postgres -g postgres "$CONF_D"
    echo "$WANT" >"$CONF_D/tilegate.conf"
    changed=1
fi

# TLS material, made once; remade when missing, unreadable or within 30
# days of expiry. openssl writes nothing to stdout here (fd 1 is stderr).
TLS_DIR=/var/lib/tilegate-test-pg-tls
reload=0
tls_ok() {
    [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ] &&
        openssl x509 -checkend 2592000 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1 &&
        openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" >/dev/null 2>&1
}
if ! tls_ok; then
    log "making the test CA and server certificate in $TLS_DIR"
    install -d -m 0755 "$TLS_DIR"
    tmp=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=tilegate test PostgreSQL CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.pem" >/dev/null 2>&1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$tmp/server.key" -out "$tmp/server.csr" >/dev/null 2>&1
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
        "keyUsage=critical,digitalSignature" >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 3650 -extfile "$tmp/ext" -out "$tmp/server.pem" >/dev/null 2>&1
    install -m 0644 "$tmp/ca.pem" "$TLS_DIR/ca.pem"
    install -m 0644 "$tmp/server.pem" "$TLS_DIR/server.pem"
    # PostgreSQL refuses a key file that others may read.
    install -m 0600 -o postgres -g postgres "$tmp/server.key" "$TLS_DIR/server.key"
    rm -rf "$tmp"
    tls_ok || {
        log "the TLS material in $TLS_DIR does not verify"
        exit 1
    }
    reload=1
fi
WANT_TLS="ssl = on
ssl_cert_file = '$TLS_DIR/server.pem'
ssl_key_file = '$TLS_DIR/server.key'"
if [ "$(cat "$CONF_D/tilegate-tls.conf" 2>/dev/null || true)" != "$WANT_TLS" ]; then
    install -d -o postgres -g postgres "$CONF_D"
    echo "$WANT_TLS" >"$CONF_D/tilegate-tls.conf"
    reload=1
fi

# Without systemd nothing creates the socket directory at boot.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

status=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" { print $4 }')
if [ "$status" = "online" ] && [ "$changed" = 1 ]; then
    log "restarting cluster (configuration changed)"
    detached pg_ctlcluster "$VERSION" main restart
elif [ "$status" != "online" ]; then
    log "starting cluster $VERSION/main"
    detached pg_ctlcluster "$VERSION" main start
elif [ "$reload" = 1 ]; then
    # TLS settings and files take effect on a reload: no restart, so the
    # connections of anything else using the cluster stay up.
    log "reloading cluster (TLS configuration changed)"
    detached pg_ctlcluster "$VERSION" main reload
else
    log "cluster already running"
fi

for _ in $(seq 1 30); do
    pg_isready -q -h "$HOST" -p "$PORT" && break
    sleep 1
done
pg_isready -h "$HOST" -p "$PORT"

psql_admin() {
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"
}

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    log "creating role $ROLE"
    psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
else
    psql_admin -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    log "creating database $DATABASE"
    psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

URL="postgres://$ROLE:$PASSWORD@$HOST:$PORT/$DATABASE"
# Prove the URL works over TCP with password authentication.
PGPASSWORD=$PASSWORD psql -X -q -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DATABASE" -tAc 'SELECT 1' >/dev/null
# Prove TLS with full verification against the test CA (a reload is
# applied asynchronously: give it a moment).
for i in $(seq 1 50); do
    if PGPASSWORD=$PASSWORD PGSSLMODE=verify-full PGSSLROOTCERT=$TLS_DIR/ca.pem \
        psql -X -q -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DATABASE" -tAc 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    if [ "$i" = 50 ]; then
        log "TLS with verify-full against $TLS_DIR/ca.pem fails"
        exit 1
    fi
    sleep 0.2
done
log "ready"
echo "$URL" >&3
