-- wrk script for make soak: POST one application per request, spread over 100 users, each
-- connection pausing SOAK_DELAY_MS between requests (wrk has no fixed-rate mode).
counter = 0
local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
request = function()
  counter = counter + 1
  local body = string.format('{"user_name": "soak-%d", "description": "soak %d"}', counter % 100, counter)
  return wrk.format("POST", "/applications", {["Content-Type"] = "application/json"}, body)
end
delay = function()
  return pause
end
