#include "script.h"

#include <openssl/evp.h>

#include <string>

#include "pacer/detail/text.h"

namespace pacer::redis {
namespace {

// Lua numbers are doubles: microsecond times (~2^51 today) and tolerances (capped at 2^61 ns,
// about 2^51 us) stay exact. Division results are corrected after math.floor so a rounding
// of the quotient can never report one more remaining than the integer formula.
constexpr std::string_view kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tats = {}
local stored = redis.call('GET', KEYS[1])
if stored then
  for v in string.gmatch(stored, '%d+') do tats[#tats + 1] = tonumber(v) end
end
if #tats ~= n then
  tats = {}
  for i = 1, n do tats[i] = now end
end

local function left(i, tat)
  local T = tonumber(ARGV[1 + 2 * i])
  local room = tonumber(ARGV[2 + 2 * i]) - (tat - now)
  if room <= 0 then return 0 end
  local r = math.floor(room / T)
  if r * T > room then r = r - 1 end
  return r
end

local exceeding, longest, longest_i = nil, 0, nil
local new = {}
for i = 1, n do
  local T = tonumber(ARGV[1 + 2 * i])
  local tau = tonumber(ARGV[2 + 2 * i])
  local inc = cost * T
  if inc > tau then
    if not exceeding then exceeding = i end
  else
    new[i] = math.max(tats[i], now) + inc
    local wait = new[i] - tau - now
    if cost > 0 and wait > longest then longest, longest_i = wait, i end
  end
end

if exceeding or longest_i then
  local decider = exceeding or longest_i
  local remaining = nil
  for i = 1, n do
    local r = left(i, math.max(tats[i], now))
    if remaining == nil or r < remaining then remaining = r end
  end
  local reset = math.max(tats[decider] - now, 0)
  if exceeding then return {-1, remaining, 0, reset, decider - 1} end
  return {0, remaining, longest, reset, decider - 1}
end

local remaining, decider, decider_reset, expiry = nil, 1, -1, now
for i = 1, n do
  local r = left(i, new[i])
  local reset = new[i] - now
  if remaining == nil or r < remaining or (r == remaining and reset > decider_reset) then
    remaining, decider, decider_reset = r, i, reset
  end
  if new[i] > expiry then expiry = new[i] end
end
if cost > 0 then
  local parts = {}
  for i = 1, n do parts[i] = string.format('%d', new[i]) end
  local px = math.max(math.ceil((expiry - now) / 1000), 1)
  redis.call('SET', KEYS[1], table.concat(parts, ' '), 'PX', string.format('%d', px))
end
return {1, remaining, 0, decider_reset, decider - 1}
)lua";

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  return detail::to_hex(digest, length);
}

}  // namespace

std::string_view gcra_script() { return kScript; }

std::string_view gcra_script_sha() {
  static const std::string sha = sha1_hex(kScript);
  return sha;
}

}  // namespace pacer::redis
