-- wrk script: every request names its client in X-Forwarded-For, as a proxy in front of
-- pacer-demo would (the demo trusts loopback proxies by default). Each request gets a new
-- address, so each is a new key; with ONE_CLIENT=1 every request names the same address, so
-- all of them (and both server threads) decide on one key. docs/PERFORMANCE.md, sixth pass:
--   wrk -t2 -c256 -d5s -s bench/forwarded_clients.lua http://127.0.0.1:8000/limited
--   ONE_CLIENT=1 wrk -t2 -c256 -d5s -s bench/forwarded_clients.lua http://127.0.0.1:8000/limited
local one_client = os.getenv("ONE_CLIENT") == "1"
-- Each wrk thread starts at its own place in 10.0.0.0/8 (its Lua state's first table address).
local n = tonumber(tostring({}):match("0x(%x+)"), 16) % 4000000
local floor = math.floor

request = function()
  if one_client then
    return wrk.format("GET", nil, {["X-Forwarded-For"] = "198.51.100.7"})
  end
  n = n + 1
  local address = string.format("10.%d.%d.%d", floor(n / 65536) % 256, floor(n / 256) % 256,
                                n % 256)
  return wrk.format("GET", nil, {["X-Forwarded-For"] = address})
end
