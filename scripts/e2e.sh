#!/usr/bin/env bash
# Browser end-to-end test of the MapLibre and Leaflet examples through
# tilegate: starts `tilegate demo` on private loopback ports with a
# throw-away store, then drives Debian's Chromium headless (playwright-core)
# through examples/maplibre/e2e/run.mjs, on each page: the map renders tiles
# through the gateway, every tile request carries a token, 3-second tokens
# refresh with no failed tile while panning, and a page without the client
# gets 401s; on each page, a token limited to a region and zoom range
# loads the tiles inside it and gets 204 (drawn empty, no error, no new
# token) outside it, by area and by zoom. Saves screenshots to target/e2e/map.png (MapLibre; docs/demo-map.png
# is a copy) and target/e2e/map-leaflet.png. Installs chromium and the node
# packages when missing (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends chromium >&2
fi
(cd examples/maplibre/e2e && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund >&2; })

bin=${TILEGATE_BIN:-$repo/target/debug/tilegate}
[ -x "$bin" ] || cargo build --locked --bin tilegate >&2
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
sed -e "s#127.0.0.1:8080#127.0.0.1:18280#g" -e "s#127.0.0.1:9090#127.0.0.1:18290#" \
    -e "s#http://127.0.0.1:3000#http://127.0.0.1:18300#" \
    -e "s#sqlite://data/tilegate.db#sqlite://$dir/tilegate.db#" -e "s#\"data/kek\"#\"$dir/kek\"#" \
    config/tilegate.toml > "$dir/tilegate.toml"
RUST_LOG=warn "$bin" demo --demo-config "$dir/tilegate.toml" --upstream 127.0.0.1:18300 --app 127.0.0.1:18310 > "$dir/demo.out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18310/app/config.json && break; sleep 0.2; done
mkdir -p target/e2e
cd examples/maplibre/e2e
TILEGATE_DEMO_URL=http://127.0.0.1:18310 TILEGATE_E2E_SCREENSHOT="$repo/target/e2e/map.png" TILEGATE_E2E_TTL=3 node run.mjs
