// Exits 0 when a Pacer built inside this project (add_subdirectory or FetchContent) admits
// exactly burst + 1 requests at once through pacer::limiter.
#include <pacer/limiter.h>
#include <pacer/version.h>

#include <cstdio>

int main() {
  pacer::MemoryStore store;
  pacer::Limiter limiter(store);
  const pacer::Policy policy("embed", {pacer::Rate::parse("10/1m", 2)});
  int allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += limiter.check(policy, "embed-key").allowed();
  std::printf("pacer %s: %d of 5 allowed\n", PACER_VERSION_STRING, allowed);
  return allowed == 3 ? 0 : 1;
}
