// The request as the Python extension (pacer._pacer) sees it: RequestViews over an ASGI scope
// and over a request object (a Starlette Request, or any object with FastAPI Pacer's attributes),
// over header pairs, and the client address through trusted proxies (ClientIp) for the
// package's extractors. The rules themselves are the http layer's (pacer/http/identity.h,
// pacer/http/ip.h); this only adapts Python's objects to them.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <forward_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pacer/http/ip.h"
#include "pacer/http/request_view.h"

namespace pacer::python {

namespace py = pybind11;

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

// A RequestView over header pairs handed over by Python (a selector reading a duck-typed
// request) or over an ASGI scope's raw headers. Holds references: `peer` and `headers` must
// outlive it.
class PairsView final : public http::RequestView {
 public:
  PairsView(std::string_view peer, const HeaderPairs& headers) : peer_(peer), headers_(headers) {}
  std::string_view method() const override { return "GET"; }
  std::string_view path() const override { return "/"; }
  std::string_view query() const override { return {}; }
  std::string_view peer_address() const override { return peer_; }
  std::optional<std::string_view> header(std::string_view name) const override;
  std::string header_list(std::string_view name) const override;
  std::size_t header_count(std::string_view name) const override;
  std::optional<std::string_view> attribute(std::string_view) const override {
    return std::nullopt;
  }

 private:
  std::string_view peer_;
  const HeaderPairs& headers_;
};

// A Python request seen by the http layer's rules. `route` is the scope text the package chose
// for the request (a route template, the concrete path, or a scope_override). attribute("user")
// and attribute("org") are read where FastAPI Pacer's selectors read them: request.state.user_id
// (when true), request.state.user.id, request.user.id; request.state.org_id or
// .organization_id (when true), request.state.org.id. Only for the duration of one call, under
// the GIL: the views borrow the Python objects' text.
class PyRequestView : public http::RequestView {
 public:
  explicit PyRequestView(std::string_view route) : route_(route) {}
  std::string_view route() const override { return route_; }
  std::string_view path() const override { return route_; }
  std::optional<std::string_view> attribute(std::string_view name) const override;
  // The request as a Python object, for selector functions (a Starlette Request over a scope).
  virtual py::object request() const = 0;

 protected:
  // request.state and request.user, or None.
  virtual py::object state() const = 0;
  virtual py::object user() const = 0;
  // Keeps text the view hands out for as long as the view lives.
  std::string_view keep(std::string text) const { return kept_.emplace_front(std::move(text)); }

 private:
  std::string_view route_;
  // A forward_list: nothing allocated for a view that keeps nothing (the usual scope), and
  // the strings never move.
  mutable std::forward_list<std::string> kept_;
};

// An ASGI scope (the middleware's and the dependency's requests): method, client, raw headers,
// query_string, "state" and "user" read from the dict.
class ScopeView final : public PyRequestView {
 public:
  ScopeView(const py::dict& scope, std::string_view route);
  std::string_view method() const override { return method_; }
  std::string_view query() const override { return query_; }
  std::string_view peer_address() const override { return peer_; }
  std::optional<std::string_view> header(std::string_view name) const override;
  std::string header_list(std::string_view name) const override;
  std::size_t header_count(std::string_view name) const override;
  py::object request() const override;

 protected:
  py::object state() const override;
  py::object user() const override;

 private:
  // scope["headers"] as (name, value) text, read once on the first header lookup: the
  // views point into the scope's bytes objects.
  const std::vector<std::pair<std::string_view, std::string_view>>& headers() const;

  const py::dict& scope_;
  std::string_view method_;
  std::string_view query_;
  std::string_view peer_;
  mutable std::optional<std::vector<std::pair<std::string_view, std::string_view>>> headers_;
};

// Any request object (check_policy's, the selector functions'): FastAPI Pacer's attributes
// only (request.headers.get with the exact header spellings, .client.host, .query_params.get,
// .method, .state, .user), so tests' mocks with plain dicts work. Header text is the bytes
// Starlette decoded (Latin-1), other text UTF-8.
class ObjectView final : public PyRequestView {
 public:
  ObjectView(py::object request, std::string_view route);
  std::string_view method() const override { return method_; }
  std::string_view query() const override { return {}; }
  std::optional<std::string> query_parameter(std::string_view name) const override;
  std::string_view peer_address() const override { return peer_; }
  std::optional<std::string_view> header(std::string_view name) const override;
  std::string header_list(std::string_view name) const override;
  py::object request() const override { return request_; }

 protected:
  py::object state() const override;
  py::object user() const override;

 private:
  py::object request_;
  py::object headers_;
  std::string_view method_ = "GET";
  std::string_view peer_;
};

// The client address of a request: its peer, or what trusted proxies say in the configured
// headers (pacer.extractors).
class ClientIp {
 public:
  // `trusted`: the proxies' networks as TrustedProxies::parse reads them. Throws (ValueError in
  // Python) naming a network or an ipv6_prefix that it refuses.
  ClientIp(const std::string& trusted, std::vector<std::string> headers, int ipv6_prefix);

  // The client address; a peer that is not an IP address is returned as it is, no peer at all
  // gives `missing`.
  std::string resolve(const std::optional<std::string>& peer, const HeaderPairs& headers,
                      const std::string& missing) const;

  std::string trusted() const { return options_.trusted_proxies.to_string(); }

 private:
  http::ClientIpOptions options_;
};

}  // namespace pacer::python
