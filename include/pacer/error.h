// pacer/error.h — runtime failures travel as std::error_code values in the pacer category.
#pragma once

#include <system_error>

namespace pacer {

enum class Errc {
  kStoreUnavailable = 1,  // the store could not be reached
  kTimeout,               // the store did not answer in time
  kCircuitOpen,           // too many recent failures; failing fast
  kInvalidCost,           // cost < 0
  kInvalidKey,            // empty key
  kProtocol,              // the store answered something unexpected
  kOverloaded,            // too many requests already waiting for the store
  kRateTooFine,           // the store's time resolution cannot represent the rate
};

const std::error_category& pacer_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), pacer_category()};
}

}  // namespace pacer

template <>
struct std::is_error_code_enum<pacer::Errc> : std::true_type {};
