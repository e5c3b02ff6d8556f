// pacer/http/http_limiter.h — global middleware and per-route limits, framework-neutral.
//
// An adapter hands each request to HttpLimiter::check and gets a Verdict: pass it on to the
// application (adding `headers` to its response) or answer with `status` and `body`.
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
#include "pacer/limiter.h"

namespace pacer::http {

enum class Scope {
  kRoute,        // one bucket per identity and route (template)
  kMethodRoute,  // one bucket per identity, method and route
  kApp,          // one bucket per identity for the whole application
};

// "route", "method_route" or "app"; throws std::invalid_argument naming anything else.
Scope parse_scope(std::string_view text);

// The storage key `<prefix>:{<policy>:<scope>:<identity>}` (docs/DESIGN.md §4). Braces in `scope`
// become angle brackets ("/items/{id}" -> "/items/<id>"); a scope or identity that is not safe
// in a key is hashed (sanitize_identity). Every adapter builds its keys here.
std::string storage_key(std::string_view prefix, std::string_view policy, std::string_view scope,
                        std::string_view identity);

struct LimitRule {
  Policy policy;
  Identity identity = Identity::client_ip();
  Scope scope = Scope::kRoute;
  BodyStyle body = BodyStyle::kFlat;
  // Cost of a request (weighted limits); empty = 1.
  std::function<std::int64_t(const RequestView&)> cost;
};

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

struct Verdict {
  // 0: pass the request on; otherwise answer with this status (429 or 503) and `body`.
  int status = 0;
  // Headers for the response, whether the request passes or not.
  HeaderList headers;
  std::string body;  // JSON, when status != 0
};

class HttpLimiter {
 public:
  using VerdictHandler = detail::UniqueFunction<void(Verdict&&)>;

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

  // The storage key of `rule` for `request` (exposed for tests, peek and reset).
  std::string storage_key(const LimitRule& rule, const RequestView& request) const;

  const HttpLimiterOptions& options() const { return options_; }
  Limiter& limiter() { return limiter_; }
  const Limiter& limiter() const { return limiter_; }

 private:
  struct RuleText;
  struct Rules;
  struct Pending;
  using PendingPtr = std::unique_ptr<Pending>;
  void prepare(Pending& pending, const RequestView& request, bool middleware,
               const LimitRule* route, const RuleText* route_text, VerdictHandler done) const;
  // check() for a store that completes inline: no Pending, no continuation per step.
  void check_inline(const Rules& rules, const RequestView& request, bool middleware,
                    const LimitRule* route, const RuleText* route_text, VerdictHandler& done) const;
  // The verdict for a request every limit let through, reported by `decision`.
  static void pass(const RuleText& text, const Decision& decision,
                   const HttpLimiterOptions& options, VerdictHandler& done);
  // The verdict for a request `decision` stops (429 or 503).
  static Verdict refusal(const RuleText& text, const Decision& decision, BodyStyle body,
                         const HttpLimiterOptions& options);
  // Appends the storage key of `rule`, with its request-independent part from `text` if given.
  void append_key(std::string& out, const LimitRule& rule, const RuleText* text,
                  const RequestView& request) const;
  void publish(std::shared_ptr<Rules> rules);
  static void run(PendingPtr pending, std::size_t step);

  Limiter limiter_;
  bool inline_store_;  // limiter_.store().completes_inline()
  HttpLimiterOptions options_;
  std::mutex mutex_;                            // serialises changes
  std::vector<std::shared_ptr<Rules>> tables_;  // every table published; the last is current
  std::atomic<const Rules*> current_;
};

}  // namespace pacer::http
