#include "pacer/error.h"

#include <string>

namespace pacer {
namespace {

class PacerCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pacer"; }
  std::string message(int code) const override {
    switch (static_cast<Errc>(code)) {
      case Errc::kStoreUnavailable:
        return "store unavailable";
      case Errc::kTimeout:
        return "store timed out";
      case Errc::kCircuitOpen:
        return "circuit open after repeated store failures";
      case Errc::kInvalidCost:
        return "invalid cost";
      case Errc::kInvalidKey:
        return "invalid key";
      case Errc::kProtocol:
        return "unexpected reply from the store";
      case Errc::kOverloaded:
        return "too many requests waiting for the store";
      case Errc::kRateTooFine:
        return "rate finer than the store's time resolution (1 us per permit in Redis)";
    }
    return "unknown pacer error " + std::to_string(code);
  }
};

}  // namespace

const std::error_category& pacer_category() noexcept {
  static const PacerCategory category;
  return category;
}

}  // namespace pacer
