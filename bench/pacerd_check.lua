-- wrk script for bench/pacerd_bench.sh: POST /v1/check, keep-alive, random keys (out of a
-- million). The requests are formatted once per thread (a pool of 20,000) so wrk, which shares
-- the cores with the server, spends no Lua time per request.
local pool = {}
local size = 20000
local next_index = 0

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  local headers = { ["Content-Type"] = "application/json" }
  for i = 1, size do
    pool[i] = wrk.format("POST", nil, headers,
      '{"policy":"bench","key":"k' .. math.random(1, 1000000) .. '"}')
  end
end

function request()
  next_index = next_index % size + 1
  return pool[next_index]
end
