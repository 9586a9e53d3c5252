#!/usr/bin/env bash
# RSS of the release gateway with N idle keep-alive connections (each has
# made one request), on a throw-away SQLite store. Also start-up to ready.
#   bash benches/memory.sh            # N = 1000 and 10000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin tilegate >&2
bin=$PWD/target/release/tilegate
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
sed -e 's#127.0.0.1:8080#127.0.0.1:18580#; s#127.0.0.1:9090#127.0.0.1:18590#' \
    -e "s#sqlite://data/tilegate.db#sqlite://$dir/t.db#; s#\"data/kek\"#\"$dir/kek\"#" config/tilegate.toml > "$dir/t.toml"
"$bin" --config "$dir/t.toml" keys generate >/dev/null
s=$(date +%s%N)
RUST_LOG=warn "$bin" serve --config "$dir/t.toml" 2>/dev/null &
pid=$!
until curl -sf -o /dev/null http://127.0.0.1:18590/readyz; do sleep 0.005; done
echo "start-up to ready (existing store and keys): $(( ($(date +%s%N) - s) / 1000000 )) ms"
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$pid/status; }
echo "RSS idle, no connections: $(rss)"
for n in ${COUNTS:-1000 10000}; do
python3 - "$n" <<'PY' &
import socket, sys, time
n = int(sys.argv[1]); socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 18580))
    s.sendall(b"GET /no-such-route HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
for s in socks:
    s.recv(4096)
open("/tmp/tilegate-mem-ready", "w").close()
time.sleep(5)
PY
  py=$!
  rm -f /tmp/tilegate-mem-ready
  until [ -f /tmp/tilegate-mem-ready ]; do sleep 0.1; done
  sleep 1
  echo "RSS with $n idle keep-alive connections: $(rss)"
  wait $py
done
