// Exits 0 when an installed Pacer admits exactly burst + 1 requests at once.
#include <pacer/http/identity.h>
#include <pacer/limiter.h>

int main() {
  pacer::MemoryStore store;
  pacer::Limiter limiter(store);
  const pacer::Policy policy("consumer", {pacer::Rate::parse("10/1m", 2)});
  const std::string key = pacer::http::sanitize_identity("consumer-key");
  int allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += limiter.check(policy, key).allowed();
  return allowed == 3 ? 0 : 1;
}
