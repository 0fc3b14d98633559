-- wrk script: POST one application per request, spread over 100 users.
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"user_name": "bench-%d", "description": "benchmark %d"}', counter % 100, counter)
  return wrk.format("POST", "/applications", {["Content-Type"] = "application/json"}, body)
end
