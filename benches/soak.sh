#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 600) of mixed load (tiles with valid tokens,
# API-key exchanges, bad tokens) against the release binary on loopback,
# in front of `tilegate sample-upstream`. Reports the status counts and the
# gateway's RSS and open file descriptors at the start, every minute and at
# the end. Expected non-2xx: only the 401s of the bad-token share.
#   bash benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-600}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --locked --bin tilegate >&2
bin=$PWD/target/release/tilegate
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
sed -e 's#127.0.0.1:8080#127.0.0.1:18680#; s#127.0.0.1:9090#127.0.0.1:18690#; s#http://127.0.0.1:3000#http://127.0.0.1:18700#' \
    -e "s#sqlite://data/tilegate.db#sqlite://$dir/t.db#; s#\"data/kek\"#\"$dir/kek\"#" \
    -e 's#^\[server\]#[server]\naccess_log = false#' config/tilegate.toml > "$dir/t.toml"
j() { python3 -c "import sys,json;print(json.load(sys.stdin)[\"$1\"])"; }
org=$("$bin" --config "$dir/t.toml" --json org create soak | j id)
sa=$("$bin" --config "$dir/t.toml" --json service-account create --org "$org" --name soak | j id)
export SOAK_API_KEY=$("$bin" --config "$dir/t.toml" --json api-key create --service-account "$sa" --scope tiles:read | j api_key)
RUST_LOG=warn "$bin" sample-upstream --listen 127.0.0.1:18700 2>/dev/null & pids+=($!)
RUST_LOG=warn "$bin" serve --config "$dir/t.toml" 2>"$dir/gw.log" & gw=$!; pids+=($gw)
until curl -sf -o /dev/null http://127.0.0.1:18690/readyz; do sleep 0.05; done
export SOAK_TOKENS=$dir/tokens
for _ in $(seq 50); do
  curl -s -X POST -H "Authorization: Bearer $SOAK_API_KEY" http://127.0.0.1:18680/v1/auth/token | j access_token
done > "$SOAK_TOKENS"
sample() { echo "$1: rss $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$gw/status), fds $(ls /proc/$gw/fd | wc -l)"; }
echo "soak: ${SECS}s, $CONNS connections, tilegate $(git rev-parse --short HEAD)"
sample "t=0"
wrk -t1 -c"$CONNS" -d"${SECS}s" -s benches/soak.lua http://127.0.0.1:18680 > "$dir/wrk.out" & w=$!; pids+=($w)
for i in $(seq 60 60 $((SECS - 1))); do sleep 60; sample "t=${i}s"; done
wait $w
sleep 1
sample "end"
tail -n 1 "$dir/wrk.out"
echo "gateway log lines at WARN or above: $(grep -c . "$dir/gw.log" || true)"
