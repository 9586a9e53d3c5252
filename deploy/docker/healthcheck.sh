#!/bin/bash
# Container HEALTHCHECK for tilegate: GET /healthz (or another path) on the
# admin listener.
#
# Uses bash's /dev/tcp so the runtime image needs no curl or wget.
# Exit 0 when the first response line carries status 200, 1 otherwise.
#
#   TILEGATE_ADMIN_HOST  host of the admin listener  (default 127.0.0.1)
#   TILEGATE_ADMIN_PORT  port of the admin listener  (default 9090)
#   TILEGATE_HEALTHCHECK_PATH  path to probe (default /healthz; /readyz makes
#                        "healthy" mean "store reachable and keys loaded")
set -u

host="${TILEGATE_ADMIN_HOST:-127.0.0.1}"
port="${TILEGATE_ADMIN_PORT:-9090}"
path="${TILEGATE_HEALTHCHECK_PATH:-/healthz}"

# Connection refused / no listener: unhealthy.
exec 3<>"/dev/tcp/${host}/${port}" || exit 1

printf 'GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tilegate-healthcheck\r\nConnection: close\r\n\r\n' "$path" "$host" >&3

# Status line, e.g. "HTTP/1.1 200 OK". Give up after 4 s (Docker's own
# --timeout is 5 s).
status_line=""
IFS= read -r -t 4 status_line <&3 || true
exec 3<&-

case "$status_line" in
  "HTTP/"*" 200"*) exit 0 ;;
  *) echo "${path}: ${status_line:-no response}" >&2; exit 1 ;;
esac
