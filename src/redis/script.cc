#include "script.h"

#include <openssl/evp.h>

#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/text.h"
#include "pacer/gcra.h"

namespace pacer::redis::internal {
namespace {

// Lua numbers are doubles: microsecond times (~2^51 today), tolerances (at most 2^61 ns, about
// 2^51 us) and everything the client sends stay exact. Redis CPU is the ceiling of every Redis
// deployment, so the script does only what must be atomic, and cheaply (each choice measured
// in instructions per call under callgrind and in INFO commandstats, docs/PERFORMANCE.md):
// - one rate has its own path without tables and answers with one integer;
// - several rates answer with a packed string or the integer 0, not a table (converting a
//   table reply costs Redis more than building it);
// - TATs are stored as binary doubles: struct.pack and struct.unpack cost half of
//   string.format and of tonumber on 16 digits;
// - PX is formatted with '%d': tostring would print 16 digits as 1.7e+15, and number arguments
//   are formatted by Redis with %.17g before 7.2 (slower) and as 1e+08 by 7.2.0-7.2.4 (which
//   PX refuses).
// A TAT more than 2^52 us ahead of now, or one that is not a number, is a fresh key.
constexpr std::string_view kScript = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local key = KEYS[1]
if #ARGV == 2 then
  local v = redis.call('GET', key)
  local off = 0
  if v then
    off = (#v == 8 and struct.unpack('<d', v) or tonumber(v) or now) - now
    if not (off > 0 and off < 4503599627370496) then off = 0 end
  end
  if ARGV[1] == '0' then return off end
  if off > ARGV[2] + 0 then return -1 - off end
  local span = off + ARGV[1]
  local ms = span + 999
  redis.call('SET', key, struct.pack('<d', now + span), 'PX',
    string.format('%d', (ms - ms % 1000) / 1000))
  return off
end
local n = #ARGV / 2
local fmt = string.sub('<dddddddd', 1, n + 1)
local v = redis.call('GET', key)
local t
if v and #v == 8 * n then
  t = {struct.unpack(fmt, v)}
else
  t = {now, now, now, now, now, now, now, now}
  if v then
    local i = 0
    for d in string.gmatch(v, '%d+') do i = i + 1; t[i] = tonumber(d) end
    if i ~= n then t = {now, now, now, now, now, now, now, now} end
  end
end
local admit, idle = true, true
for i = 1, n do
  local off = t[i] - now
  if not (off > 0 and off < 4503599627370496) then off = 0 else idle = false end
  t[i] = off
  if off > ARGV[2 * i] + 0 then admit = false end
end
local offs = 0
if not idle then offs = struct.pack(fmt, unpack(t, 1, n)) end
if ARGV[1] == '0' then return offs end
if not admit then return '-' .. offs end
local expiry = 0
for i = 1, n do
  local span = t[i] + ARGV[2 * i - 1]
  if span > expiry then expiry = span end
  t[i] = now + span
end
local ms = expiry + 999
redis.call('SET', key, struct.pack(fmt, unpack(t, 1, n)), 'PX',
  string.format('%d', (ms - ms % 1000) / 1000))
return offs
)lua";

constexpr std::int64_t kMicro = 1'000;  // ns per us
// Offsets the script can return (it treats anything further ahead as a fresh key).
constexpr std::int64_t kMaxOffset = std::int64_t{1} << 52;

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  return pacer::internal::to_hex(digest, length);
}

template <std::size_t... I>
std::array<Rate, sizeof...(I)> filled(const Rate& rate, std::index_sequence<I...>) {
  return {{((void)I, rate)...}};
}

// The rate with T in whole microseconds, rounded up like the in-process store rounds to
// nanoseconds, and the same permits (the decision's limit) and burst.
Rate in_microseconds(const Rate& rate) {
  const std::int64_t t_us = (rate.emission_interval().count() + kMicro - 1) / kMicro;
  return Rate(rate.permits(), Nanos{t_us * rate.permits()}, rate.burst());
}

}  // namespace

std::string_view gcra_script() { return kScript; }

std::string_view gcra_script_sha() {
  static const std::string sha = sha1_hex(kScript);
  return sha;
}

ScriptCall::ScriptCall(std::span<const Rate> rates, std::int64_t cost, bool read_only)
    : rates_(filled(Rate(1, Nanos{1}), std::make_index_sequence<Policy::kMaxRates>{})),
      size_(rates.size()),
      cost_(cost) {
  if (rates.empty() || rates.size() > Policy::kMaxRates || cost < 0)
    throw std::invalid_argument("ScriptCall: needs 1 to 8 rates and cost >= 0");
  bool fits = true;
  for (std::size_t i = 0; i < size_; ++i) {
    rates_[i] = in_microseconds(rates[i]);
    const std::int64_t t = rates_[i].emission_interval().count();
    const std::int64_t tau = rates_[i].tolerance().count();
    std::int64_t inc = 0;
    if (__builtin_mul_overflow(cost, t, &inc) || inc > tau) {
      fits = false;
      continue;
    }
    arguments_[2 * i] = inc;
    arguments_[2 * i + 1] = tau - inc;
  }
  writes_ = cost > 0 && fits && !read_only;
  // Otherwise the script only reads: inc_1 = 0 says so (and cost 0 made every inc 0 already).
  if (!writes_) arguments_.fill(0);
}

std::optional<Decision> ScriptCall::decode(const Reply& reply) const {
  std::array<std::int64_t, Policy::kMaxRates> tats{};
  bool admitted = true;
  if (size_ == 1) {
    if (reply.type != Reply::Type::kInteger) return std::nullopt;
    const std::int64_t x = reply.integer;
    if (x < -kMaxOffset - 1 || x > kMaxOffset) return std::nullopt;
    admitted = x >= 0;
    tats[0] = admitted ? x : -1 - x;
  } else if (reply.type == Reply::Type::kInteger) {
    if (reply.integer != 0) return std::nullopt;  // 0: every offset is 0
  } else {
    if (reply.type != Reply::Type::kString) return std::nullopt;
    std::string_view packed = reply.str;
    admitted = !packed.starts_with('-');
    if (!admitted) packed.remove_prefix(1);
    if (packed.size() != 8 * size_) return std::nullopt;
    for (std::size_t i = 0; i < size_; ++i) {
      // Little-endian IEEE-754 doubles ('<d'), like every platform Redis runs on here.
      double offset = 0;
      static_assert(sizeof offset == 8 && std::endian::native == std::endian::little);
      std::memcpy(&offset, packed.data() + 8 * i, 8);
      if (!(offset >= 0 && offset <= static_cast<double>(kMaxOffset))) return std::nullopt;
      tats[i] = static_cast<std::int64_t>(offset);
      if (static_cast<double>(tats[i]) != offset) return std::nullopt;
    }
  }

  Decision d;
  gcra_step(microsecond_rates(), {tats.data(), size_}, 0, cost_, d);
  // The script admits every read (peek, exceeds capacity); a write exactly when the step
  // admits. A peek of cost > 0 is then decided by the step alone, as a check would be.
  if (admitted != (writes_ ? d.allowed() : true)) return std::nullopt;
  d.retry_after *= kMicro;
  d.reset_after *= kMicro;
  return d;
}

}  // namespace pacer::redis::internal
