// The request as the Python extension sees it (see request_view.h).
#include "request_view.h"

#include <algorithm>

namespace pacer::python {
namespace {

// The bytes of a bytes object (ASGI's form) or the UTF-8 of a str; `object` must outlive the
// view.
std::string_view text_of(const py::object& object) {
  if (PyBytes_Check(object.ptr())) {
    return {PyBytes_AS_STRING(object.ptr()),
            static_cast<std::size_t>(PyBytes_GET_SIZE(object.ptr()))};
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(object.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return {data, static_cast<std::size_t>(size)};
}

}  // namespace

std::optional<std::string_view> PairsView::header(std::string_view name) const {
  for (const auto& [n, v] : headers_)
    if (http::iequals(n, name)) return std::string_view(v);
  return std::nullopt;
}

std::string PairsView::header_list(std::string_view name) const {
  std::string out;
  for (const auto& [n, v] : headers_)
    if (http::iequals(n, name)) out.append(out.empty() ? "" : ", ").append(v);
  return out;
}

std::size_t PairsView::header_count(std::string_view name) const {
  return static_cast<std::size_t>(
      std::count_if(headers_.begin(), headers_.end(),
                    [&](const auto& h) { return http::iequals(h.first, name); }));
}

ClientIp::ClientIp(const std::string& trusted, std::vector<std::string> headers, int ipv6_prefix) {
  options_.trusted_proxies = http::TrustedProxies::parse(trusted);
  options_.headers = std::move(headers);
  options_.ipv6_prefix = ipv6_prefix;
  options_.validate();
}

std::string ClientIp::resolve(const std::optional<std::string>& peer, const HeaderPairs& headers,
                              const std::string& missing) const {
  if (!peer) return missing;
  const auto ip = http::client_ip(PairsView(*peer, headers), options_);
  return ip ? ip->to_string() : *peer;
}

std::string ClientIp::resolve_scope(const py::object& client, const py::iterable& raw_headers,
                                    const std::string& missing) const {
  if (client.is_none()) return missing;
  const std::string peer = py::cast<std::string>(client[py::int_(0)]);
  HeaderPairs wanted;
  for (const py::handle item : raw_headers) {
    const auto pair = py::reinterpret_borrow<py::sequence>(item);
    const py::object name_object = pair[0];
    const std::string_view name = text_of(name_object);
    // Proxy headers are rare: most requests compare a few names and copy nothing.
    for (const auto& h : options_.headers) {
      if (http::iequals(name, h)) {
        const py::object value = pair[1];
        wanted.emplace_back(std::string(name), std::string(text_of(value)));
        break;
      }
    }
  }
  return resolve(peer, wanted, missing);
}

}  // namespace pacer::python
