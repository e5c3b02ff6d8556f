#include "pacer/beast/request_view.h"

#include <algorithm>

namespace pacer::beast {
namespace {

std::string_view to_std(boost::beast::string_view s) { return {s.data(), s.size()}; }
boost::beast::string_view to_beast(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

BeastRequestView::BeastRequestView(const Request& request, const ClientEndpoint& client)
    : request_(request), client_(client), target_(to_std(request.target())) {
  // Absolute form ("http://host/path?q", sent to proxies): keep only the path and query.
  if (const auto scheme = target_.find("://");
      scheme != std::string_view::npos && target_.substr(0, 1) != "/") {
    const auto slash = target_.find_first_of("/?", scheme + 3);
    target_ = slash == std::string_view::npos ? std::string_view("/") : target_.substr(slash);
  }
  query_start_ = std::min(target_.find('?'), target_.size());
}

void BeastRequestView::set_attribute(std::string name, std::string value) {
  for (auto& [key, existing] : attributes_) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  attributes_.emplace_back(std::move(name), std::move(value));
}

std::string_view BeastRequestView::method() const { return to_std(request_.method_string()); }

std::string_view BeastRequestView::path() const { return target_.substr(0, query_start_); }

std::string_view BeastRequestView::query() const {
  return query_start_ < target_.size() ? target_.substr(query_start_ + 1) : std::string_view();
}

std::string_view BeastRequestView::peer_address() const { return client_.peer_address; }

const pacer::http::IpAddress* BeastRequestView::peer_ip() const {
  return client_.peer_ip ? &*client_.peer_ip : nullptr;
}

std::optional<std::string_view> BeastRequestView::header(std::string_view name) const {
  const auto it = request_.find(to_beast(name));
  if (it == request_.end()) return std::nullopt;
  return to_std(it->value());
}

std::string BeastRequestView::header_list(std::string_view name) const {
  std::string joined;
  const auto [first, last] = request_.equal_range(to_beast(name));
  for (auto it = first; it != last; ++it) {
    if (!joined.empty()) joined += ", ";
    joined += to_std(it->value());
  }
  return joined;
}

std::size_t BeastRequestView::header_count(std::string_view name) const {
  return request_.count(to_beast(name));
}

std::optional<std::string_view> BeastRequestView::attribute(std::string_view name) const {
  for (const auto& [key, value] : attributes_)
    if (key == name) return std::string_view(value);
  return std::nullopt;
}

}  // namespace pacer::beast
