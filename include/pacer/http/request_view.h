// pacer/http/request_view.h — what the HTTP layer may know about a request, framework-neutral.
//
// Adapters implement RequestView over their own request type (see pacer/beast); tests and
// synchronous frameworks can use SimpleRequest. Header names are case-insensitive.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pacer::http {

class IpAddress;  // pacer/http/ip.h

class RequestView {
 public:
  virtual ~RequestView() = default;

  virtual std::string_view method() const = 0;
  // The path without the query string, e.g. "/items/42".
  virtual std::string_view path() const = 0;
  virtual std::string_view query() const = 0;
  // The value of a query parameter, percent-decoded ('+' is a space); the last one when it is
  // repeated (as Starlette's query_params.get); nullopt when absent. The default reads query().
  virtual std::optional<std::string> query_parameter(std::string_view name) const;
  // The socket peer's IP address as text ("127.0.0.1", "::1"), without port.
  virtual std::string_view peer_address() const = 0;
  // The same address already parsed, when the adapter has it (pacer::beast parses it once per
  // connection), so the client-IP identity does not parse the text on every request. nullptr,
  // the default, means "parse peer_address()". When set, it must equal
  // IpAddress::parse(peer_address()) and live as long as the view.
  virtual const IpAddress* peer_ip() const { return nullptr; }
  // First value of a header, or nullopt when absent.
  virtual std::optional<std::string_view> header(std::string_view name) const = 0;
  // Every value of a repeatable list header (X-Forwarded-For, Forwarded), in order, joined
  // with ", "; empty when absent.
  virtual std::string header_list(std::string_view name) const = 0;
  // How many lines of the header the request has: 0 when absent, 1, or more when repeated.
  // The client-IP walk reads a single line in place and joins only repeated ones. The default
  // asks header() and header_list(), which copies; adapters that can count lines without
  // copying override it (the default says 2 for any repetition that carries a value).
  virtual std::size_t header_count(std::string_view name) const;
  // Values set by earlier middleware, e.g. "user" and "org".
  virtual std::optional<std::string_view> attribute(std::string_view name) const = 0;
  // The matched route template ("/items/{id}") when the framework knows it, else the path.
  virtual std::string_view route() const { return path(); }
};

bool iequals(std::string_view a, std::string_view b);

// A RequestView that owns its data; handy for tests and for frameworks without a view.
struct SimpleRequest final : RequestView {
  std::string method_ = "GET";
  std::string path_ = "/";
  std::string query_;
  std::string peer_ = "127.0.0.1";
  std::vector<std::pair<std::string, std::string>> headers_;
  std::map<std::string, std::string, std::less<>> attributes_;
  std::string route_;

  std::string_view method() const override { return method_; }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  std::string_view peer_address() const override { return peer_; }
  std::optional<std::string_view> header(std::string_view name) const override;
  std::string header_list(std::string_view name) const override;
  std::size_t header_count(std::string_view name) const override;
  std::optional<std::string_view> attribute(std::string_view name) const override;
  std::string_view route() const override { return route_.empty() ? path() : route_; }
};

}  // namespace pacer::http
