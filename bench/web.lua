-- wrk script for bench/web.py: one kind of request per run, chosen by the script arguments
--   wrk ... -s bench/web.lua URL -- MODE PATH NONCE LIST
-- MODE: "subscribe" (POST the signup form, a distinct address per request),
--       "one-click" (POST List-Unsubscribe=One-Click, RFC 8058), or "get".
-- Prints one line "BENCH {json}" at the end: requests, duration, p50/p99 latency and the
-- number of responses that were not 2xx (wrk itself only counts >= 400 as errors).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

-- Globals of each thread's Lua state (read back through thread:get in done()).
non_2xx = 0
counter = 0

local mode, path, nonce, list_slug, fixed
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function init(args)
  mode = args[1] or "get"
  path = args[2] or "/"
  nonce = args[3] or "run"
  list_slug = args[4] or ""
  if mode == "one-click" then
    fixed = wrk.format("POST", path, form, "List-Unsubscribe=One-Click")
  elseif mode == "get" then
    fixed = wrk.format("GET", path)
  end
end

function request()
  if mode == "subscribe" then
    counter = counter + 1
    local body = string.format(
      "email=bench-%s-%d-%d%%40example.com&lists=%s&frequency=daily",
      nonce, thread_no, counter, list_slug
    )
    return wrk.format("POST", path, form, body)
  end
  return fixed
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non_2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, bad, e.connect, e.read, e.write, e.timeout
  ))
end
