// What pacerd answers to Envoy's ShouldRateLimit (docs/API.md, "Envoy rate limit service"),
// without gRPC: the gRPC glue turns the protobuf request into an RlsRequest and the RlsAnswer
// back into a RateLimitResponse; everything between is here, so the rules are tested without a
// network and decided by the one Limiter every front end uses.
//
//   rls::decide(limiter, config, key_prefix, std::move(request), [](rls::RlsAnswer a) { ... });
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pacer/decision.h"
#include "pacer/limiter.h"
#include "rls_config.h"

namespace pacer::pacerd::rls {

struct RlsDescriptor {
  std::vector<std::pair<std::string, std::string>> entries;  // (key, value), outermost first
  struct Override {
    std::uint32_t requests_per_unit = 0;
    Unit unit = Unit::kUnknown;
  };
  std::optional<Override> limit;  // RateLimitDescriptor.limit: replaces the configured limit
};

struct RlsRequest {
  std::string domain;
  std::vector<RlsDescriptor> descriptors;
  std::uint32_t hits_addend = 0;  // 0: 1
};

// Checked before anything is spent; the message names the bad value and what is accepted.
// Empty: the request is fine.
std::string validate(const RlsRequest& request);

enum class Code : int { kOk = 1, kOverLimit = 2 };

struct RlsStatus {
  Code code = Code::kOk;
  // The limit that applied (configured or the descriptor's override); absent when none did (an
  // unknown descriptor, an unlimited or a replaced limit).
  struct Limit {
    std::uint32_t requests_per_unit = 0;
    Unit unit = Unit::kUnknown;
    std::string name;
  };
  std::optional<Limit> current_limit;
  std::uint32_t limit_remaining = 0;
  std::chrono::nanoseconds duration_until_reset{0};
  std::chrono::nanoseconds retry_after{0};  // when the same request would pass, if over
  const RlsLimit* limit = nullptr;  // the configured limit that matched (for metrics), if any
  // The check's answer and the policy it was made with, when one was made: what the rendered
  // RateLimit-* headers say (pacer/http/response.h).
  std::optional<Decision> decision;
  std::optional<Policy> policy;
  bool unlimited = false;
  bool shadowed = false;     // over the limit in shadow mode: answered OK
  bool unavailable = false;  // the store failed and the fail mode (closed) answered
};

struct RlsAnswer {
  Code overall = Code::kOk;         // kOverLimit when any descriptor is
  std::vector<RlsStatus> statuses;  // one per descriptor, in order
  bool unavailable = false;         // any descriptor answered by a closed fail mode
};

using RlsHandler = std::function<void(RlsAnswer)>;

// Decides every descriptor of `request` (validated first) through `limiter`: each its own
// check, at once; `done` runs once, when the last has answered (inline for the in-process store,
// else on a store I/O thread). `config` must outlive the call's completion (pass the runtime that
// owns it in `keep`). Descriptors are not all-or-nothing across each other: a request over the
// limit on one descriptor still counts on the others, as envoyproxy/ratelimit does.
void decide(const Limiter& limiter, const RlsConfig& config, std::string_view key_prefix,
            const RlsRequest& request, std::shared_ptr<const void> keep, RlsHandler done);

// One descriptor as envoyproxy/ratelimit names it: its entries as "key_value" joined by '.'.
// For metric labels (detailed_metric), not for buckets: as text, ("a", "x.b_y"), ("b", "z") and
// ("a", "x"), ("b", "y.b_z") read alike.
std::string descriptor_identity(const RlsDescriptor& descriptor);

// The identity of one descriptor's bucket: each entry's "key_value" made safe in a key
// (http::sanitize_identity hashes one with '|'), joined by '|', so that no two descriptors
// share a bucket (docs/DESIGN.md §4). One entry stays readable ("remote_address_10.0.0.1");
// storage_key hashes a joined one.
std::string bucket_identity(const RlsDescriptor& descriptor);

}  // namespace pacer::pacerd::rls
