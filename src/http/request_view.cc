#include "pacer/http/request_view.h"

#include "core/text.h"

namespace pacer::http {

bool iequals(std::string_view a, std::string_view b) { return pacer::internal::iequals(a, b); }

std::size_t RequestView::header_count(std::string_view name) const {
  const auto first = header(name);
  if (!first) return 0;
  return header_list(name).size() == first->size() ? 1 : 2;
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

std::size_t SimpleRequest::header_count(std::string_view name) const {
  std::size_t lines = 0;
  for (const auto& header : headers_)
    if (iequals(header.first, name)) ++lines;
  return lines;
}

std::optional<std::string_view> SimpleRequest::attribute(std::string_view name) const {
  if (auto it = attributes_.find(name); it != attributes_.end())
    return std::string_view(it->second);
  return std::nullopt;
}

}  // namespace pacer::http
