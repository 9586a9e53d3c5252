-- wrk script: POST /v1/auth/token with a cached API key, keep-alive.
-- The key comes from the environment (TILEGATE_BENCH_API_KEY).
wrk.method = "POST"
wrk.body = '{"ttl":600,"scope":"tiles:read"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TILEGATE_BENCH_API_KEY")

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("exchanges/s: %.0f  p50: %.2f ms  p99: %.2f ms  errors: %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
