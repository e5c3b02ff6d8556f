// Exits 0 when an installed Pacer admits exactly burst + 1 requests at once, and every exported
// component (core, limiter, http, redis, beast) compiles and links in a consumer's project with
// nothing but find_package(pacer) and target_link_libraries: no extra flags, no private headers.
#include <pacer/beast/server.h>
#include <pacer/gcra.h>
#include <pacer/http/identity.h>
#include <pacer/limiter.h>
#include <pacer/redis/redis_store.h>
#include <pacer/redis/url.h>

int main() {
  pacer::MemoryStore store;
  pacer::Limiter limiter(store);
  const pacer::Policy policy("consumer", {pacer::Rate::parse("10/1m", 2)});
  const std::string key = pacer::http::sanitize_identity("consumer-key");
  int allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += limiter.check(policy, key).allowed();
  // core alone: one GCRA step; redis: a URL; beast: the server's options.
  std::int64_t tat = 0;
  const bool step_ok =
      pacer::gcra_step(policy.rates(), std::span<std::int64_t>(&tat, 1), 1'000'000'000, 1)
          .allowed();
  const bool url_ok = pacer::redis::parse_redis_url("redis://127.0.0.1:6379").hosts.size() == 1;
  const pacer::beast::ServerOptions server_options;
  const bool beast_ok = server_options.threads == 0;
  return allowed == 3 && step_ok && url_ok && beast_ok ? 0 : 1;
}
