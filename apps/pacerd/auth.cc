// /v1/auth/{a}[,{b}...]: nginx auth_request (docs/DESIGN.md §8, "Auth chains"). The policies'
// rules decide the request through http::decide, the one path every front end shares; this file
// maps the verdict to auth_request's answers: 204 to pass, 403 (or [auth] deny_status) for a
// limit, 403 (or [auth] unavailable_status) when the store failed with fail mode closed, 401 for
// a missing identity.
#include <algorithm>

#include "log.h"
#include "pacer/beast/limit.h"
#include "pacer/beast/request_view.h"
#include "pacer/text.h"
#include "runtime.h"

namespace pacer::pacerd {
namespace {

// One policy per name, each named once: /v1/auth/web,api.
constexpr std::size_t kMaxAuthPolicies = http::kMaxRules;

beast::Response answer(const Service::Runtime& runtime, std::size_t policies,
                       const http::Verdict& verdict, unsigned version) {
  if (!verdict.refused()) {
    beast::Response res{bhttp::status::no_content, version};
    beast::add_headers(verdict.headers, res);
    // Only shadow policies, none of which could count the request: it passes uncounted.
    res.set("X-Pacer-Outcome", std::string(verdict.decision ? to_string(verdict.decision->outcome)
                                                            : "identity_missing"));
    return res;
  }
  const Service::RuntimePolicy& p = *runtime.find(verdict.rule->policy().name());
  if (verdict.status == 401) {
    // No API key (or whatever the policy counts by): 401, which auth_request passes on.
    auto res = error_response(bhttp::status::unauthorized, version, "identity_missing", "identity",
                              "the request carries no " + p.config.identity.front());
    res.set("X-Pacer-Outcome", "identity_missing");
    return res;
  }
  // A denial answers auth.deny_status (403 for nginx's auth_request, which examples/nginx turns
  // into 429; or 429 for forward-auth proxies), the store's failure auth.unavailable_status
  // (403, or 503); X-Pacer-Outcome tells them apart whatever the status (docs/API.md).
  const Decision& d = *verdict.decision;
  const AuthAnswers& auth = runtime.config.auth;
  const bool unavailable = d.outcome == Outcome::kUnavailable;
  const auto status =
      static_cast<bhttp::status>(unavailable ? auth.unavailable_status : auth.deny_status);
  beast::Response res = !unavailable && auth.deny_body
                            ? respond(status, version, *auth.deny_body, auth.deny_content_type)
                            : respond(status, version, verdict.body);
  beast::add_headers(verdict.headers, res);
  // The body's retry_after_ms for a proxy that writes its own 429 (examples/nginx).
  if (d.outcome == Outcome::kDenied)
    res.set("X-Pacer-Retry-After-Ms", std::to_string(http::ceil_milliseconds(d.retry_after)));
  res.set("X-Pacer-Outcome", std::string(to_string(d.outcome)));
  if (policies > 1) res.set("X-Pacer-Policy", p.config.policy.name());
  return res;
}

}  // namespace

// The policies are checked one after another in the order given, and the first denial answers:
// a request refused by a later policy has spent its token of the earlier ones, as with two
// auth_request checks in a row (docs/API.md). That is what a per-client limit in front of a
// per-key one wants: every attempt counts against the client, whichever key it brings.
void Service::auth(std::shared_ptr<const Runtime> runtime, std::string_view names,
                   const beast::Request& request, const beast::ClientEndpoint& connection,
                   beast::Send send) {
  const unsigned version = request.version();
  std::vector<const http::Rule*> rules;
  for (std::string_view rest = names;;) {
    const auto comma = rest.find(',');
    const std::string_view name = rest.substr(0, comma);
    const RuntimePolicy* p = runtime->find(name);
    if (p == nullptr) {
      log::warn("auth_unknown_policy", {{"policy", printable(name)}});
      send(error_response(bhttp::status::not_found, version, "unknown_policy", "policy",
                          "no policy '" + printable(name) + "'"));
      return;
    }
    if (std::find(rules.begin(), rules.end(), &p->rule) != rules.end() ||
        rules.size() == kMaxAuthPolicies) {
      send(error_response(bhttp::status::bad_request, version, "invalid_request", "policy",
                          "'" + printable(names) + "': at most " +
                              std::to_string(kMaxAuthPolicies) +
                              " policies, each named once, separated by ','"));
      return;
    }
    rules.push_back(&p->rule);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  const beast::BeastRequestView view(request, connection);
  const Runtime& rt = *runtime;
  const std::size_t count = rules.size();
  // The completion holds the runtime, which owns the rules.
  http::decide(rt.limiter, rules, view, runtime,
               [runtime, count, version, send = std::move(send)](http::Verdict&& verdict) mutable {
                 guarded(send, version, [&] { send(answer(*runtime, count, verdict, version)); });
               });
}

}  // namespace pacer::pacerd
