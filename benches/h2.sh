#!/usr/bin/env bash
# HTTP/2 over TLS, tilegate vs nginx's h2 proxy, in one run.
# One nginx backend (HTTP/1.1, keep-alive) answers /small (200 bytes) and
# /tile (20 KiB); each proxy terminates TLS with the same self-signed
# P-256 certificate, speaks h2 (ALPN) and proxies to the backend over a
# keep-alive pool. nginx checks nothing; tilegate checks an ES256 token on
# every request (its own key, cache hit). Proxy and backend share core 1
# (one worker each), h2load runs on core 0.
#   bash benches/h2.sh        # ROUNDS=3 N=200000 CLIENTS=64 STREAMS=10
#   TG_WORKERS=1 bash benches/h2.sh   # tilegate as per-core workers ([server] workers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-200000}
CLIENTS=${CLIENTS:-64}
STREAMS=${STREAMS:-10}
case ${TG_WORKERS:-shared} in
    shared | per-core) workers="\"${TG_WORKERS:-shared}\"" ;;
    *[!0-9]* | "") echo "TG_WORKERS: \"shared\", \"per-core\" or a number" >&2; exit 2 ;;
    *) workers=$TG_WORKERS ;;
esac
cargo build --release --locked --bin tilegate >&2
bin=$PWD/target/release/tilegate
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$dir/backend/nginx.pid" ] && kill "$(cat "$dir/backend/nginx.pid")" 2>/dev/null || true
    [ -f "$dir/proxy/nginx.pid" ] && kill "$(cat "$dir/proxy/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/backend" "$dir/proxy" "$dir/tg"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
head -c 20480 /dev/urandom >"$dir/backend/tile"
chmod 755 "$dir" "$dir/backend" && chmod 644 "$dir/backend/tile" # nginx workers run as www-data

nginx_conf() { # $1 dir, $2 server block
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
    upstream backend { server 127.0.0.1:18811; keepalive 128; }
    $2
}
CONF
}
nginx_conf "$dir/backend" "server { listen 127.0.0.1:18811; keepalive_requests 1000000;
        location = /small { default_type application/octet-stream; return 200 '$(head -c 200 /dev/zero | tr '\0' x)'; }
        location = /tile { alias $dir/backend/tile; } }"
nginx_conf "$dir/proxy" "server { listen 127.0.0.1:18812 ssl http2; keepalive_requests 1000000;
        ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
taskset -c 1 nginx -c "$dir/backend/nginx.conf"
taskset -c 1 nginx -c "$dir/proxy/nginx.conf"

cat >"$dir/tg/t.toml" <<CFG
[server]
listen = "127.0.0.1:18813"
tls_cert = "$dir/cert.pem"
tls_key = "$dir/key.pem"
access_log = false
watch_config = false
workers = $workers
[admin]
listen = "127.0.0.1:18814"
[store]
url = "sqlite://$dir/tg/t.db"
kek_file = "$dir/tg/kek"
[tokens]
issuer = "https://127.0.0.1:18813"
audience = "tilegate"
[scopes]
"tiles:read" = "Read tiles"
[[upstreams]]
name = "backend"
backends = ["http://127.0.0.1:18811"]
pool_max_idle = 1024
[[routes]]
path = "/small"
methods = ["GET"]
upstream = "backend"
scopes = ["tiles:read"]
[[routes]]
path = "/tile"
methods = ["GET"]
upstream = "backend"
scopes = ["tiles:read"]
CFG
RUST_LOG=warn "$bin" --config "$dir/tg/t.toml" keys generate >/dev/null
token=$(RUST_LOG=warn "$bin" --config "$dir/tg/t.toml" token mint --scope tiles:read --ttl 2h)
RUST_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 1 "$bin" serve --config "$dir/tg/t.toml" 2>"$dir/tg/log" &
pids+=($!)
tg=$!
until curl -sf -o /dev/null http://127.0.0.1:18814/readyz; do sleep 0.05; done

# Correctness before load: both proxies serve both paths over h2; tilegate
# refuses a request without the token.
for port in 18812 18813; do
    for path in small tile; do
        v=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code} %{size_download}' \
            -H "Authorization: Bearer $token" "https://127.0.0.1:$port/$path")
        echo "check :$port /$path → HTTP/$v"
    done
done
echo "check tilegate without a token → $(curl -sk --http2 -o /dev/null -w '%{http_code}' https://127.0.0.1:18813/small)"

cpu_of() { # total user+sys clock ticks of the given pids
    local t=0
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
nginx_pids() { pgrep -g "$(ps -o pgid= "$(cat "$1/nginx.pid")" | tr -d ' ')" ; }
backend=$(nginx_pids "$dir/backend" | tr '\n' ' ')
proxy=$(nginx_pids "$dir/proxy" | tr '\n' ' ')
hz=$(getconf CLK_TCK)

printf '| round | path | proxy | req/s | proxy+backend CPU µs/req | request time min | max | mean | sd |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq "$ROUNDS"); do
    for path in small tile; do
        for name in nginx tilegate; do
            if [ $name = nginx ]; then port=18812; procs="$proxy"; else port=18813; procs="$tg"; fi
            before=$(cpu_of $backend $procs)
            out=$(taskset -c 0 h2load -n "$N" -c "$CLIENTS" -m "$STREAMS" --warm-up-time=1 \
                -H "Authorization: Bearer $token" "https://127.0.0.1:$port/$path" 2>&1)
            after=$(cpu_of $backend $procs)
            reqs=$(echo "$out" | awk '/^finished in/ {gsub(/,/, "", $4); print $4}')
            ok=$(echo "$out" | awk '/^status codes:/ {gsub(/,/, "", $3); print $3}')
            [ "$ok" = "$N" ] || { echo "$name /$path: only $ok of $N were 2xx"; echo "$out" | tail -20; exit 1; }
            lat=$(echo "$out" | awk '/^time for request:/ {print $4, $5, $6, $7}')
            us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
            # h2load reports request time as min, max, mean and sd (no percentiles).
            echo "| $round | /$path | $name | $reqs | $us | ${lat// / | } |"
        done
    done
done
