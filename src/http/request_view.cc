#include "pacer/http/request_view.h"

#include "core/text.h"

namespace pacer::http {

bool iequals(std::string_view a, std::string_view b) { return pacer::internal::iequals(a, b); }

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
  if (auto it = attributes_.find(name); it != attributes_.end())
    return std::string_view(it->second);
  return std::nullopt;
}

}  // namespace pacer::http
