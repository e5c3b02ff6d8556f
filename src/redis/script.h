// The GCRA step of src/core/gcra.cc as one Lua script (DESIGN §5): one key holds the TATs of
// every rate of a policy, time comes from Redis TIME, all integers are microseconds.
//
//   EVALSHA <sha> 1 <key> <cost> <rates> <T_1> <tau_1> ... <T_n> <tau_n>
//   -> {outcome, remaining, retry_after_us, reset_after_us, rate_index}
//      outcome: 1 allowed, 0 denied, -1 exceeds capacity
#pragma once

#include <string_view>

namespace pacer::redis {

std::string_view gcra_script();
// Lower-case hex SHA-1 of gcra_script(), as SCRIPT LOAD and EVALSHA name it.
std::string_view gcra_script_sha();

}  // namespace pacer::redis
