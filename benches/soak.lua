-- Mixed soak load for wrk (one thread): 80 % tiles with a valid token,
-- 10 % API-key exchanges, 10 % tiles with a bad token (expected 401).
local tokens, n, api_key = {}, 0, os.getenv("SOAK_API_KEY")
for line in io.lines(os.getenv("SOAK_TOKENS")) do tokens[#tokens + 1] = line end
local counts = {}

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

response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

done = function(summary, latency, requests)
  local parts = {}
  for s, c in pairs(counts) do parts[#parts + 1] = s .. "=" .. c end
  table.sort(parts)
  io.write(string.format("requests: %d  statuses: %s  socket errors: %d  p99: %.2f ms\n",
    summary.requests, table.concat(parts, " "),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99) / 1000))
end
