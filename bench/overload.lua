-- wrk script for the overload bench: POST an application and GET page 1 in turn; count the
-- answers by status (done() prints them: wrk itself only counts "non-2xx").
local threads = {}
local tag = os.getenv("OVERLOAD_TAG") or "overload"

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  created, listed, shed, other = 0, 0, 0, 0
end

request = function()
  counter = counter + 1
  if counter % 2 == 0 then
    return wrk.format("GET", "/applications?size=10")
  end
  local body = string.format('{"user_name": "%s-%d", "description": "%s %d-%d"}',
    tag, counter % 100, tag, id, counter)
  return wrk.format("POST", "/applications", {["Content-Type"] = "application/json"}, body)
end

response = function(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then listed = listed + 1
  elseif status == 503 then shed = shed + 1
  else other = other + 1 end
end

done = function(summary, latency, requests)
  local totals = {created = 0, listed = 0, shed = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  io.write(string.format("answers created=%d listed=%d shed=%d other=%d max_ms=%.1f\n",
    totals.created, totals.listed, totals.shed, totals.other, latency.max / 1000))
end
