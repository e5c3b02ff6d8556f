// A Python policy compiled for one limiter (see rule.h).
#include "rule.h"

#include <stdexcept>

#include "request_view.h"

namespace pacer::python {
namespace {

// FastAPI Pacer's "ip" selector: its three headers, believed from loopback and private
// networks only (docs/SECURITY.md).
http::ClientIpOptions seed_ip_options() {
  http::ClientIpOptions options;
  options.trusted_proxies = http::TrustedProxies::parse(std::string(kDefaultTrustedProxies));
  options.headers = {"CF-Connecting-IP", "X-Real-IP", "X-Forwarded-For"};
  return options;
}

// The built-in selectors: FastAPI Pacer's names read by the http layer's grammar
// (Identity::parse; "ip" is its "client_ip"), in FastAPI Pacer's dialect.
const http::Identity& builtin(std::string_view name) {
  static const auto parse = [](std::string_view text) {
    return http::Identity::parse(text, seed_ip_options(), http::Dialect::kFastApiPacer);
  };
  static const http::Identity ip = parse("client_ip");
  static const http::Identity api_key = parse("api_key");
  static const http::Identity user = parse("user");
  static const http::Identity org = parse("org");
  if (name == "ip") return ip;
  if (name == "api_key") return api_key;
  if (name == "user") return user;
  if (name == "org") return org;
  throw std::invalid_argument("Unknown selector: " + std::string(name) +
                              ". Available: ['ip', 'api_key', 'user', 'org']");
}

// A selector function: called with the request object (a Starlette Request for an ASGI scope);
// None or "" means the request has no identity, anything else is its str(). Exceptions
// propagate to the caller of the check.
http::Identity function_identity(const py::object& function) {
  // Held by a Rule that only Python owns (the package's rule cache): destroyed under the GIL.
  return http::Identity::custom(
      "fn",
      [function](const http::RequestView& view) -> std::optional<std::string> {
        const auto& request = dynamic_cast<const PyRequestView&>(view);
        const py::object value = function(request.request());
        if (value.is_none()) return std::nullopt;
        return py::str(value).cast<std::string>();
      },
      http::Dialect::kFastApiPacer);
}

http::Scope scope_of(ScopeKind kind) {
  switch (kind) {
    case ScopeKind::kMethodPath:
      return http::Scope::kMethodRoute;
    case ScopeKind::kGlobal:
      return http::Scope::kApp;
    case ScopeKind::kPath:
      break;
  }
  return http::Scope::kRoute;
}

// A selector as the package accepts it: a built-in name or a function (pacer.selectors'
// get_selector; its TypeError text).
const py::object& checked(const py::object& selector) {
  if (!PyUnicode_Check(selector.ptr()) && !PyCallable_Check(selector.ptr())) {
    throw py::type_error("Selector must be string or callable, got " +
                         py::str(py::type::of(selector)).cast<std::string>());
  }
  return selector;
}

}  // namespace

CompiledRule::CompiledRule(NativePolicy policy, const std::string& prefix, ScopeKind kind,
                           const py::object& selector, std::string_view missing_identity)
    : policy_(std::move(policy)),
      rule_(
          http::LimitRule{
              .policy = policy_.policy,
              .identity = PyUnicode_Check(checked(selector).ptr())
                              ? builtin(selector.cast<std::string>())
                              : function_identity(selector),
              .scope = scope_of(kind),
              .missing_identity = http::parse_missing_identity(missing_identity),
              .shadow = policy_.shadow,
          },
          http::RuleContext{.key_prefix = prefix, .dialect = http::Dialect::kFastApiPacer}) {}

namespace {
constexpr std::size_t kUsualKeyBytes = 160;
}  // namespace

std::optional<std::string> CompiledRule::key(const py::object& request,
                                             std::string_view route) const {
  std::string key;
  // One allocation for the usual key (prefix, policy, route and identity: well under this),
  // instead of a few as it grows.
  key.reserve(kUsualKeyBytes);
  const bool found = PyDict_Check(request.ptr())
                         ? rule_.append_key(key, ScopeView(request.cast<py::dict>(), route))
                         : rule_.append_key(key, ObjectView(request, route));
  if (found) return key;
  if (policy_.shadow) return std::nullopt;
  throw IdentityMissingError("identity missing for policy " + policy_.policy.name());
}

std::string select_identity(std::string_view name, const py::object& request) {
  const http::Identity& identity = builtin(name);
  const ObjectView view(request, "/");
  // The functions answer FastAPI Pacer's text, str(id) and a peer that is not an address as
  // they are; keys hold the sanitised form (the rule's), which storage keys make of them too.
  if (name == "user" || name == "org") {
    const auto value = view.attribute(name);
    return std::string(value && !value->empty() ? *value : identity.shared_name());
  }
  std::string out;
  if (!identity.append_to(view, out)) return std::string(identity.shared_name());
  if (name == "ip" && out.starts_with("h:")) return std::string(view.peer_address());
  return out;
}

}  // namespace pacer::python
