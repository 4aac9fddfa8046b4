dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
function request()
  return wrk.format("GET", "/api/v1/users/" .. user_id() .. "/session")
end
