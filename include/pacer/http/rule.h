// pacer/http/rule.h — one HTTP limit, compiled: how every front end decides a request.
//
// A LimitRule says what to count (policy, identity, scope, cost) and how to answer (body style,
// shadow, what a request without the identity gets). A Rule is that, compiled once for a key
// prefix and header options: the request-independent part of its storage keys and of its
// headers is rendered when it is built, so a request only appends its identity and formats its
// numbers. The Beast adapter and pacer-demo (through HttpLimiter), pacerd and the Python package
// all decide through Rules and `decide` (docs/DESIGN.md §7), and map the Verdict to their
// transport: nothing else turns a Decision into an HTTP answer.
//
//   pacer::http::Rule api({.policy = Policy("api", {Rate::parse("100/1m", 20)}),
//                          .identity = Identity::api_key()},
//                         {.key_prefix = "shop"});
//   const Rule* rules[] = {&api};
//   pacer::http::decide(limiter, rules, view, [](Verdict&& v) {
//     if (v.refused()) { /* answer v.status with v.headers and v.body */ }
//     else             { /* pass on; add v.headers to the response */ }
//   });
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pacer/detail/unique_function.h"
#include "pacer/http/identity.h"
#include "pacer/http/request_view.h"
#include "pacer/http/response.h"
#include "pacer/limiter.h"

namespace pacer::http {

namespace internal {
struct PolicyHeaderText;  // src/http/header_text.h
}

enum class Scope : std::uint8_t {
  kRoute,        // one bucket per identity and route (template)
  kMethodRoute,  // one bucket per identity, method and route
  kApp,          // one bucket per identity for the whole application
};

// "route", "method_route" or "app"; throws std::invalid_argument naming anything else.
Scope parse_scope(std::string_view text);

// What a request gets when the rule's identity does not apply to it (no API key, no user) and
// no fallback in the identity does: the same in every front end (docs/DESIGN.md §7).
enum class MissingIdentity : std::uint8_t {
  kRefuse,  // 401 {"detail":"identity_missing"}; nothing is spent for the request
  kShared,  // counted in one bucket, "anonymous", shared by every such request
};

// "refuse" or "shared"; throws std::invalid_argument naming anything else.
MissingIdentity parse_missing_identity(std::string_view text);
std::string_view to_string(MissingIdentity missing);

// One decision of a rule, for its on_decision observer.
struct RuleEvent {
  const Decision& decision;  // as decided (a shadow rule's would-be denial included)
  std::string_view key;      // the storage key
  std::chrono::nanoseconds latency;
};

struct LimitRule {
  Policy policy;
  Identity identity = Identity::client_ip();
  Scope scope = Scope::kRoute;
  BodyStyle body = BodyStyle::kFlat;
  // Cost of a request (weighted limits); empty = 1.
  std::function<std::int64_t(const RequestView&)> cost;
  MissingIdentity missing_identity = MissingIdentity::kRefuse;
  // Decides and counts, but never refuses and never shows a would-be denial: no RateLimit-*
  // headers come from it (a RateLimit-Remaining of 0 would make clients back off from a limit
  // that is not enforced).
  bool shadow = false;
  // Called with every decision of this rule (metrics, logs). Must not throw; runs on the
  // store's thread for an asynchronous store.
  std::function<void(const RuleEvent&)> on_decision;
};

// What a rule's keys and answers share with every other rule of one front end.
struct RuleContext {
  // First part of every storage key; usually the service name (valid_key_prefix).
  std::string key_prefix = "pacer";
  HeaderOptions headers;
  // Retry-After on 503 answers (fail mode "closed").
  std::chrono::seconds unavailable_retry_after = kUnavailableRetryAfter;
  // How the scope reads in keys: kPacer "GET /items/{id}" and "app"; kFastApiPacer (the Python
  // package) "GET:/items/{id}" and "global". Identities carry their own dialect (identity.h).
  Dialect dialect = Dialect::kPacer;
};

enum class Action : std::uint8_t { kPass, kRefuse };

// What the client is told of a shadow rule's `decision`: a would-be denial (or an unavailable
// store) is allowed, with no retry; limit, remaining and reset as they are. Rule::told() and
// the Python package's shadow policies (python/src/policy.h) both answer with it.
Decision shadow_told(const Decision& decision);

class Rule;

struct Verdict {
  Action action = Action::kPass;
  // When refused: 429 (a limit), 503 (the store failed, fail mode closed) or 401 (the identity
  // is missing and the rule refuses such requests).
  int status = 0;
  // Headers for the response, whether the request passes or not.
  HeaderList headers;
  std::string body;  // JSON, when refused
  // The decision that answered: the refusing one, or the passing one whose headers are sent.
  // Empty when no limit decided (nothing applied, or the identity is missing).
  std::optional<Decision> decision;
  // The rule that answered (refused, or reported); null when none did. Valid while the rules
  // are (decide()'s `keep` holds them until the handler returns).
  const Rule* rule = nullptr;

  bool refused() const { return action == Action::kRefuse; }
};

using VerdictHandler = detail::UniqueFunction<void(Verdict&&)>;

class Rule {
 public:
  // Throws std::invalid_argument for a bad key prefix. `fixed_scope`: the scope text of every
  // key, rendered once here whatever `spec.scope` says: a per-route limit's route (it only sees
  // requests for that route), pacerd's rates digest. kApp rules have the fixed scope "app".
  Rule(LimitRule spec, const RuleContext& context,
       std::optional<std::string_view> fixed_scope = {});
  ~Rule();
  Rule(Rule&&) noexcept;
  Rule& operator=(Rule&&) noexcept;

  const LimitRule& spec() const { return spec_; }
  const Policy& policy() const { return spec_.policy; }
  const RuleContext& context() const { return context_; }

  // Appends the storage key `<prefix>:{<policy>:<scope>:<identity>}` (docs/DESIGN.md §4) for
  // `request` and returns true; returns false, with `out` as it was, when the identity does not
  // apply and the rule refuses such requests.
  bool append_key(std::string& out, const RequestView& request) const;
  // The storage key for an identity given as text (pacerd's /v1/check keys), sanitised like
  // the selectors' (docs/DESIGN.md §4). Only for a rule with a fixed scope (std::logic_error).
  std::string key(std::string_view identity) const;
  // The storage key for a scope and an identity both given as text (the Python package's
  // explicit keys: check_blocking, peek, reset, scope_override and selector functions), whatever
  // the rule's own scope: storage_key(prefix, policy, scope, identity).
  std::string key(std::string_view scope, std::string_view identity) const;
  // The request's cost: the rule's cost function, else 1.
  std::int64_t cost(const RequestView& request) const;

  // The answers. `headers` adds the RateLimit-* headers (and Retry-After when denied) of a
  // decision, none for a shadow rule; `refusal` is the 429 or 503 for a decision that does not
  // allow (never for a shadow rule: see told()); `identity_missing` is the 401.
  void headers(const Decision& decision, HeaderList& out) const;
  Verdict refusal(const Decision& decision) const;
  Verdict identity_missing() const;
  // What the client is told of `decision`: a shadow rule's would-be denial is allowed, with no
  // retry (limit, remaining and reset as they are); an unavailable store (fail mode closed) says
  // retry after `unavailable_retry_after`, as the 503 does; anything else as it is.
  Decision told(const Decision& decision) const;

 private:
  LimitRule spec_;
  RuleContext context_;
  std::string key_head_;         // "<prefix>:{<policy>:", and "<scope>:" when scope_fixed_
  std::size_t policy_head_ = 0;  // the length of "<prefix>:{<policy>:"
  bool scope_fixed_ = false;
  std::unique_ptr<internal::PolicyHeaderText> headers_;
};

// Decides `request` by `rules`, in order (at most kMaxRules): every key and cost is taken
// first, and a rule whose identity is missing and refuses such requests answers 401 before
// anything is spent. Then the limits are checked one after the other; the first that does not
// allow answers (an earlier one has spent its token), and a shadow rule never refuses. When all
// pass, the headers are those of the enforced rule closest to denying (fewest remaining; the
// later one on a tie). `done` runs exactly once, inline for the in-process store. `request`
// need only live until this call returns. The Rule objects must live until `done` has run: an
// asynchronous completion holds `keep` for that, which should own them (a rule table, a runtime
// configuration); nullptr when they outlive every pending decision anyway. The span of pointers
// itself is copied.
inline constexpr std::size_t kMaxRules = 8;
void decide(const Limiter& limiter, std::span<const Rule* const> rules, const RequestView& request,
            std::shared_ptr<const void> keep, VerdictHandler done);

// The storage key `<prefix>:{<policy>:<scope>:<identity>}` (docs/DESIGN.md §4). Braces in `scope`
// become angle brackets ("/items/{id}" -> "/items/<id>"); a scope or identity that is not safe
// in a key is hashed (sanitize_identity). Every adapter builds its keys here.
std::string storage_key(std::string_view prefix, std::string_view policy, std::string_view scope,
                        std::string_view identity);

}  // namespace pacer::http
