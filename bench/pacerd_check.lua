-- wrk script for bench/pacerd_bench.sh: POST /v1/check with a random key per request
-- (one million keys), keep-alive.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
request = function()
  return wrk.format(nil, nil, nil,
    '{"policy":"bench","key":"k' .. math.random(1, 1000000) .. '"}')
end
