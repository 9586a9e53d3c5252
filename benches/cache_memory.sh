#!/usr/bin/env bash
# RSS of the release gateway after N distinct valid tokens went through its
# verification cache, for each cache bound in BOUNDS (cache.max_entries).
# The tokens are HS256 from an external issuer (hmac_secret_env), so filling
# the cache costs HTTP work, not ES256 verifications; an entry is the same
# size whatever the algorithm.
#   bash benches/cache_memory.sh                       # N=1000000, BOUNDS="100000 1000000"
#   N=200000 BOUNDS=50000 bash benches/cache_memory.sh
# The binary is looked for under $CARGO_TARGET_DIR when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
BOUNDS=${BOUNDS:-100000 1000000}
cargo build --release --locked --bin tilegate >&2
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tilegate
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
export BENCH_HMAC=cache-memory-bench-secret-0123456789abcdef

for bound in $BOUNDS; do
    rm -rf "$dir/s" && mkdir -p "$dir/s"
    cat >"$dir/t.toml" <<CFG
[server]
listen = "127.0.0.1:18780"
access_log = false
watch_config = false
[admin]
listen = "127.0.0.1:18790"
[store]
url = "sqlite://$dir/s/t.db"
kek_file = "$dir/s/kek"
[tokens]
issuer = "http://127.0.0.1:18780"
audience = "tilegate"
[scopes]
"tiles:read" = "Read tiles"
[cache]
max_entries = $bound
[[issuers]]
name = "bench"
issuer = "https://bench.issuer"
audiences = ["bench"]
algorithms = ["HS256"]
hmac_secret_env = "BENCH_HMAC"
scopes = ["tiles:read"]
[[upstreams]]
name = "none"
backends = ["http://127.0.0.1:9"]
[[routes]]
name = "probe"
path = "/probe"
upstream = "none"
scopes = ["tiles:read"]
issuers = ["self", "bench"]
CFG
    RUST_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 1 "$bin" serve --config "$dir/t.toml" 2>"$dir/log" &
    pid=$!
    until curl -sf -o /dev/null http://127.0.0.1:18790/readyz; do sleep 0.05; done
    rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' /proc/$pid/status; }
    echo "bound $bound: RSS at start $(rss)"
    # N distinct tokens, pipelined on 8 keep-alive connections. The route's
    # upstream is down on purpose: a verified token gets 502 (the check
    # passed), a refused one 401; both are counted.
    taskset -c 0 python3 - "$N" <<'PY'
import base64, hashlib, hmac, json, os, socket, sys, time
n = int(sys.argv[1]); secret = os.environ["BENCH_HMAC"].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
def token(i):
    body = b64(json.dumps({"iss": "https://bench.issuer", "aud": "bench", "sub": f"user-{i}",
                           "exp": exp, "scope": "tiles:read", "jti": f"j{i}"}).encode())
    msg = head + b"." + body
    return msg + b"." + b64(hmac.new(secret, msg, hashlib.sha256).digest())
conns = [socket.create_connection(("127.0.0.1", 18780)) for _ in range(8)]
counts = {}; t0 = time.time(); batch = 500; i = 0
while i < n:
    for c in conns:
        k = min(batch, n - i)
        if k <= 0: break
        c.sendall(b"".join(b"GET /probe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token(j) + b"\r\n\r\n"
                           for j in range(i, i + k)))
        i += k; got = 0; buf = b""
        while got < k:
            buf += c.recv(1 << 20)
            # Each response ends with its JSON error body's closing brace and has no body after.
            while True:
                at = buf.find(b"HTTP/1.1 ")
                end = buf.find(b"}", at)
                if at < 0 or end < 0: break
                code = buf[at + 9:at + 12].decode(); counts[code] = counts.get(code, 0) + 1
                buf = buf[end + 1:]; got += 1
print(f"  sent {n} distinct tokens in {time.time() - t0:.0f} s; statuses {dict(sorted(counts.items()))}")
PY
    entries=$(curl -s http://127.0.0.1:18790/metrics | awk '/^tilegate_auth_cache_entries/ {print $2}')
    echo "bound $bound: after $N tokens RSS $(rss), cache entries $entries"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
