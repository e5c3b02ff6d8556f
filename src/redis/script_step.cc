#include "script_step.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pacer::redis::internal {
namespace {

// The script treats an offset at or beyond 2^52 us (142 years) as a fresh key.
constexpr double kMaxOffset = 4503599627370496.0;
constexpr std::size_t kMaxRates = 8;

static_assert(std::endian::native == std::endian::little && sizeof(double) == 8,
              "TATs are stored as little-endian doubles (struct.pack('<d'))");

double unpack(const char* bytes) {
  double value = 0;
  std::memcpy(&value, bytes, 8);
  return value;
}

// Appends `value` as 8 little-endian bytes at out[size] (the buffers hold 8 rates and a '-').
template <std::size_t N>
void pack(std::array<char, N>& out, std::size_t& size, double value) {
  std::memcpy(out.data() + size, &value, 8);
  size += 8;
}

// Lua 5.1's tonumber() of a string: strtod (hexadecimal through strtoul), spaces around
// allowed, nothing else after; false for what tonumber() answers nil to. Like Lua it reads the
// text as a C string: an embedded NUL ends it.
bool lua_tonumber(std::string_view text, double& out) {
  const std::string copy(text);
  const char* begin = copy.c_str();
  char* end = nullptr;
  double value = std::strtod(begin, &end);
  if (end == begin) return false;
  if (*end == 'x' || *end == 'X') value = static_cast<double>(std::strtoul(begin, &end, 16));
  while (*end != '\0' && std::isspace(static_cast<unsigned char>(*end))) ++end;
  if (*end != '\0') return false;
  out = value;
  return true;
}

// The script's `if not (off > 0 and off < 2^52) then off = 0 end` (NaN included).
bool in_range(double offset) { return offset > 0 && offset < kMaxOffset; }

// Lua's (ms - ms % 1000) / 1000 then string.format('%d'): whole milliseconds, rounded up.
long long px_of(double span) {
  const double ms = span + 999;
  return static_cast<long long>((ms - (ms - std::floor(ms / 1000) * 1000)) / 1000);
}

ScriptStepResult one_rate(std::string_view stored, bool exists, double now, long long inc,
                          long long room) {
  ScriptStepResult r;
  double off = 0;
  if (exists) {
    double value = now;
    if (stored.size() == 8) {
      value = unpack(stored.data());
    } else if (!lua_tonumber(stored, value)) {
      value = now;
    }
    off = value - now;
    if (!in_range(off)) off = 0;
  }
  if (inc == 0) {
    r.integer = static_cast<long long>(off);
    return r;
  }
  if (off > static_cast<double>(room)) {
    r.integer = static_cast<long long>(-1 - off);
    return r;
  }
  const double span = off + static_cast<double>(inc);
  r.write = true;
  pack(r.value_, r.value_size_, now + span);
  r.px_ms = px_of(span);
  r.integer = static_cast<long long>(off);
  return r;
}

ScriptStepResult several_rates(std::string_view stored, bool exists, double now,
                               std::span<const long long> args) {
  const std::size_t n = args.size() / 2;
  std::array<double, kMaxRates> t{};
  t.fill(now);
  if (exists && stored.size() == 8 * n) {
    for (std::size_t i = 0; i < n; ++i) t[i] = unpack(stored.data() + 8 * i);
  } else if (exists) {
    // The older form: decimal integers; any other number of them is a fresh key.
    std::size_t runs = 0;
    for (std::size_t at = 0; at < stored.size();) {
      if (!std::isdigit(static_cast<unsigned char>(stored[at]))) {
        ++at;
        continue;
      }
      std::size_t end = at;
      while (end < stored.size() && std::isdigit(static_cast<unsigned char>(stored[end]))) ++end;
      if (runs < kMaxRates) lua_tonumber(stored.substr(at, end - at), t[runs]);
      ++runs;
      at = end;
    }
    if (runs != n) t.fill(now);
  }
  bool admit = true;
  bool idle = true;
  for (std::size_t i = 0; i < n; ++i) {
    double off = t[i] - now;
    if (!in_range(off)) {
      off = 0;
    } else {
      idle = false;
    }
    t[i] = off;
    if (off > static_cast<double>(args[2 * i + 1])) admit = false;
  }
  ScriptStepResult r;
  const bool denied = args[0] != 0 && !admit;
  // The offsets (the integer 0 when all are 0 and not denied); '-' first when denied, and
  // Lua's '-' .. 0 is "-0".
  if (denied) r.bytes_[r.bytes_size_++] = '-';
  if (!idle) {
    r.integer_reply = false;
    for (std::size_t i = 0; i < n; ++i) pack(r.bytes_, r.bytes_size_, t[i]);
  } else if (denied) {
    r.integer_reply = false;
    r.bytes_[r.bytes_size_++] = '0';
  }
  if (args[0] == 0 || denied) return r;
  double expiry = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double span = t[i] + static_cast<double>(args[2 * i]);
    expiry = std::max(expiry, span);
    t[i] = now + span;
  }
  r.write = true;
  for (std::size_t i = 0; i < n; ++i) pack(r.value_, r.value_size_, t[i]);
  r.px_ms = px_of(expiry);
  return r;
}

}  // namespace

ScriptStepResult script_step(std::string_view stored, bool exists, long long now_us,
                             std::span<const long long> args) {
  const auto now = static_cast<double>(now_us);
  if (args.size() == 2) return one_rate(stored, exists, now, args[0], args[1]);
  return several_rates(stored, exists, now, args);
}

}  // namespace pacer::redis::internal
