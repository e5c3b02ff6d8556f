#include "pacer/http/http_limiter.h"

#include <array>
#include <memory>
#include <stdexcept>

#include "core/text.h"
#include "key_text.h"

namespace pacer::http {
namespace {

bool path_matches(std::string_view pattern, std::string_view path) {
  if (!pattern.empty() && pattern.back() == '*')
    return path.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == path;
}

RuleContext context_of(const HttpLimiterOptions& options) {
  return {.key_prefix = options.key_prefix,
          .headers = options.headers,
          .unavailable_retry_after = options.unavailable_retry_after};
}

}  // namespace

// One published rule table: the middleware and the routes, compiled. Immutable once published;
// a pending request keeps the table it started with alive (decide()'s `keep`).
struct HttpLimiter::Rules {
  struct Route {
    Route(std::string m, std::string r, LimitRule l, const RuleContext& context)
        : method(std::move(m)), route(std::move(r)), rule(compile(std::move(l), context, route)) {}
    // A route's own limit only sees requests for that route: a route scope is known already.
    static Rule compile(LimitRule l, const RuleContext& context, std::string_view route) {
      const bool fixed = l.scope == Scope::kRoute;
      return Rule(std::move(l), context, fixed ? std::optional(route) : std::nullopt);
    }
    std::string method;
    std::string route;
    Rule rule;
  };
  struct Middleware {
    Middleware(MiddlewareOptions o, const RuleContext& context)
        : exclude_paths(std::move(o.exclude_paths)),
          exclude_methods(std::move(o.exclude_methods)),
          rule(std::move(o.rule), context) {}
    std::vector<std::string> exclude_paths;
    std::vector<std::string> exclude_methods;
    Rule rule;
  };

  bool excluded(const RequestView& request) const;
  const Route* route_rule(const RequestView& request) const;

  // Shared between tables, so publishing a change copies pointers, not rules.
  std::shared_ptr<const Middleware> middleware;
  std::vector<std::shared_ptr<const Route>> routes;
};

// A published table and the owner a pending request holds (the same object, typed for decide).
struct HttpLimiter::Table {
  std::shared_ptr<const Rules> rules;
  std::shared_ptr<const void> keep;
};

HttpLimiter::HttpLimiter(const Limiter& limiter, HttpLimiterOptions options)
    : limiter_(limiter),
      inline_store_(limiter.store().completes_inline()),
      options_(std::move(options)),
      context_(context_of(options_)) {
  internal::require_key_prefix(options_.key_prefix);
  publish(std::make_shared<Rules>());
}

HttpLimiter::~HttpLimiter() = default;

void HttpLimiter::publish(std::shared_ptr<Rules> rules) {
  // Called with mutex_ held (or from the constructor). Readers load current_ without a lock;
  // the table they load stays alive in tables_ (and, for pending requests, in decide's keep).
  auto table = std::make_unique<Table>();
  table->keep = rules;
  table->rules = std::move(rules);
  current_.store(table.get(), std::memory_order_release);
  tables_.push_back(std::move(table));
}

void HttpLimiter::set_middleware(MiddlewareOptions options) {
  limiter_.validate(options.rule.policy);
  auto middleware = std::make_shared<const Rules::Middleware>(std::move(options), context_);
  std::lock_guard lock(mutex_);
  auto next = std::make_shared<Rules>(*tables_.back()->rules);
  next->middleware = std::move(middleware);
  publish(std::move(next));
}

void HttpLimiter::add_route(std::string method, std::string route, LimitRule rule) {
  limiter_.validate(rule.policy);
  std::lock_guard lock(mutex_);
  const Rules& now = *tables_.back()->rules;
  for (const auto& r : now.routes) {
    if (r->method == method && r->route == route) {
      throw std::invalid_argument("duplicate route limit '" + pacer::internal::printable(method) +
                                  " " + pacer::internal::printable(route) + "'");
    }
  }
  auto next = std::make_shared<Rules>(now);
  next->routes.push_back(std::make_shared<const Rules::Route>(std::move(method), std::move(route),
                                                              std::move(rule), context_));
  publish(std::move(next));
}

bool HttpLimiter::Rules::excluded(const RequestView& request) const {
  for (const std::string& method : middleware->exclude_methods)
    if (iequals(method, request.method())) return true;
  for (const std::string& pattern : middleware->exclude_paths)
    if (path_matches(pattern, request.path())) return true;
  return false;
}

const HttpLimiter::Rules::Route* HttpLimiter::Rules::route_rule(const RequestView& request) const {
  const std::string_view route = request.route();
  const Route* any_method = nullptr;
  for (const auto& r : routes) {
    if (r->route != route) continue;
    if (r->method.empty()) {
      any_method = r.get();
    } else if (r->method == request.method() || iequals(r->method, request.method())) {
      return r.get();
    }
  }
  return any_method;
}

std::string HttpLimiter::storage_key(const LimitRule& rule, const RequestView& request) const {
  std::string key;
  Rule(rule, context_).append_key(key, request);
  return key;
}

void HttpLimiter::check(const RequestView& request, VerdictHandler done) const {
  const Table* table = current_.load(std::memory_order_acquire);
  const Rules& rules = *table->rules;
  std::array<const Rule*, 2> applying;  // middleware, route
  std::size_t count = 0;
  if (rules.middleware && !rules.excluded(request)) applying[count++] = &rules.middleware->rule;
  if (const Rules::Route* route = rules.route_rule(request)) applying[count++] = &route->rule;
  // No limit applies: the request passes, without headers. (Not `Verdict{}`: GCC zeroes the
  // whole aggregate first, header buffers included, which costs more than this check.)
  if (count == 0) {
    Verdict verdict;
    return done(std::move(verdict));
  }
  // Only an answer that comes later needs the table kept alive (an atomic count otherwise).
  decide(limiter_, std::span<const Rule* const>(applying.data(), count), request,
         inline_store_ ? nullptr : table->keep, std::move(done));
}

}  // namespace pacer::http
