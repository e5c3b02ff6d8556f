// libFuzzer target for pacerd's reading of envoyproxy/ratelimit's YAML
// (apps/pacerd/rls/rls_config.h): any bytes as a configuration file. Beyond "no crash": a file
// either loads, and then every limit is consistent and any lookup answers, or is refused with a
// ConfigError (never another exception).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "rls/rls_config.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pacer::pacerd::rls;
  const std::string text(reinterpret_cast<const char*>(data), size);
  RlsConfig config;
  try {
    config = RlsConfig::load(std::vector<SourceFile>{{"fuzz.yaml", text}});
  } catch (const ConfigError& e) {
    check(std::string_view(e.what()).starts_with("fuzz.yaml"));
    return 0;
  }
  for (const RlsLimit* l : config.limits()) {
    check(!l->full_key.empty());
    if (l->unlimited) {
      check(!l->policy);
    } else {
      check(l->unit != Unit::kUnknown);
      check(l->policy.has_value() == (l->requests_per_unit > 0));
      if (l->policy) check(l->policy->rates()[0] == window_rate(l->requests_per_unit, l->unit));
    }
  }
  // Lookups with entries cut from the input itself.
  std::vector<RlsConfig::Entry> entries;
  const std::string_view view(text);
  for (std::size_t i = 0; i + 2 <= view.size() && entries.size() < 4; i += 2) {
    entries.push_back({view.substr(i, 1), view.substr(i + 1, 1)});
  }
  for (std::string_view domain : {std::string_view("d"), view.substr(0, view.size() / 2)}) {
    if (const RlsLimit* l = config.find(domain, entries)) check(!l->full_key.empty());
  }
  return 0;
}
