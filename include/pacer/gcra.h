// pacer/gcra.h — the GCRA step: a pure function over one key's state. No I/O, no clock.
//
// State of a key is one theoretical arrival time (TAT) per rate of its policy, in the same
// integer nanosecond timeline as `now`. A missing key is the same as TATs <= now. The step:
//
//   new_tat = max(tat, now) + cost * T          for every rate
//   allowed iff new_tat - tau <= now            for every rate (all-or-nothing)
//
// When allowed with cost > 0 the caller stores the updated TATs; otherwise nothing changes.
// See docs/ALGORITHM.md for the derivation of remaining, retry_after and reset_after.
#pragma once

#include <cstdint>
#include <span>

#include "pacer/decision.h"
#include "pacer/rate.h"

namespace pacer {

// Evaluates a request of `cost` (>= 0; 0 is a peek) against `rates` at time `now` (ns).
// `tats` holds one TAT per rate and is updated in place only when the request is admitted
// with cost > 0 (check `Decision::allowed()` and cost to know whether to persist).
Decision gcra_step(std::span<const Rate> rates, std::span<std::int64_t> tats, std::int64_t now,
                   std::int64_t cost);

// The same, writing into `out`: stores use it to fill their result in place, which saves a
// copy of the Decision on the hot path.
void gcra_step(std::span<const Rate> rates, std::span<std::int64_t> tats, std::int64_t now,
               std::int64_t cost, Decision& out);

// The moment (ns) at which a key with these TATs carries no information any more: max(tats).
std::int64_t gcra_expiry(std::span<const std::int64_t> tats);

}  // namespace pacer
