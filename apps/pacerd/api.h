// pacerd's JSON API: request parsing and answer formatting, without I/O (fuzzed by
// tests/fuzz/pacerd_api_fuzz.cc).
//
//   POST /v1/check  {"policy": "api", "key": "user:42", "cost": 1}   or an array of those
//   POST /v1/peek   {"policy": "api", "key": "user:42", "cost": 1}  what a check would answer
//   POST /v1/reset  {"policy": "api", "key": "user:42"}
//
// Anything else is an ApiError naming the field ("cost", "[3].key", or "" for the body).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pacer/decision.h"

namespace pacer::pacerd {

enum class ApiCall { kCheck, kPeek, kReset };

struct ApiLimits {
  std::size_t max_batch = 1000;
  std::size_t max_key_bytes = 1024;
};

// The largest cost accepted (a weighted request of a billion permits is already absurd).
inline constexpr std::int64_t kMaxCost = 1'000'000'000;
// Bodies nested deeper than this are refused before parsing (a valid request nests 2 levels).
inline constexpr int kMaxDepth = 16;

struct ApiItem {
  std::string policy;
  std::string key;
  std::int64_t cost = 1;
};

struct ApiRequest {
  bool batch = false;  // the body was an array: answer with an array
  std::vector<ApiItem> items;
};

struct ApiError {
  std::string field;  // "" when the body as a whole is wrong
  std::string message;
};

// Never throws (but std::bad_alloc). The policy name is not looked up here.
std::variant<ApiRequest, ApiError> parse_api_request(std::string_view body, ApiCall call,
                                                     const ApiLimits& limits);

// `field` of item `index` of a request: "key" for a single request, "[3].key" in a batch.
std::string item_field(const ApiRequest& request, std::size_t index, std::string_view field);

// {"error": "invalid_request", "field": "cost", "message": "..."}; always valid UTF-8.
std::string error_body(std::string_view error, const ApiError& detail);

// The answer to one check or peek:
// {"allowed":true,"outcome":"allowed","limit":10,"remaining":5,"retry_after_ms":0,
//  "reset_after_ms":6000,"policy":"api","shadow":false,"degraded":false}
// `allowed` is what the caller must do. `told` is the decision as the client is told it
// (http::Rule::told: a shadow policy's would-be denial shows as allowed; docs/DESIGN.md §8).
void append_decision_json(std::string& out, std::string_view policy, const Decision& told,
                          bool shadow);

}  // namespace pacer::pacerd
