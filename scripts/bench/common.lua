-- Shared by the wrk scripts of scripts/bench.sh. Environment:
--   BENCH_TOKEN  the bearer token;  BENCH_TENANTS  how many seeded user_ids.
local token = os.getenv("BENCH_TOKEN")
tenants = tonumber(os.getenv("BENCH_TENANTS") or "10000")
wrk.headers["Authorization"] = "Bearer " .. token

function user_id()
  return string.format("bench%07d", math.random(0, tenants - 1))
end

local threads = {}
function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

-- One line the bench script parses: requests/s, p50 and p99 in ms, errors
-- (non-2xx/3xx statuses plus socket errors), total requests.
function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors, summary.requests))
end
