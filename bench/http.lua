-- wrk script for bench/http.sh: prints one machine-readable summary line,
-- and with WRK_PIPELINE=N (N > 1) sends requests N at a time on each
-- connection (HTTP/1.1 pipelining; wrk then counts every response).
--
--   wrk -t1 -c100 -d10s -s bench/http.lua http://127.0.0.1:8888/
--   WRK_PIPELINE=16 wrk -t1 -c100 -d10s -s bench/http.lua http://127.0.0.1:8888/

local depth = tonumber(os.getenv("WRK_PIPELINE") or "1") or 1

if depth > 1 then
   -- Built in init, after wrk has set the Host header; a `request` function
   -- makes wrk send what it returns as one write, and count the requests in it.
   init = function(args)
      local r = {}
      for i = 1, depth do
         r[i] = wrk.format()
      end
      batch = table.concat(r)
   end
   request = function()
      return batch
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
      "connect_errors=%d read_errors=%d write_errors=%d status_errors=%d timeouts=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
