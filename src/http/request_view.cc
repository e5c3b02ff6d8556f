#include "pacer/http/request_view.h"

#include "core/text.h"

namespace pacer::http {

bool iequals(std::string_view a, std::string_view b) { return pacer::internal::iequals(a, b); }

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded: '+' is a space, "%XX" a byte; a '%' not followed by two
// hex digits stays as it is (as Python's unquote_plus). The bytes are kept as they decode.
std::string form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
               hex_digit(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> RequestView::query_parameter(std::string_view name) const {
  std::optional<std::string> found;
  std::string_view rest = query();
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    if (form_decode(pair.substr(0, eq)) != name) continue;
    found = eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
  }
  return found;
}

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
