-- wrk script: mute/unmute commands over many joined sessions, round robin. Each session
-- alternates unmute, mute, unmute… (it joined muted); with enough sessions the node has
-- confirmed the previous command before the session comes round again, so every answer
-- should be 202. Sessions are read from the file named by SESSIONS (one id per line).
local sessions = {}
for line in io.lines(os.getenv("SESSIONS") or "/tmp/switchyard-sessions.txt") do
  sessions[#sessions + 1] = line
end
local n = 0
wrk.method = "POST"
wrk.headers["X-App-ID"] = os.getenv("APP") or "lab-app"
wrk.headers["X-API-Key"] = os.getenv("KEY") or "lab-key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "{}"

request = function()
  local i = n % #sessions + 1
  local verb = (math.floor(n / #sessions) % 2 == 0) and "unmute" or "mute"
  n = n + 1
  return wrk.format(nil, "/api/v1/sessions/" .. sessions[i] .. "/commands/conference/" .. verb)
end

local statuses = {}
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
