// pacer/beast/message.h — the types a pacer::beast handler works with: the request, the
// response, the Send that answers, and who the client is.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "pacer/detail/unique_function.h"
#include "pacer/http/ip.h"

namespace pacer::beast {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// Completes a request. May be called later and from any thread; call exactly once (further calls
// are ignored). Destroying it without calling it answers 500 and logs an error.
using Send = pacer::detail::UniqueFunction<void(Response&&)>;

// Who sent the request: the other end of the HTTP connection (not to be confused with the
// connections a Redis store keeps), and the worker thread that serves it.
struct ClientEndpoint {
  std::string peer_address;  // textual IP, no port; IPv4-mapped IPv6 addresses as plain IPv4
  std::uint16_t peer_port = 0;
  // Index of the worker thread (0 .. threads - 1) that owns the connection; lets a handler pick
  // per-thread state without locking. See Server::io_context().
  unsigned worker = 0;
  // peer_address parsed, once per connection (the server sets it; RequestView::peer_ip).
  // Left empty, the HTTP layer parses peer_address for each request instead.
  std::optional<http::IpAddress> peer_ip;
};

// The name before ClientEndpoint.
using Connection [[deprecated("renamed pacer::beast::ClientEndpoint")]] = ClientEndpoint;

using Handler = std::function<void(Request&& request, const ClientEndpoint& client, Send send)>;

}  // namespace pacer::beast
