#include "pacer/http/http_limiter.h"

#include <array>
#include <memory>
#include <stdexcept>

#include "pacer/detail/text.h"

namespace pacer::http {
namespace {

// Route templates may contain braces ("/items/{id}"), which would break the Redis Cluster
// hash tag; they become angle brackets. Anything else unsafe is hashed.
std::string scope_text(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '{') c = '<';
    if (c == '}') c = '>';
  }
  return sanitize_identity(out);
}

// Enough for every header append_headers may add: one allocation per verdict.
constexpr std::size_t kHeaderReserve = 8;

bool path_matches(std::string_view pattern, std::string_view path) {
  if (!pattern.empty() && pattern.back() == '*')
    return path.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == path;
}

}  // namespace

Scope parse_scope(std::string_view text) {
  if (text == "route") return Scope::kRoute;
  if (text == "method_route") return Scope::kMethodRoute;
  if (text == "app") return Scope::kApp;
  throw std::invalid_argument("invalid scope '" + detail::printable(text) +
                              "': expected route, method_route or app");
}

// One published rule table, with everything a pending request needs after the HttpLimiter is
// gone (a Limiter handle and the options). Immutable once published.
struct HttpLimiter::Rules : std::enable_shared_from_this<HttpLimiter::Rules> {
  struct Route {
    std::string method;
    std::string route;
    LimitRule rule;
  };

  Rules(const Limiter& l, const HttpLimiterOptions& o) : limiter(l), options(o) {}

  bool excluded(const RequestView& request) const;
  const LimitRule* route_rule(const RequestView& request) const;

  Limiter limiter;
  HttpLimiterOptions options;
  std::optional<MiddlewareOptions> middleware;
  // Shared between tables, so publishing a change copies pointers, not rules.
  std::vector<std::shared_ptr<const Route>> routes;
};

// The state of one request while its limits are checked one after the other.
struct HttpLimiter::Pending {
  struct Step {
    const LimitRule* rule;
    std::string key;
    std::int64_t cost;
    Decision decision;
  };
  const Rules* rules;
  std::shared_ptr<const Rules> keep;  // set when the answer may come after check() returns
  std::array<Step, 2> steps;          // middleware, route
  std::size_t count = 0;
  VerdictHandler done;
};

HttpLimiter::HttpLimiter(const Limiter& limiter, HttpLimiterOptions options)
    : limiter_(limiter), options_(std::move(options)) {
  const std::string& prefix = options_.key_prefix;
  if (prefix.empty() || prefix.size() > 64 || sanitize_identity(prefix) != prefix)
    throw std::invalid_argument("invalid key prefix '" + detail::printable(prefix) +
                                "': must be 1 to 64 printable characters without braces");
  publish(std::make_shared<Rules>(limiter_, options_));
}

HttpLimiter::~HttpLimiter() = default;

void HttpLimiter::publish(std::shared_ptr<Rules> rules) {
  // Called with mutex_ held (or from the constructor). Readers load current_ without a lock;
  // the table they load stays alive in tables_ (and, for pending requests, in Pending::keep).
  current_.store(rules.get(), std::memory_order_release);
  tables_.push_back(std::move(rules));
}

void HttpLimiter::set_middleware(MiddlewareOptions options) {
  limiter_.validate(options.rule.policy);
  std::lock_guard lock(mutex_);
  auto next = std::make_shared<Rules>(*tables_.back());
  next->middleware = std::move(options);
  publish(std::move(next));
}

void HttpLimiter::add_route(std::string method, std::string route, LimitRule rule) {
  limiter_.validate(rule.policy);
  std::lock_guard lock(mutex_);
  const Rules& now = *tables_.back();
  for (const auto& r : now.routes) {
    if (r->method == method && r->route == route)
      throw std::invalid_argument("duplicate route limit '" + detail::printable(method) + " " +
                                  detail::printable(route) + "'");
  }
  auto next = std::make_shared<Rules>(now);
  next->routes.push_back(std::make_shared<const Rules::Route>(
      Rules::Route{std::move(method), std::move(route), std::move(rule)}));
  publish(std::move(next));
}

bool HttpLimiter::Rules::excluded(const RequestView& request) const {
  for (const std::string& method : middleware->exclude_methods)
    if (iequals(method, request.method())) return true;
  for (const std::string& pattern : middleware->exclude_paths)
    if (path_matches(pattern, request.path())) return true;
  return false;
}

const LimitRule* HttpLimiter::Rules::route_rule(const RequestView& request) const {
  const std::string_view route = request.route();
  const LimitRule* any_method = nullptr;
  for (const auto& r : routes) {
    if (r->route != route) continue;
    if (r->method.empty())
      any_method = &r->rule;
    else if (iequals(r->method, request.method()))
      return &r->rule;
  }
  return any_method;
}

namespace {

// `scope_part` and `identity_part` already safe in a key.
std::string join_key(std::string_view prefix, std::string_view policy, std::string_view scope_part,
                     std::string_view identity_part) {
  std::string key;
  key.reserve(prefix.size() + policy.size() + scope_part.size() + identity_part.size() + 6);
  key.append(prefix).append(":{").append(policy).append(":");
  key.append(scope_part).append(":").append(identity_part).append("}");
  return key;
}

}  // namespace

std::string storage_key(std::string_view prefix, std::string_view policy, std::string_view scope,
                        std::string_view identity) {
  return join_key(prefix, policy, scope_text(scope), sanitize_identity(identity));
}

std::string HttpLimiter::storage_key(const LimitRule& rule, const RequestView& request) const {
  std::string scope;
  switch (rule.scope) {
    case Scope::kApp:
      scope = "app";
      break;
    case Scope::kRoute:
      scope = request.route();
      break;
    case Scope::kMethodRoute:
      scope = std::string(request.method()) + " " + std::string(request.route());
      break;
  }
  // An identity that does not apply (no fallback configured) shares one anonymous bucket.
  // Identities come sanitised from Identity (identity.h).
  return join_key(options_.key_prefix, rule.policy.name(), scope_text(scope),
                  rule.identity(request).value_or("anonymous"));
}

void HttpLimiter::PendingDeleter::operator()(Pending* pending) const {
  if (owned) delete pending;
}

void HttpLimiter::prepare(Pending& pending, const RequestView& request, VerdictHandler done) const {
  const Rules& rules = *pending.rules;
  pending.done = std::move(done);
  auto add = [&](const LimitRule& rule) {
    Pending::Step& step = pending.steps[pending.count++];
    step.rule = &rule;
    step.key = storage_key(rule, request);
    step.cost = rule.cost ? rule.cost(request) : 1;
  };
  if (rules.middleware && !rules.excluded(request)) add(rules.middleware->rule);
  if (const LimitRule* rule = rules.route_rule(request)) add(*rule);
}

void HttpLimiter::check(const RequestView& request, VerdictHandler done) const {
  const Rules* rules = current_.load(std::memory_order_acquire);
  if (limiter_.store().completes_inline()) {
    // Every step finishes before this call returns: the state can live on the stack.
    Pending pending;
    pending.rules = rules;
    prepare(pending, request, std::move(done));
    run(PendingPtr(&pending, {.owned = false}), 0);
    return;
  }
  PendingPtr pending(new Pending, {.owned = true});
  pending->rules = rules;
  pending->keep = rules->shared_from_this();
  prepare(*pending, request, std::move(done));
  run(std::move(pending), 0);
}

void HttpLimiter::run(PendingPtr pending, std::size_t index) {
  const Rules& rules = *pending->rules;
  if (index == pending->count) {
    // Every limit passed: report the one closest to denying (the route's on a tie).
    Verdict verdict;
    const Pending::Step* reporter = nullptr;
    for (std::size_t i = 0; i < pending->count; ++i) {
      const Pending::Step& s = pending->steps[i];
      if (reporter == nullptr || s.decision.remaining <= reporter->decision.remaining)
        reporter = &s;
    }
    if (reporter != nullptr) {
      verdict.headers.reserve(kHeaderReserve);
      append_headers(reporter->rule->policy, reporter->decision, rules.options.headers,
                     verdict.headers);
    }
    pending->done(std::move(verdict));
    return;
  }
  Pending::Step& step = pending->steps[index];
  rules.limiter.check(
      step.rule->policy, step.key, step.cost,
      [pending = std::move(pending), index](const Decision& decision) mutable {
        Pending::Step& s = pending->steps[index];
        s.decision = decision;
        if (decision.allowed()) return run(std::move(pending), index + 1);
        const HttpLimiterOptions& options = pending->rules->options;
        Verdict verdict;
        verdict.headers.reserve(kHeaderReserve);
        if (decision.outcome == Outcome::kUnavailable) {
          verdict.status = 503;
          verdict.headers.emplace_back("Retry-After",
                                       std::to_string(options.unavailable_retry_after.count()));
          verdict.body = unavailable_body();
        } else {
          verdict.status = 429;
          append_headers(s.rule->policy, decision, options.headers, verdict.headers);
          verdict.body = too_many_requests_body(decision, s.rule->body);
        }
        pending->done(std::move(verdict));
      });
}

}  // namespace pacer::http
