// A Python policy compiled for one limiter (pacer._pacer.Rule): the http layer's Rule, through
// which the package builds every storage key (docs/DESIGN.md §7).
//
// The rule holds the app's key prefix, the policy, its identity (a built-in selector in
// http::Dialect::kFastApiPacer, or a Python function: FastAPI Pacer's untagged text), the scope
// kind in FastAPI Pacer's text ("GET:/path", "global"), what a request without the identity gets
// and whether the policy is a shadow one. The package compiles one per policy, limiter settings
// and app (python/pacer/limiter.py, Limiter._rule) and hands it to every Engine call.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pacer/http/rule.h"
#include "policy.h"

namespace pacer::python {

namespace py = pybind11;

// The scope part of the keys (Python: pacer._pacer.ScopeKind).
enum class ScopeKind : std::uint8_t {
  kPath,        // the path given (a route template, the concrete path, a scope_override)
  kMethodPath,  // "METHOD:path"
  kGlobal,      // "global"
};

// Raised (pacer._pacer.IdentityMissing) for a request without the rule's identity when the
// policy refuses such requests; nothing is spent.
struct IdentityMissingError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class CompiledRule {
 public:
  // `selector`: "ip", "api_key", "user", "org", or a function request -> identity (None or ""
  // when the request has none). `missing_identity`: "shared" or "refuse". Throws
  // std::invalid_argument naming a bad prefix, selector or missing_identity.
  CompiledRule(NativePolicy policy, const std::string& prefix, ScopeKind kind,
               const py::object& selector, std::string_view missing_identity);

  const NativePolicy& policy() const { return policy_; }
  const http::Rule& rule() const { return rule_; }

  // The storage key of `request`: an ASGI scope (a dict) or a request object, with `route` as
  // the scope's path part. When the request has no identity and the policy refuses such
  // requests: IdentityMissingError, or nullopt for a shadow policy, which never refuses and
  // skips the request uncounted (as http::decide skips a shadow rule).
  std::optional<std::string> key(const py::object& request, std::string_view route) const;
  // The storage key for a scope and an identity given as text.
  std::string key(std::string_view scope, std::string_view identity) const {
    return rule_.key(scope, identity);
  }

 private:
  NativePolicy policy_;
  http::Rule rule_;
};

// What the package's built-in selector `name` ("ip", "api_key", "user", "org") answers for a
// request object: the identity, or the selector's shared name (pacer.selectors' functions).
std::string select_identity(std::string_view name, const py::object& request);

// The trusted proxies and headers of the "ip" selector (pacer.selectors.DEFAULT_TRUSTED_PROXIES).
inline constexpr std::string_view kDefaultTrustedProxies = "loopback, private";

}  // namespace pacer::python
