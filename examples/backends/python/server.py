#!/usr/bin/env python3
"""App backend for a tilegate map page (Python standard library only).

The browser asks this server for a short-lived token (GET or POST /token);
the server trades its API key for one at tilegate's POST /v1/auth/token and
answers {"access_token", "token_type", "expires_in"}. The API key stays here:
it is read from the environment, never logged, never sent to the browser.

    TILEGATE_URL=http://127.0.0.1:8080 TILEGATE_API_KEY=tgk_... python3 server.py

Optional: PORT (8001; 0 picks a free one), TILEGATE_SCOPE (tiles:read),
TILEGATE_TTL (600 seconds).

A POST may carry a JSON body {"tiles": {"minzoom", "maxzoom", "bounds",
"layers"}} asking for a narrowed tile grant; it is passed on to tilegate,
which refuses anything wider than the API key's own grant (the browser then
gets 403 tiles_exceeded, or 400 invalid_tiles for a grant that is not one).
"""
import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GATEWAY = os.environ.get("TILEGATE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ["TILEGATE_API_KEY"]
SCOPE = os.environ.get("TILEGATE_SCOPE", "tiles:read")
TTL = int(os.environ.get("TILEGATE_TTL", "600"))


# tilegate's refusals of the asked grant that are the browser's to fix.
GRANT_ERRORS = {(400, "invalid_tiles"), (403, "tiles_exceeded")}


def exchange(tiles=None):
    """(status, body) for the browser: a token, or why there is none."""
    ask = {"ttl": TTL, "scope": SCOPE}
    if tiles is not None:
        ask["tiles"] = tiles  # narrowing only: tilegate enforces the key's ceiling
    request = urllib.request.Request(
        f"{GATEWAY}/v1/auth/token",
        method="POST",
        data=json.dumps(ask).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            token = json.load(answer)
        return 200, {
            "access_token": token["access_token"],
            "token_type": "Bearer",
            "expires_in": token["expires_in"],
        }
    except urllib.error.HTTPError as e:  # tilegate said no: its status, not its body
        try:
            code = json.load(e).get("error")
        except (OSError, ValueError, AttributeError):
            code = None
        if (e.code, code) in GRANT_ERRORS:
            return e.code, {"error": code, "error_description": f"tilegate answered {e.code}"}
        return 502, {"error": "token_unavailable", "error_description": f"tilegate answered {e.code}"}
    except (OSError, ValueError, KeyError):
        return 502, {"error": "token_unavailable", "error_description": "tilegate unreachable"}


def asked_tiles(raw):
    """The `tiles` object of a POST body, None without one; ValueError if malformed."""
    if not raw.strip():
        return None
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    tiles = body.get("tiles")
    if tiles is not None and not isinstance(tiles, dict):
        raise ValueError("tiles is not an object")
    return tiles


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/token":
            self.send_error(404)
            return
        # A real app checks its user's session here before handing out a token.
        try:
            length = int(self.headers.get("Content-Length") or 0)
            tiles = asked_tiles(self.rfile.read(min(length, 65536)).decode()) if length else None
        except (ValueError, UnicodeDecodeError):
            status, body = 400, {"error": "invalid_request", "error_description": "the body must be JSON: {\"tiles\": {...}}"}
        else:
            status, body = exchange(tiles)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8001"))), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
