// pacer/beast/request_view.h — a Beast request as the pacer HTTP layer sees it.
//
//   pacer::beast::BeastRequestView view(request, client);
//   view.set_attribute("user", "u42");  // for Identity::user()
//   http_limiter.check(view, ...);
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pacer/beast/message.h"
#include "pacer/http/request_view.h"

namespace pacer::beast {

// A RequestView over a Beast request. Holds references; the request and client must outlive it.
class BeastRequestView final : public pacer::http::RequestView {
 public:
  BeastRequestView(const Request& request, const ClientEndpoint& client);

  // Values for attribute(), e.g. the user or org found by an authentication step.
  void set_attribute(std::string name, std::string value);

  std::string_view method() const override;
  std::string_view path() const override;   // the target without "?query"
  std::string_view query() const override;  // after the first '?', empty when none
  std::string_view peer_address() const override;
  const pacer::http::IpAddress* peer_ip() const override;  // the client's, when set
  std::optional<std::string_view> header(std::string_view name) const override;
  std::string header_list(std::string_view name) const override;
  std::size_t header_count(std::string_view name) const override;
  std::optional<std::string_view> attribute(std::string_view name) const override;

 private:
  const Request& request_;
  const ClientEndpoint& client_;
  std::string_view target_;
  std::size_t query_start_;  // index of '?' in target_, or target_.size()
  std::vector<std::pair<std::string, std::string>> attributes_;
};

}  // namespace pacer::beast
