// The descriptor tree RlsConfig keeps per domain (rls_config.h; docs/DESIGN.md §1): built by
// rls_config_yaml.cc, walked by RlsConfig::find in rls_config.cc. Internal to rls_config*.cc.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rls_config.h"

namespace pacer::pacerd::rls {

struct RlsConfig::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> children;  // "key" or "key_value"
  std::vector<std::pair<std::string, const Node*>> wildcards;  // "key_prefix" of "value: x*"
  std::optional<RlsLimit> limit;
};

}  // namespace pacer::pacerd::rls
