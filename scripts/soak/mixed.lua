-- Mixed load for scripts/soak.sh: 80% credentials GET, 15% upsert, 5% list,
-- over USERS seeded sessions (bench0000000 ...). Counts statuses per thread.
local token = os.getenv("SOAK_TOKEN")
local users = tonumber(os.getenv("SOAK_USERS") or "1000")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  s2xx, s4xx, s5xx, other = 0, 0, 0, 0
end

local auth = { ["Authorization"] = "Bearer " .. token }
local json_auth = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }

function request()
  local u = string.format("bench%07d", math.random(0, users - 1))
  local r = math.random()
  if r < 0.80 then
    return wrk.format("GET", "/api/v1/users/" .. u .. "/session", auth)
  elseif r < 0.95 then
    local body = string.format(
      '{"user_id":"%s","api_id":12345,"api_hash":"%032x","phone":"+1555%07d"}',
      u, math.random(0, 2147483647), math.random(0, 9999999))
    return wrk.format("POST", "/api/v1/sessions", json_auth, body)
  else
    return wrk.format("GET", "/api/v1/sessions?limit=100", auth)
  end
end

function response(status, headers, body)
  if status >= 500 then s5xx = s5xx + 1
  elseif status >= 400 then s4xx = s4xx + 1
  elseif status >= 200 and status < 300 then s2xx = s2xx + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s2xx"); b = b + t:get("s4xx"); c = c + t:get("s5xx"); d = d + t:get("other")
  end
  io.write(string.format("STATUS 2xx=%d 4xx=%d 5xx=%d other=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
    a, b, c, d, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("LATENCY p50_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d rps=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.requests / (summary.duration / 1000000)))
end
