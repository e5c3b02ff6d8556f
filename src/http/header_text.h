// The response headers of a policy, with what does not change between requests rendered once
// (pacer/http/response.h has the public form).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pacer/http/response.h"

namespace pacer::http::internal {

// The values of a policy's headers that depend only on the policy: rendered when a rule is
// added, so a request only formats its numbers.
struct PolicyHeaderText {
  std::string x_ratelimit_policy;        // "Policy(api): 100/1m (burst=10)"; x_ratelimit_policy
  std::string ratelimit_policy;          // "\"api\";q=100;w=60"; ietf_draft
  std::vector<std::string> quota_names;  // "api", "api.1", ... one per rate; ietf_draft
  // RateLimit-Limit of each rate (its permits) in decimal; ratelimit
  std::vector<std::pair<std::int64_t, std::string>> limits;
};

// Empty strings for the headers `options` leaves out.
PolicyHeaderText render_policy_headers(const Policy& policy, const HeaderOptions& options);

// append_headers (response.h) with the policy's part already rendered by
// render_policy_headers(policy, options).
void append_headers(const PolicyHeaderText& text, const Decision& decision,
                    const HeaderOptions& options, HeaderList& out);

}  // namespace pacer::http::internal
