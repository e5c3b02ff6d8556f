// The GCRA step of src/core/gcra.cc shared between one Lua script and the client (docs/DESIGN.md
// §5).
//
// Redis does what must be atomic: it reads the key's TATs and Redis TIME, decides admission and
// writes the new TATs. The client does the rest: the script returns each rate's TAT relative
// to its `now`, and the client runs the same `gcra_step` as the in-process store on those
// offsets (with `now` = 0), so remaining, retry_after, reset_after and the deciding rate come
// from one implementation. All integers are microseconds.
//
//   EVALSHA <sha> 1 <key> <inc_1> <room_1> ... <inc_n> <room_n>
//     inc = cost * T and room = tau - inc of each rate; inc_1 = 0 only reads (a peek, or a
//     cost that exceeds a rate's capacity: nothing would be written either way)
//   -> one rate: an integer x; x >= 0: admitted (written unless only read), and x is
//      max(tat - now, 0) before the step; x < 0: denied, nothing written, -1 - x is that offset
//   -> n > 1 rates: 8n bytes, each rate's max(tat - now, 0) as a little-endian double,
//      prefixed by '-' when denied; or the integer 0 when admitted with every offset 0 (a fresh
//      or idle key, the common case: no string to build)
//
// Admission is `max(tat - now, 0) <= room` for every rate, the step's `new_tat - tau <= now`.
// The client checks that the script's verdict is the step's: a reply that disagrees is a
// protocol error, never a silently wrong decision.
//
// Stored value: the TATs (absolute microseconds) as little-endian IEEE-754 doubles, 8 bytes per
// rate (exact below 2^53 us, the year 2255). Values in the earlier format, decimal integers
// separated by spaces, are read too; a value with the wrong number of TATs (the policy's rates
// changed) or a TAT that is not a time is a fresh key. Admitted requests SET the value with
// PX = ceil((max TAT - now) / 1 ms).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "pacer/decision.h"
#include "pacer/rate.h"
#include "pacer/redis/reply.h"

namespace pacer::redis::internal {

std::string_view gcra_script();
// Lower-case hex SHA-1 of gcra_script(), as SCRIPT LOAD and EVALSHA name it.
std::string_view gcra_script_sha();

// One check of `cost` against `rates` as the script sees it: T rounded up to whole
// microseconds (never more than the configured rate), tau = (burst + 1) * T.
class ScriptCall {
 public:
  // The rates' emission intervals must be at least 1 us (Store::resolution()). `read_only`
  // (a peek) sends inc_1 = 0 and decodes the offsets as a check of `cost` would.
  ScriptCall(std::span<const Rate> rates, std::int64_t cost, bool read_only = false);

  // inc_1, room_1, ..., inc_n, room_n: the ARGV after the key.
  std::span<const std::int64_t> arguments() const { return {arguments_.data(), 2 * size_}; }
  // True when the script may write (cost > 0 and no rate's capacity exceeded).
  bool writes() const { return writes_; }

  // The decision in nanoseconds, or nullopt for a reply that is not the script's answer or
  // whose verdict contradicts the step.
  std::optional<Decision> decode(const Reply& reply) const;

  // The rates as the step runs on them: a Rate whose "nanoseconds" are microseconds.
  std::span<const Rate> microsecond_rates() const { return {rates_.data(), size_}; }

 private:
  std::array<Rate, Policy::kMaxRates> rates_;
  std::array<std::int64_t, 2 * Policy::kMaxRates> arguments_{};
  std::size_t size_;
  std::int64_t cost_;
  bool writes_ = false;
};

}  // namespace pacer::redis::internal
