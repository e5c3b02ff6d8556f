// What the GCRA script (script.h) does to one key, as a pure function: the stored value and the
// time in, the reply and the write out. The Redis module (src/redis_module/, PACER.GCRA) runs
// it inside Redis; tests run it beside the Lua script on the same inputs and compare every
// reply and every stored value, so a deployment can mix Lua and module decisions on one key
// and switch either way without losing counts (docs/DESIGN.md §5).
//
// It mirrors the script's arithmetic step by step, Lua's numbers included: microsecond times in
// doubles, a stored value of 8 bytes per rate read as little-endian doubles (the older decimal
// form too), an offset outside (0, 2^52) read as 0, PX = floor((span + 999) / 1000).
//
//   ScriptStepResult r = script_step(stored, /*exists=*/true, now_us, args);  // args: inc, room,
//   ... reply with r.integer or r.bytes(); if (r.write) SET key r.value() PX r.px_ms
//
// No allocation on the binary path; no dependency on Redis or hiredis.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pacer::redis::internal {

struct ScriptStepResult {
  // The reply: an integer (one rate; or 0 for several rates all idle), else bytes() (8 bytes per
  // rate, '-' first when denied; "-0" when denied with every offset 0).
  bool integer_reply = true;
  long long integer = 0;
  std::string_view bytes() const { return {bytes_.data(), bytes_size_}; }
  // The write: SET <key> <value()> PX <px_ms>. Only for an admitted check that is not a read.
  bool write = false;
  long long px_ms = 0;
  std::string_view value() const { return {value_.data(), value_size_}; }

  // Filled by script_step (fixed buffers: no allocation inside Redis's command path).
  std::array<char, std::size_t{1} + std::size_t{8} * 8> bytes_{};
  std::size_t bytes_size_ = 0;
  std::array<char, std::size_t{8} * 8> value_{};
  std::size_t value_size_ = 0;
};

// `args` = inc_1, room_1, ..., inc_n, room_n (1 <= n <= 8, each from 0 to 2^52); inc_1 = 0 only
// reads. `stored` is the key's value when `exists`. `now_us`: Redis TIME in microseconds.
ScriptStepResult script_step(std::string_view stored, bool exists, long long now_us,
                             std::span<const long long> args);

// The largest argument the module accepts (and that the client ever sends: tolerances are
// below 2^61 ns, 2^51 us).
inline constexpr long long kMaxScriptArgument = 1LL << 52;

}  // namespace pacer::redis::internal
