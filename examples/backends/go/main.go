// App backend for a tilegate map page (Go standard library only).
//
// The browser asks this server for a short-lived token (GET or POST /token);
// the server trades its API key for one at tilegate's POST /v1/auth/token and
// answers {"access_token", "token_type", "expires_in"}. The API key stays here:
// it is read from the environment, never logged, never sent to the browser.
//
//	TILEGATE_URL=http://127.0.0.1:8080 TILEGATE_API_KEY=tgk_... go run .
//
// Optional: PORT (8001; 0 picks a free one), TILEGATE_SCOPE (tiles:read),
// TILEGATE_TTL (600 seconds).
//
// A POST may carry a JSON body {"tiles": {"minzoom", "maxzoom", "bounds",
// "layers"}} asking for a narrowed tile grant; it is passed on to tilegate,
// which refuses anything wider than the API key's own grant (the browser then
// gets 403 tiles_exceeded, or 400 invalid_tiles for a grant that is not one).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

var (
	gateway = strings.TrimRight(env("TILEGATE_URL", "http://127.0.0.1:8080"), "/")
	apiKey  = os.Getenv("TILEGATE_API_KEY")
	scope   = env("TILEGATE_SCOPE", "tiles:read")
	client  = &http.Client{Timeout: 10 * time.Second}
)

type token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// grantErrors are tilegate's refusals of the asked grant that are the browser's to fix.
var grantErrors = map[string]bool{"400 invalid_tiles": true, "403 tiles_exceeded": true}

// exchange returns the status and body for the browser: a token, or why there is none.
// tiles, if not nil, is the narrowed grant the browser asked for (a JSON object).
func exchange(ttl int, tiles json.RawMessage) (int, any) {
	failed := func(why string) (int, any) {
		return http.StatusBadGateway, map[string]string{"error": "token_unavailable", "error_description": why}
	}
	ask := map[string]any{"ttl": ttl, "scope": scope}
	if tiles != nil {
		ask["tiles"] = tiles // narrowing only: tilegate enforces the key's ceiling
	}
	body, _ := json.Marshal(ask)
	req, err := http.NewRequest(http.MethodPost, gateway+"/v1/auth/token", bytes.NewReader(body))
	if err != nil {
		return failed("bad TILEGATE_URL")
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return failed("tilegate unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // tilegate said no: its status, not its body
		var refusal struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 65536)).Decode(&refusal)
		if grantErrors[fmt.Sprintf("%d %s", resp.StatusCode, refusal.Error)] {
			return resp.StatusCode, map[string]string{
				"error": refusal.Error, "error_description": fmt.Sprintf("tilegate answered %d", resp.StatusCode),
			}
		}
		return failed(fmt.Sprintf("tilegate answered %d", resp.StatusCode))
	}
	var t token
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return failed("tilegate answered no token")
	}
	return http.StatusOK, token{AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn}
}

// askedTiles reads the optional `tiles` object of a POST body; ok is false for a malformed body.
func askedTiles(r *http.Request) (json.RawMessage, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 65536))
	if err != nil {
		return nil, false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, true
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return nil, false
	}
	tiles := bytes.TrimSpace(body["tiles"])
	if len(tiles) == 0 || string(tiles) == "null" {
		return nil, true
	}
	if tiles[0] != '{' {
		return nil, false
	}
	return json.RawMessage(tiles), true
}

func main() {
	if apiKey == "" {
		log.Fatal("TILEGATE_API_KEY is not set")
	}
	ttl, err := strconv.Atoi(env("TILEGATE_TTL", "600"))
	if err != nil {
		log.Fatal("TILEGATE_TTL is not a number")
	}
	http.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// A real app checks its user's session here before handing out a token.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		tiles, ok := askedTiles(r)
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"error": "invalid_request", "error_description": `the body must be JSON: {"tiles": {...}}`,
			})
			return
		}
		status, body := exchange(ttl, tiles)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	listener, err := net.Listen("tcp", "127.0.0.1:"+env("PORT", "8001"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s\n", listener.Addr())
	log.Fatal(http.Serve(listener, nil))
}
