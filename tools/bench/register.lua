-- wrk script: POST push/register with a fresh APNs token per request (one server, many users).
-- Usage: wrk -s register.lua -t1 -c64 -d10s http://127.0.0.1:PORT -- <org_id> <org_key>
local counter = 0
local thread_id = 0
local auth

function init(args)
  local id, key = args[1], args[2]
  auth = "Basic " .. base64(id .. ":" .. key)
  thread_id = math.random(1, 1000000)
end

function base64(data)
  local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d?%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

function request()
  counter = counter + 1
  local token = string.format("%08x%08x%048x", thread_id, counter, 0)
  local body = "user_id=" .. (counter % 100000) .. "&token=" .. token ..
               "&token_kind=1&ios_app_id=org.aloha.bench"
  return wrk.format("POST", "/api/v1/remotes/push/register",
    { ["Authorization"] = auth, ["Content-Type"] = "application/x-www-form-urlencoded",
      ["User-Agent"] = "AlohaServer/bench" }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors(non-2xx)=%d rps=%.0f p50=%.2fms p99=%.2fms\n",
    summary.requests, summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
