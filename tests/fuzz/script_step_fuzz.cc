// libFuzzer target for the module's step (src/redis/script_step.h): the stored value is whatever
// a key holds (another client's SET, a value written by an older version, garbage), and the
// arguments are what any client may send to PACER.GCRA within its limits.
// The first byte chooses the number of rates (1 to 8) and a peek; 8 bytes move `now`; 7 bytes per
// argument (masked to 0 .. 2^52, as the module enforces); the rest is the stored value, or no key.
//
// Beyond "no crash, no UB" it checks what a caller relies on:
//  - one rate: an integer reply; several: the integer 0 or 8n bytes, '-' first when denied, or
//    "-0";
//  - a write only for a check that is not a read and was admitted; its value is 8n bytes of
//    finite TATs not before `now`, and its PX is at least 1 ms;
//  - the same input gives the same result.
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/fuzz/script_step_fuzz.cc src/redis/script_step.cc -o script_step_fuzz
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "redis/script_step.h"

namespace {

using pacer::redis::internal::kMaxScriptArgument;
using pacer::redis::internal::script_step;
using pacer::redis::internal::ScriptStepResult;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "script_step_fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

std::uint64_t take(const std::uint8_t*& data, std::size_t& size, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes && size > 0; ++i, ++data, --size)
    value |= static_cast<std::uint64_t>(*data) << (8 * i);
  return value;
}

bool same(const ScriptStepResult& a, const ScriptStepResult& b) {
  return a.integer_reply == b.integer_reply && a.integer == b.integer && a.bytes() == b.bytes() &&
         a.write == b.write && a.value() == b.value() && a.px_ms == b.px_ms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t head = *data++;
  --size;
  const std::size_t rates = 1 + (head & 7);
  const bool peek = (head & 8) != 0;
  const bool exists = (head & 16) == 0;
  // Around 2026 in microseconds, moved by up to 2^40 us either way.
  const long long now = 1'780'000'000'000'000LL +
                        static_cast<long long>(take(data, size, 8) % (1ULL << 41)) - (1LL << 40);
  std::vector<long long> args;
  for (std::size_t i = 0; i < 2 * rates; ++i)
    args.push_back(static_cast<long long>(take(data, size, 7) %
                                          (static_cast<std::uint64_t>(kMaxScriptArgument) + 1)));
  if (peek) args[0] = 0;
  const std::string_view stored(reinterpret_cast<const char*>(data), size);

  const ScriptStepResult r = script_step(stored, exists, now, args);
  check(same(r, script_step(stored, exists, now, args)), "the same input, the same result");
  if (rates == 1) {
    check(r.integer_reply, "one rate: an integer reply");
  } else if (r.integer_reply) {
    check(r.integer == 0, "several rates: the only integer reply is 0");
  } else {
    const std::string_view bytes = r.bytes();
    const bool denied = !bytes.empty() && bytes[0] == '-';
    check(bytes == "-0" || bytes.size() == 8 * rates + (denied ? 1 : 0),
          "several rates: 8 bytes per rate, '-' first when denied");
    check(!(denied && r.write), "a denial writes nothing");
  }
  if (r.write) {
    check(args[0] != 0, "a read writes nothing");
    check(r.value().size() == 8 * rates, "the value holds one TAT per rate");
    check(r.px_ms >= 1, "PX is at least 1 ms");
    for (std::size_t i = 0; i < rates; ++i) {
      double tat = 0;
      std::memcpy(&tat, r.value().data() + 8 * i, 8);
      check(std::isfinite(tat) && tat >= static_cast<double>(now), "TATs are times from now on");
    }
  } else {
    check(r.value().empty() && r.px_ms == 0, "no value without a write");
  }
  return 0;
}
