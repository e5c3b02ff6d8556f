#include "pacer/http/http_limiter.h"

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>

#include "core/text.h"
#include "header_text.h"
#include "key_text.h"

namespace pacer::http {
namespace {

// Turns the scope written after `mark` into its key text: route templates may contain braces
// ("/items/{id}"), which would break the Redis Cluster hash tag; they become angle brackets.
// The scope is followed by ':' and the identity, which may hold ':' too, so the scope must not:
// ':' is written "%3A", and '%', '<' and '>' are escaped likewise so the mapping stays
// one-to-one (docs/DESIGN.md §4). Anything else unsafe is hashed.
void finish_scope(std::string& out, std::size_t mark) {
  // One look for the usual scope; braces are swapped in place, and the rare scope with ':',
  // '%', '<' or '>' is rebuilt.
  bool escape = false;
  bool braces = false;
  for (std::size_t i = mark; i < out.size(); ++i) {
    const char c = out[i];
    braces = braces || c == '{' || c == '}';
    escape = escape || c == ':' || c == '%' || c == '<' || c == '>';
  }
  if (braces && !escape) {
    for (std::size_t i = mark; i < out.size(); ++i) {
      if (out[i] == '{') out[i] = '<';
      if (out[i] == '}') out[i] = '>';
    }
  } else if (escape) {
    const std::string scope = out.substr(mark);
    out.resize(mark);
    for (const char c : scope) {
      switch (c) {
        case '{':
          out += '<';
          break;
        case '}':
          out += '>';
          break;
        case ':':
          out.append("%3A");
          break;
        case '%':
          out.append("%25");
          break;
        case '<':
          out.append("%3C");
          break;
        case '>':
          out.append("%3E");
          break;
        default:
          out += c;
      }
    }
  }
  internal::sanitize_tail(out, mark);
}

// "<prefix>:{<policy>:"
void append_key_head(std::string& out, std::string_view prefix, std::string_view policy) {
  out.append(prefix).append(":{").append(policy).append(":");
}

// Of the steps that all passed, the one whose headers the response carries: the one closest to
// denying (the fewest remaining), the later one (the route's) on a tie. Null for no steps.
template <class Step>
const Step* closest_to_denying(std::span<const Step> steps) {
  const Step* reporter = nullptr;
  for (const Step& s : steps)
    if (reporter == nullptr || s.decision.remaining <= reporter->decision.remaining) reporter = &s;
  return reporter;
}

// A request's cost under `rule`: its cost function's answer, 1 without one.
std::int64_t cost_of(const LimitRule& rule, const RequestView& request) {
  return rule.cost ? rule.cost(request) : 1;
}

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
  throw std::invalid_argument("invalid scope '" + pacer::internal::printable(text) +
                              "': expected route, method_route or app");
}

// What a rule's keys and headers share across requests, rendered when the rule is added.
struct HttpLimiter::RuleText {
  RuleText(std::string_view prefix, const LimitRule& rule, const HeaderOptions& options,
           const std::string* fixed_route)
      : headers(internal::render_policy_headers(rule.policy, options)) {
    append_key_head(key_head, prefix, rule.policy.name());
    // A route's own limit only sees requests for that route: its scope is known already.
    if (rule.scope == Scope::kApp || (rule.scope == Scope::kRoute && fixed_route != nullptr)) {
      const std::size_t mark = key_head.size();
      key_head.append(rule.scope == Scope::kApp ? std::string_view("app") : *fixed_route);
      finish_scope(key_head, mark);
      key_head.append(":");
      scope_fixed = true;
    }
  }

  std::string key_head;  // "<prefix>:{<policy>:", and "<scope>:" when scope_fixed
  bool scope_fixed = false;
  internal::PolicyHeaderText headers;
};

// One published rule table, with everything a pending request needs after the HttpLimiter is
// gone (a Limiter handle and the options). Immutable once published.
struct HttpLimiter::Rules : std::enable_shared_from_this<HttpLimiter::Rules> {
  struct Route {
    Route(std::string m, std::string r, LimitRule l, const HttpLimiterOptions& limiter_options)
        : method(std::move(m)),
          route(std::move(r)),
          rule(std::move(l)),
          text(limiter_options.key_prefix, rule, limiter_options.headers, &route) {}
    std::string method;
    std::string route;
    LimitRule rule;
    RuleText text;
  };
  struct Middleware {
    Middleware(MiddlewareOptions o, const HttpLimiterOptions& limiter_options)
        : options(std::move(o)),
          text(limiter_options.key_prefix, options.rule, limiter_options.headers, nullptr) {}
    MiddlewareOptions options;
    RuleText text;
  };

  Rules(const Limiter& l, const HttpLimiterOptions& o) : limiter(l), options(o) {}

  bool excluded(const RequestView& request) const;
  const Route* route_rule(const RequestView& request) const;

  Limiter limiter;
  HttpLimiterOptions options;
  // Shared between tables, so publishing a change copies pointers, not rules.
  std::shared_ptr<const Middleware> middleware;
  std::vector<std::shared_ptr<const Route>> routes;
};

// The state of one request while its limits are checked one after the other.
struct HttpLimiter::Pending {
  struct Step {
    const LimitRule* rule;
    const RuleText* text;
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

namespace {

// Key storage for checks that complete inline: a step's key is built in one of these, which
// keep their capacity from request to request on this thread. A check started while they are
// lent out (from a hook or a cost function) builds its keys in its own strings.
struct SpareKeys {
  std::array<std::string, 2> keys;
  bool lent = false;
};
thread_local SpareKeys t_spare_keys;

class LentKeys {
 public:
  LentKeys() {
    if (t_spare_keys.lent) {
      keys_ = &own_.emplace();
    } else {
      keys_ = &t_spare_keys.keys;
      t_spare_keys.lent = true;
    }
  }
  ~LentKeys() {
    if (keys_ == &t_spare_keys.keys) t_spare_keys.lent = false;
  }
  LentKeys(const LentKeys&) = delete;
  LentKeys& operator=(const LentKeys&) = delete;
  std::string& operator[](std::size_t i) { return (*keys_)[i]; }

 private:
  std::array<std::string, 2>* keys_;
  std::optional<std::array<std::string, 2>> own_;
};

}  // namespace

HttpLimiter::HttpLimiter(const Limiter& limiter, HttpLimiterOptions options)
    : limiter_(limiter),
      inline_store_(limiter.store().completes_inline()),
      options_(std::move(options)) {
  const std::string& prefix = options_.key_prefix;
  if (!valid_key_prefix(prefix)) {
    throw std::invalid_argument("invalid key prefix '" + pacer::internal::printable(prefix) +
                                "': must be 1 to 64 printable characters without braces");
  }
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
  auto middleware = std::make_shared<const Rules::Middleware>(std::move(options), options_);
  std::lock_guard lock(mutex_);
  auto next = std::make_shared<Rules>(*tables_.back());
  next->middleware = std::move(middleware);
  publish(std::move(next));
}

void HttpLimiter::add_route(std::string method, std::string route, LimitRule rule) {
  limiter_.validate(rule.policy);
  std::lock_guard lock(mutex_);
  const Rules& now = *tables_.back();
  for (const auto& r : now.routes) {
    if (r->method == method && r->route == route) {
      throw std::invalid_argument("duplicate route limit '" + pacer::internal::printable(method) +
                                  " " + pacer::internal::printable(route) + "'");
    }
  }
  auto next = std::make_shared<Rules>(now);
  next->routes.push_back(std::make_shared<const Rules::Route>(std::move(method), std::move(route),
                                                              std::move(rule), options_));
  publish(std::move(next));
}

bool HttpLimiter::Rules::excluded(const RequestView& request) const {
  for (const std::string& method : middleware->options.exclude_methods)
    if (iequals(method, request.method())) return true;
  for (const std::string& pattern : middleware->options.exclude_paths)
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

std::string storage_key(std::string_view prefix, std::string_view policy, std::string_view scope,
                        std::string_view identity) {
  std::string key;
  key.reserve(prefix.size() + policy.size() + scope.size() + identity.size() + 6);
  append_key_head(key, prefix, policy);
  const std::size_t mark = key.size();
  key.append(scope);
  finish_scope(key, mark);
  key.append(":");
  internal::append_sanitized(key, identity);
  key.append("}");
  return key;
}

void HttpLimiter::append_key(std::string& out, const LimitRule& rule, const RuleText* text,
                             const RequestView& request) const {
  if (text != nullptr) {
    out.append(text->key_head);
  } else {
    append_key_head(out, options_.key_prefix, rule.policy.name());
  }
  if (text == nullptr || !text->scope_fixed) {
    const std::size_t mark = out.size();
    switch (rule.scope) {
      case Scope::kApp:
        out.append("app");
        break;
      case Scope::kRoute:
        out.append(request.route());
        break;
      case Scope::kMethodRoute:
        out.append(request.method()).append(" ").append(request.route());
        break;
    }
    finish_scope(out, mark);
    out.append(":");
  }
  // An identity that does not apply (no fallback configured) shares one anonymous bucket.
  // Identities come sanitised from Identity (identity.h).
  if (!rule.identity.append_to(request, out)) out.append("anonymous");
  out += '}';
}

std::string HttpLimiter::storage_key(const LimitRule& rule, const RequestView& request) const {
  std::string key;
  append_key(key, rule, nullptr, request);
  return key;
}

void HttpLimiter::prepare(Pending& pending, const RequestView& request, bool middleware,
                          const LimitRule* route, const RuleText* route_text,
                          VerdictHandler done) const {
  const Rules& rules = *pending.rules;
  pending.done = std::move(done);
  auto add = [&](const LimitRule& rule, const RuleText& text) {
    Pending::Step& step = pending.steps[pending.count++];
    step.rule = &rule;
    step.text = &text;
    step.key.clear();
    append_key(step.key, rule, &text, request);
    step.cost = cost_of(rule, request);
  };
  if (middleware) add(rules.middleware->options.rule, rules.middleware->text);
  if (route != nullptr) add(*route, *route_text);
}

void HttpLimiter::check(const RequestView& request, VerdictHandler done) const {
  const Rules* rules = current_.load(std::memory_order_acquire);
  const bool middleware = rules->middleware && !rules->excluded(request);
  const Rules::Route* route = rules->route_rule(request);
  // No limit applies: the request passes, without headers. (Not `Verdict{}`: GCC zeroes the
  // whole aggregate first, header buffers included, which costs more than this check.)
  if (!middleware && route == nullptr) {
    Verdict verdict;
    return done(std::move(verdict));
  }
  const LimitRule* route_rule = route != nullptr ? &route->rule : nullptr;
  const RuleText* route_text = route != nullptr ? &route->text : nullptr;
  if (inline_store_) return check_inline(*rules, request, middleware, route_rule, route_text, done);
  auto pending = std::make_unique<Pending>();
  pending->rules = rules;
  pending->keep = rules->shared_from_this();
  prepare(*pending, request, middleware, route_rule, route_text, std::move(done));
  run(std::move(pending), 0);
}

void HttpLimiter::check_inline(const Rules& rules, const RequestView& request, bool middleware,
                               const LimitRule* route, const RuleText* route_text,
                               VerdictHandler& done) const {
  // Every step finishes before the limiter returns: the steps are decided one after the other
  // in this frame, with the keys in this thread's spare strings. As in run(), every key and
  // cost is known before the first step is decided, and the first step that is not allowed
  // answers.
  struct Step {
    const LimitRule* rule;
    const RuleText* text;
    std::int64_t cost;
    Decision decision;
  };
  std::array<Step, 2> steps;  // middleware, route
  std::size_t count = 0;
  std::size_t decided = 0;
  {
    LentKeys keys;  // given back before the verdict handler runs
    auto add = [&](const LimitRule& rule, const RuleText& text) {
      std::string& key = keys[count];
      key.clear();
      append_key(key, rule, &text, request);
      steps[count++] = {&rule, &text, cost_of(rule, request), {}};
    };
    if (middleware) add(rules.middleware->options.rule, rules.middleware->text);
    if (route != nullptr) add(*route, *route_text);
    while (decided < count) {
      Step& step = steps[decided];
      step.decision = rules.limiter.check(step.rule->policy, keys[decided], step.cost);
      if (!step.decision.allowed()) break;
      ++decided;
    }
  }
  if (decided < count) {
    const Step& step = steps[decided];
    return done(refusal(*step.text, step.decision, step.rule->body, rules.options));
  }
  // Every limit passed (there is at least one).
  const Step* reporter = closest_to_denying(std::span<const Step>(steps.data(), count));
  pass(*reporter->text, reporter->decision, rules.options, done);
}

void HttpLimiter::pass(const RuleText& text, const Decision& decision,
                       const HttpLimiterOptions& options, VerdictHandler& done) {
  Verdict verdict;
  internal::append_headers(text.headers, decision, options.headers, verdict.headers);
  done(std::move(verdict));
}

Verdict HttpLimiter::refusal(const RuleText& text, const Decision& decision, BodyStyle body,
                             const HttpLimiterOptions& options) {
  Verdict verdict;
  if (decision.outcome == Outcome::kUnavailable) {
    verdict.status = 503;
    verdict.headers.add_number("Retry-After", options.unavailable_retry_after.count());
    verdict.body = unavailable_body();
  } else {
    verdict.status = 429;
    internal::append_headers(text.headers, decision, options.headers, verdict.headers);
    verdict.body = too_many_requests_body(decision, body);
  }
  return verdict;
}

void HttpLimiter::run(PendingPtr pending, std::size_t index) {
  const Rules& rules = *pending->rules;
  if (index == pending->count) {
    // Every limit passed.
    const Pending::Step* reporter =
        closest_to_denying(std::span<const Pending::Step>(pending->steps.data(), pending->count));
    if (reporter == nullptr) {
      Verdict verdict;  // not `Verdict{}`: see check()
      return pending->done(std::move(verdict));
    }
    return pass(*reporter->text, reporter->decision, rules.options, pending->done);
  }
  Pending::Step& step = pending->steps[index];
  rules.limiter.check(
      step.rule->policy, step.key, step.cost,
      [pending = std::move(pending), index](const Decision& decision) mutable {
        Pending::Step& s = pending->steps[index];
        s.decision = decision;
        if (decision.allowed()) return run(std::move(pending), index + 1);
        pending->done(refusal(*s.text, decision, s.rule->body, pending->rules->options));
      });
}

}  // namespace pacer::http
