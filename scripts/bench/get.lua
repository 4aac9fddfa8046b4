dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
function request()
  return wrk.format("GET", "/api/v1/sessions/" .. user_id())
end
