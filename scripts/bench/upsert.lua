dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.headers["Content-Type"] = "application/json"
-- A ~350-byte session blob, base64 (468 characters).
local blob = string.rep("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn", 11)
function request()
  local uid = user_id()
  local body = string.format(
    '{"user_id":"%s","api_id":%d,"api_hash":"%032x","phone":"+1555%07d","session_data":"%s","is_authorized":true}',
    uid, math.random(1000, 99999), math.random(0, 2^31), math.random(0, 9999999), blob)
  return wrk.format("POST", "/api/v1/sessions", nil, body)
end
