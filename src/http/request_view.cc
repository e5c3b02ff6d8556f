#include "pacer/http/request_view.h"

namespace pacer::http {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::optional<std::string_view> SimpleRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers_)
    if (iequals(key, name)) return std::string_view(value);
  return std::nullopt;
}

std::string SimpleRequest::header_list(std::string_view name) const {
  std::string joined;
  for (const auto& [key, value] : headers_) {
    if (!iequals(key, name)) continue;
    if (!joined.empty()) joined += ", ";
    joined += value;
  }
  return joined;
}

std::optional<std::string_view> SimpleRequest::attribute(std::string_view name) const {
  if (auto it = attributes_.find(name); it != attributes_.end()) return std::string_view(it->second);
  return std::nullopt;
}

}  // namespace pacer::http
