#include "pacer/http/rule.h"

#include <array>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/text.h"
#include "header_text.h"
#include "key_text.h"
#include "pacer/store_key.h"

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

// "<prefix>:{<policy>:": the policy's tag as the stores read it (pacer/store_key.h).
void append_key_head(std::string& out, std::string_view prefix, std::string_view policy) {
  out.append(prefix).append(":");
  append_policy_tag(out, policy);
}

// "<scope>:<identity>}" after a key head, both given as text.
void append_key_tail(std::string& key, std::string_view scope, std::string_view identity) {
  const std::size_t mark = key.size();
  key.append(scope);
  finish_scope(key, mark);
  key += ':';
  internal::append_sanitized(key, identity);
  key += '}';
}

}  // namespace

Scope parse_scope(std::string_view text) {
  if (text == "route") return Scope::kRoute;
  if (text == "method_route") return Scope::kMethodRoute;
  if (text == "app") return Scope::kApp;
  throw std::invalid_argument("invalid scope '" + pacer::internal::printable(text) +
                              "': expected route, method_route or app");
}

MissingIdentity parse_missing_identity(std::string_view text) {
  if (text == "refuse") return MissingIdentity::kRefuse;
  if (text == "shared") return MissingIdentity::kShared;
  throw std::invalid_argument("invalid missing identity answer '" +
                              pacer::internal::printable(text) + "': expected refuse or shared");
}

std::string_view to_string(MissingIdentity missing) {
  return missing == MissingIdentity::kRefuse ? "refuse" : "shared";
}

void internal::require_key_prefix(std::string_view prefix) {
  if (!valid_key_prefix(prefix)) {
    throw std::invalid_argument("invalid key prefix '" + pacer::internal::printable(prefix) +
                                "': must be 1 to 64 printable characters without braces");
  }
}

std::string storage_key(std::string_view prefix, std::string_view policy, std::string_view scope,
                        std::string_view identity) {
  std::string key;
  key.reserve(prefix.size() + policy.size() + scope.size() + identity.size() + 6);
  append_key_head(key, prefix, policy);
  append_key_tail(key, scope, identity);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Rule

Rule::Rule(LimitRule spec, const RuleContext& context, std::optional<std::string_view> fixed_scope)
    : spec_(std::move(spec)),
      context_(context),
      headers_(std::make_unique<internal::PolicyHeaderText>(
          internal::render_policy_headers(spec_.policy, context_.headers))) {
  internal::require_key_prefix(context_.key_prefix);
  append_key_head(key_head_, context_.key_prefix, spec_.policy.name());
  policy_head_ = key_head_.size();
  // A route's own limit only sees requests for that route: its scope is known already.
  if (fixed_scope || spec_.scope == Scope::kApp) {
    const std::size_t mark = key_head_.size();
    const std::string_view app = context_.dialect == Dialect::kPacer ? "app" : "global";
    key_head_.append(fixed_scope ? *fixed_scope : app);
    finish_scope(key_head_, mark);
    key_head_.append(":");
    scope_fixed_ = true;
  }
}

Rule::~Rule() = default;
Rule::Rule(Rule&&) noexcept = default;
Rule& Rule::operator=(Rule&&) noexcept = default;

bool Rule::append_key(std::string& out, const RequestView& request) const {
  const std::size_t start = out.size();
  out.append(key_head_);
  if (!scope_fixed_) {
    const std::size_t mark = out.size();
    switch (spec_.scope) {
      case Scope::kApp:  // only with a fixed scope; kept for completeness
        out.append(context_.dialect == Dialect::kPacer ? "app" : "global");
        break;
      case Scope::kRoute:
        out.append(request.route());
        break;
      case Scope::kMethodRoute:
        out.append(request.method())
            .append(context_.dialect == Dialect::kPacer ? " " : ":")
            .append(request.route());
        break;
    }
    finish_scope(out, mark);
    out.append(":");
  }
  // Identities come sanitised from Identity (identity.h).
  if (!spec_.identity.append_to(request, out)) {
    if (spec_.missing_identity == MissingIdentity::kRefuse) {
      out.resize(start);
      return false;
    }
    out.append(spec_.identity.shared_name());
  }
  out += '}';
  return true;
}

std::string Rule::key(std::string_view identity) const {
  if (!scope_fixed_)
    throw std::logic_error("pacer::http::Rule::key: the rule's scope is not fixed");
  std::string key;
  key.reserve(key_head_.size() + identity.size() + 1);
  key.append(key_head_);
  internal::append_sanitized(key, identity);
  key += '}';
  return key;
}

std::string Rule::key(std::string_view scope, std::string_view identity) const {
  std::string key;
  key.reserve(policy_head_ + scope.size() + identity.size() + 2);
  key.append(key_head_, 0, policy_head_);
  append_key_tail(key, scope, identity);
  return key;
}

std::int64_t Rule::cost(const RequestView& request) const {
  return spec_.cost ? spec_.cost(request) : 1;
}

Decision shadow_told(const Decision& decision) {
  if (decision.allowed()) return decision;
  Decision told = decision;
  told.outcome = Outcome::kAllowed;
  told.retry_after = Nanos::zero();
  return told;
}

Decision Rule::told(const Decision& decision) const {
  if (decision.allowed()) return decision;
  if (spec_.shadow) return shadow_told(decision);
  Decision told = decision;
  if (decision.outcome == Outcome::kUnavailable) {
    told.retry_after = context_.unavailable_retry_after;  // the 503's Retry-After
  }
  return told;
}

void Rule::headers(const Decision& decision, HeaderList& out) const {
  if (spec_.shadow) return;
  internal::append_headers(*headers_, decision, context_.headers, out);
}

Verdict Rule::refusal(const Decision& decision) const {
  Verdict verdict;
  verdict.action = Action::kRefuse;
  verdict.decision = decision;
  verdict.rule = this;
  if (decision.outcome == Outcome::kUnavailable) {
    verdict.status = 503;
    verdict.headers.add_number("Retry-After", context_.unavailable_retry_after.count());
    verdict.body = unavailable_body();
  } else {
    verdict.status = 429;
    internal::append_headers(*headers_, decision, context_.headers, verdict.headers);
    verdict.body = too_many_requests_body(decision, spec_.body);
  }
  return verdict;
}

Verdict Rule::identity_missing() const {
  Verdict verdict;
  verdict.action = Action::kRefuse;
  verdict.status = 401;
  verdict.body = identity_missing_body();
  verdict.rule = this;
  return verdict;
}

// ---------------------------------------------------------------------------------------------
// decide(): the rules of one request, one after the other

namespace {

struct Step {
  const Rule* rule = nullptr;
  std::int64_t cost = 0;
  Decision decision;
};

// Of the steps that were decided, the enforced one whose headers the response carries: the
// one closest to denying (the fewest remaining), the later one on a tie. Null for none.
const Step* reporter_of(std::span<const Step> steps) {
  const Step* reporter = nullptr;
  for (const Step& s : steps) {
    if (s.rule == nullptr || s.rule->spec().shadow) continue;
    if (reporter == nullptr || s.decision.remaining <= reporter->decision.remaining) reporter = &s;
  }
  return reporter;
}

// The verdict for a request every rule let through.
Verdict passed(std::span<const Step> steps) {
  Verdict verdict;
  if (const Step* reporter = reporter_of(steps)) {
    reporter->rule->headers(reporter->decision, verdict.headers);
    verdict.decision = reporter->decision;
    verdict.rule = reporter->rule;
    return verdict;
  }
  // Only shadow rules counted the request (or none could): allowed, without headers.
  for (const Step& s : steps) {
    if (s.rule == nullptr) continue;
    verdict.decision = s.rule->told(s.decision);
    verdict.rule = s.rule;
  }
  return verdict;
}

void observe(const Rule& rule, const Decision& decision, std::string_view key,
             std::chrono::steady_clock::time_point started) noexcept {
  const auto& hook = rule.spec().on_decision;
  if (!hook) return;
  try {
    hook(RuleEvent{decision, key, std::chrono::steady_clock::now() - started});
  } catch (...) {
    // A throwing observer must not cost the request its answer (rule.h: it must not throw).
  }
}

// Key storage for checks that complete inline: a step's key is built in one of these, which
// keep their capacity from request to request on this thread. A check started while they are
// lent out (from a hook or a cost function) builds its keys in its own strings.
using Keys = std::array<std::string, kMaxRules>;
struct SpareKeys {
  Keys keys;
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
  Keys* keys_;
  std::optional<Keys> own_;
};

// Takes every rule's key and cost. False: a rule refuses the request for its missing identity
// (`missing` names it). A rule that skips the request (a shadow rule without the identity) is
// left with a null rule.
template <class KeyAt>
bool prepare(std::span<const Rule* const> rules, const RequestView& request, Step* steps,
             KeyAt key_at, const Rule*& missing) {
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Rule& rule = *rules[i];
    std::string& key = key_at(i);
    key.clear();
    if (!rule.append_key(key, request)) {
      // A shadow rule never stops a request, also not one it cannot count: it is skipped.
      if (rule.spec().shadow) {
        std::construct_at(steps + i);
        continue;
      }
      missing = &rule;
      return false;
    }
    std::construct_at(steps + i, Step{&rule, rule.cost(request), {}});
  }
  return true;
}

// The state of one request whose store answers later.
struct Pending {
  std::shared_ptr<const void> keep;  // owns the rules
  Limiter limiter;
  std::vector<Step> steps;
  std::vector<std::string> keys;
  VerdictHandler done;
  std::chrono::steady_clock::time_point started;

  static void run(std::unique_ptr<Pending> self, std::size_t index);
};

void Pending::run(std::unique_ptr<Pending> self, std::size_t index) {
  while (index < self->steps.size() && self->steps[index].rule == nullptr) ++index;
  if (index == self->steps.size()) return self->done(passed(self->steps));
  Pending& p = *self;
  const Step& step = p.steps[index];
  p.started = std::chrono::steady_clock::now();
  p.limiter.check(step.rule->policy(), p.keys[index], step.cost,
                  [self = std::move(self), index](const Decision& decision) mutable {
                    Step& s = self->steps[index];
                    s.decision = decision;
                    observe(*s.rule, decision, self->keys[index], self->started);
                    if (decision.allowed() || s.rule->spec().shadow)
                      return run(std::move(self), index + 1);
                    self->done(s.rule->refusal(decision));
                  });
}

// Room for N steps, each built by prepare() only when a rule needs it. A value-initialised
// std::array<Step, N> was zeroed whole per request (rep stos) and the first decision read back
// from it stalled on store forwarding: ~10 ns a request in bench/http_benchmark.cc.
template <std::size_t N>
class StepRoom {
 public:
  static_assert(std::is_trivially_destructible_v<Step>);
  Step* data() { return std::launder(reinterpret_cast<Step*>(bytes_)); }

 private:
  alignas(Step) unsigned char bytes_[N * sizeof(Step)];
};

// N: room for the rules, 2 for HttpLimiter (middleware, route).
template <std::size_t N>
void decide_inline(const Limiter& limiter, std::span<const Rule* const> rules,
                   const RequestView& request, VerdictHandler& done) {
  // Every step finishes before the limiter returns: the steps are decided one after the other
  // in this frame, with the keys in this thread's spare strings.
  StepRoom<N> room;
  Step* const steps = room.data();
  const std::size_t count = rules.size();
  const Rule* missing = nullptr;
  const Step* refused = nullptr;
  {
    LentKeys keys;  // given back before the verdict handler runs
    if (prepare(
            rules, request, steps, [&](std::size_t i) -> std::string& { return keys[i]; },
            missing)) {
      for (std::size_t i = 0; i < count && refused == nullptr; ++i) {
        Step& step = steps[i];
        if (step.rule == nullptr) continue;
        const bool observed = static_cast<bool>(step.rule->spec().on_decision);
        const auto started =
            observed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        step.decision = limiter.check(step.rule->policy(), keys[i], step.cost);
        if (observed) observe(*step.rule, step.decision, keys[i], started);
        if (!step.decision.allowed() && !step.rule->spec().shadow) refused = &step;
      }
    }
  }
  if (missing != nullptr) return done(missing->identity_missing());
  if (refused != nullptr) return done(refused->rule->refusal(refused->decision));
  done(passed(std::span<const Step>(steps, count)));
}

}  // namespace

void decide(const Limiter& limiter, std::span<const Rule* const> rules, const RequestView& request,
            std::shared_ptr<const void> keep, VerdictHandler done) {
  if (rules.size() > kMaxRules) {
    throw std::invalid_argument("pacer::http::decide: " + std::to_string(rules.size()) +
                                " rules; at most " + std::to_string(kMaxRules));
  }
  if (limiter.completes_inline()) {
    if (rules.size() <= 2) return decide_inline<2>(limiter, rules, request, done);
    return decide_inline<kMaxRules>(limiter, rules, request, done);
  }
  auto pending = std::make_unique<Pending>(Pending{std::move(keep),
                                                   limiter,
                                                   std::vector<Step>(rules.size()),
                                                   std::vector<std::string>(rules.size()),
                                                   std::move(done),
                                                   {}});
  const Rule* missing = nullptr;
  if (!prepare(
          rules, request, pending->steps.data(),
          [&](std::size_t i) -> std::string& { return pending->keys[i]; }, missing)) {
    return pending->done(missing->identity_missing());
  }
  Pending::run(std::move(pending), 0);
}

}  // namespace pacer::http
