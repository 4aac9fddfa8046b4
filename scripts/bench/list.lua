dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
-- A page of 100 starting at a random tenant (keyset cursor).
function request()
  return wrk.format("GET", "/api/v1/sessions?limit=100&cursor=" .. user_id())
end
