-- wrk script for the benchmark: the request comes from the environment, the summary is one JSON
-- line on stdout, prefixed so that bench/run.mjs can find it among wrk's own output.
--   BENCH_METHOD (GET), BENCH_BODY (none), BENCH_CONTENT_TYPE (none)
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local contentType = os.getenv("BENCH_CONTENT_TYPE")

wrk.method = method
if body ~= nil and body ~= "" then
  wrk.body = body
end
if contentType ~= nil and contentType ~= "" then
  wrk.headers["Content-Type"] = contentType
end

-- No response() callback: it would make wrk parse every answer in Lua. wrk counts answers with
-- a status above 399 itself (summary.errors.status).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
