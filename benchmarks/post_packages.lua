-- wrk script: POST each signed package of a folder once (0.xml … N-1.xml), spread over
-- wrk's threads (thread k posts k, k+T, k+2T …); once a thread has posted its share it
-- asks GET /health, which commits nothing, once a second (not as fast as it can: the
-- node's last packages are still being handed over, on the same cores).
-- Arguments: folder count token threads [path].
-- With token "-" each package's headers are read from i.hdr ("Name: value" lines: the
-- signed VXP headers of a sendEdoc), and the body is posted to path as it is.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function read(name)
  local file = assert(io.open(name, "rb"))
  local data = file:read("*a")
  file:close()
  return data
end

function init(args)
  local folder, count, nthreads = args[1], tonumber(args[2]), tonumber(args[4])
  path = args[5] or "/v1/packages"
  local token = args[3]
  bodies, heads = {}, {}
  for i = id, count - 1, nthreads do
    bodies[#bodies + 1] = read(folder .. "/" .. i .. ".xml")
    local headers = {}
    if token == "-" then
      for line in read(folder .. "/" .. i .. ".hdr"):gmatch("[^\n]+") do
        local name, value = line:match("^([^:]+): (.*)$")
        headers[name] = value
      end
    else
      headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/xml"}
    end
    heads[#heads + 1] = headers
  end
  -- wrk calls the first thread's request() once before the run, to check the request it
  -- builds: that call gets a copy of the first package
  if id == 0 and #bodies > 0 then
    table.insert(bodies, 1, bodies[1])
    table.insert(heads, 1, heads[1])
  end
  posted = 0
end

function delay()
  if posted >= #bodies then
    return 1000
  end
  return 0
end

function request()
  posted = posted + 1
  if posted > #bodies then
    return wrk.format("GET", "/health")
  end
  return wrk.format("POST", path, heads[posted], bodies[posted])
end

function response(status, headers, body)
  if posted <= #bodies and (status ~= 202 and status ~= 200 or body:find('"FAIL"')) then
    failed = (failed or 0) + 1
    if failed <= 3 then io.stderr:write("POST answered " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + (thread:get("failed") or 0) end
  io.write("failed " .. total .. "\n")
end
