// The request as the Python extension (pacer._pacer) sees it: a RequestView over header pairs,
// and the client address through trusted proxies (ClientIp), for the package's selectors and
// for the middleware's ASGI scope. The rules themselves are the http layer's
// (pacer/http/ip.h); this only adapts Python's objects to them.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
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

// The client address of a request: its peer, or what trusted proxies say in the configured
// headers (pacer.extractors, pacer.selectors).
class ClientIp {
 public:
  // `trusted`: the proxies' networks as TrustedProxies::parse reads them. Throws (ValueError in
  // Python) naming a network or an ipv6_prefix that it refuses.
  ClientIp(const std::string& trusted, std::vector<std::string> headers, int ipv6_prefix);

  // The client address; a peer that is not an IP address is returned as it is, no peer at all
  // gives `missing`.
  std::string resolve(const std::optional<std::string>& peer, const HeaderPairs& headers,
                      const std::string& missing) const;

  // The same over an ASGI scope: scope["client"] ((host, port) or None) and scope["headers"]
  // (an iterable of [name, value] byte strings). Only the configured headers are copied.
  std::string resolve_scope(const py::object& client, const py::iterable& raw_headers,
                            const std::string& missing) const;

  std::string trusted() const { return options_.trusted_proxies.to_string(); }

 private:
  http::ClientIpOptions options_;
};

}  // namespace pacer::python
