// libFuzzer target for pacerd's JSON request parser (apps/pacerd/api.h): any body, for each of
// check, peek and reset. Beyond "no crash, no exception": a request is either items within the
// limits or an error whose body is valid JSON naming a field.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
//     -Iapps/pacerd -Iapps/common tests/fuzz/pacerd_api_fuzz.cc apps/pacerd/api.cc \
//     src/http/response.cc src/core/*.cc -lfmt -o pacerd_api_fuzz
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <variant>

#include "api.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pacer::pacerd;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const ApiLimits limits{.max_batch = 50, .max_key_bytes = 64};
  for (const ApiCall call : {ApiCall::kCheck, ApiCall::kPeek, ApiCall::kReset}) {
    const auto result = parse_api_request(body, call, limits);
    if (const auto* request = std::get_if<ApiRequest>(&result)) {
      check(!request->items.empty() && request->items.size() <= limits.max_batch);
      check(request->batch || request->items.size() == 1);
      for (const auto& item : request->items) {
        check(!item.policy.empty());
        check(!item.key.empty() && item.key.size() <= limits.max_key_bytes);
        check(item.cost >= 0 && item.cost <= kMaxCost);
        // Check and peek take a cost (peek answers what a check of that cost would); reset
        // takes none.
        check(call != ApiCall::kReset || item.cost == 1);
      }
    } else {
      const auto& error = std::get<ApiError>(result);
      const auto parsed =
          nlohmann::json::parse(error_body("invalid_request", error), nullptr, false);
      check(parsed.is_object() && parsed["field"] == error.field);
    }
  }
  return 0;
}
