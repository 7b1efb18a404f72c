-- wrk script for bench/clicks.py: GET one path, or many in turn, expecting one status
--   wrk ... -s bench/clicks.lua URL -- EXPECT PATH
--   wrk ... -s bench/clicks.lua URL -- EXPECT @FILE      (one path per line, taken in turn)
-- wrk never follows redirects: a 302 is the answer itself.
-- Prints one line "BENCH {json}" at the end: requests, duration, p50/p99 latency and the
-- number of responses whose status was not EXPECT.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

-- Globals of each thread's Lua state (read back through thread:get in done()).
unexpected = 0

local expect, requests, count, next_one

function init(args)
  expect = tonumber(args[1] or "200")
  local target = args[2] or "/"
  local paths = {}
  if target:sub(1, 1) == "@" then
    for line in io.lines(target:sub(2)) do
      if line ~= "" then
        table.insert(paths, line)
      end
    end
  else
    paths = { target }
  end
  requests = {}
  for _, path in ipairs(paths) do
    table.insert(requests, wrk.format("GET", path))
  end
  count = #requests
  -- Threads start at different places in the list.
  next_one = (((thread_no or 1) - 1) * 7919) % count
end

function request()
  next_one = next_one % count + 1
  return requests[next_one]
end

function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("unexpected") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "unexpected": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, bad, e.connect, e.read, e.write, e.timeout
  ))
end
