-- Mixed soak load for wrk (one thread): 80 % tiles with a valid token,
-- 10 % API-key exchanges, 10 % tiles with a bad token (expected 401).
local tokens, n, api_key = {}, 0, os.getenv("SOAK_API_KEY")
for line in io.lines(os.getenv("SOAK_TOKENS")) do tokens[#tokens + 1] = line end

request = function()
  n = n + 1
  local k = n % 10
  if k == 0 then
    return wrk.format("POST", "/v1/auth/token",
      { ["Authorization"] = "Bearer " .. api_key, ["Content-Type"] = "application/json" },
      '{"ttl":600,"scope":"tiles:read"}')
  elseif k == 5 then
    return wrk.format("GET", "/tiles/3/" .. (n % 8) .. "/" .. (n % 7) .. ".pbf",
      { ["Authorization"] = "Bearer not.a.valid-token" })
  else
    local t = tokens[(n % #tokens) + 1]
    return wrk.format("GET", "/tiles/" .. (n % 15) .. "/" .. (n % 100) .. "/" .. (n % 97) .. ".pbf",
      { ["Authorization"] = "Bearer " .. t })
  end
end

-- done() runs in its own Lua state (per-thread counters are not visible
-- there), so it reports wrk's own count of non-2xx/3xx responses against
-- the expected bad-token share: every tenth request, rounded down.
done = function(summary, latency, requests)
  local expected = math.floor(summary.requests / 10)
  io.write(string.format("requests: %d  non-2xx: %d (expected 401s: about %d)  socket errors: %d  p99: %.2f ms\n",
    summary.requests, summary.errors.status, expected,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99) / 1000))
end
