// pacer/http/http_limiter.h — global middleware and per-route limits, framework-neutral.
//
// An adapter hands each request to HttpLimiter::check and gets a Verdict (rule.h): pass it on to
// the application (adding `headers` to its response) or answer with `status` and `body`. The
// middleware and the route's limit are Rules, decided by http::decide (docs/DESIGN.md §7).
//
//   pacer::http::HttpLimiter http(limiter, {.key_prefix = "shop"});
//   http.set_middleware({.rule = {.policy = Policy("global", {Rate::parse("100/1m", 20)})},
//                        .exclude_paths = {"/health", "/metrics*"}});
//   http.add_route("POST", "/orders", {.policy = Policy("orders", {Rate::parse("3/1m")})});
//   http.check(view, [&](Verdict v) { ... });
//
// Storage keys are `<prefix>:{<policy>:<scope>:<identity>}` (docs/DESIGN.md §4): one key per
// policy, the whole tag hashed to a Redis Cluster slot so identities spread over the cluster.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pacer/detail/unique_function.h"
#include "pacer/http/identity.h"
#include "pacer/http/request_view.h"
#include "pacer/http/response.h"
#include "pacer/http/rule.h"
#include "pacer/limiter.h"

namespace pacer::http {

struct MiddlewareOptions {
  LimitRule rule;
  // Exact paths, or prefixes ending in '*' ("/static/*").
  std::vector<std::string> exclude_paths;
  std::vector<std::string> exclude_methods{"OPTIONS", "HEAD"};
};

struct HttpLimiterOptions {
  // First part of every storage key; usually the service name.
  std::string key_prefix = "pacer";
  HeaderOptions headers;
  // Retry-After on 503 answers (fail mode "closed").
  std::chrono::seconds unavailable_retry_after = kUnavailableRetryAfter;
};

class HttpLimiter {
 public:
  using VerdictHandler = http::VerdictHandler;

  // Shares `limiter`'s state (a Limiter is a handle). Throws std::invalid_argument for a bad
  // key prefix.
  explicit HttpLimiter(const Limiter& limiter, HttpLimiterOptions options = {});
  ~HttpLimiter();

  // Rules may change while requests are checked: each change publishes a new rule table;
  // a request uses the table it started with until its verdict. Tables are small (a pointer
  // per route) and the replaced ones are kept until the HttpLimiter goes.
  // Throws std::invalid_argument when the limiter's store cannot represent a rate.
  void set_middleware(MiddlewareOptions options);
  // A limit for requests whose RequestView::route() equals `route`; `method` "" matches any.
  // Throws std::invalid_argument when the same method and route already have a limit, or when
  // the limiter's store cannot represent a rate.
  void add_route(std::string method, std::string route, LimitRule rule);

  // Applies the middleware (unless excluded) and then the route's limit, if any. `done` runs
  // exactly once, inline for the in-process store. `request` need only live until this call
  // returns. The HttpLimiter may be destroyed while verdicts are pending.
  void check(const RequestView& request, VerdictHandler done) const;

  // The storage key of `rule` for `request` (exposed for tests, peek and reset); empty when the
  // identity is missing and the rule refuses such requests.
  std::string storage_key(const LimitRule& rule, const RequestView& request) const;

  const HttpLimiterOptions& options() const { return options_; }
  Limiter& limiter() { return limiter_; }
  const Limiter& limiter() const { return limiter_; }

 private:
  struct Rules;
  struct Table;
  void publish(std::shared_ptr<Rules> rules);

  Limiter limiter_;
  bool inline_store_;  // limiter_.store().completes_inline()
  HttpLimiterOptions options_;
  RuleContext context_;
  std::mutex mutex_;                            // serialises changes
  std::vector<std::unique_ptr<Table>> tables_;  // every table published; the last is current
  std::atomic<const Table*> current_;
};

}  // namespace pacer::http
