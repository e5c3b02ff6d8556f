#include "pacer/http/identity.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "pacer/detail/text.h"

namespace pacer::http {
namespace {

constexpr std::size_t kMaxIdentityBytes = 128;

bool needs_hash(std::string_view value) {
  if (value.size() > kMaxIdentityBytes) return true;
  for (unsigned char c : value)
    if (c == '{' || c == '}' || c < 0x20 || c == 0x7f) return true;
  return false;
}

std::string tagged(std::string_view tag, std::string_view value) {
  std::string out;
  out.reserve(tag.size() + 1 + value.size());
  out.append(tag).append(":").append(value);
  return out;
}

}  // namespace

using detail::trim;

std::string hash_identity(std::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is unavailable in this OpenSSL build");
  return "h:" + detail::to_hex(digest, 16);
}

std::string sanitize_identity(std::string_view value) {
  return needs_hash(value) ? hash_identity(value) : std::string(value);
}

Identity Identity::client_ip(ClientIpOptions options) {
  if (options.ipv6_prefix < 0 || options.ipv6_prefix > 128)
    throw std::invalid_argument("invalid IPv6 prefix '" + std::to_string(options.ipv6_prefix) +
                                "': must be 0..128");
  return Identity([options = std::move(options)](const RequestView& request) {
    const auto ip = http::client_ip(request, options);
    return std::optional<std::string>(ip ? tagged("ip", ip->to_string()) : "ip:unknown");
  });
}

Identity Identity::api_key() {
  return Identity([](const RequestView& request) -> std::optional<std::string> {
    if (auto key = request.header("X-API-Key"); key && !trim(*key).empty())
      return tagged("key", hash_identity(trim(*key)));
    if (auto auth = request.header("Authorization")) {
      const std::string_view value = trim(*auth);
      constexpr std::string_view kBearer = "bearer ";
      if (value.size() > kBearer.size() && iequals(value.substr(0, kBearer.size()), kBearer)) {
        const std::string_view token = trim(value.substr(kBearer.size()));
        if (!token.empty()) return tagged("key", hash_identity(token));
      }
    }
    return std::nullopt;
  });
}

Identity Identity::header(std::string name, bool hashed) {
  if (name.empty()) throw std::invalid_argument("invalid identity header '': name is empty");
  return Identity(
      [name = std::move(name), hashed](const RequestView& request) -> std::optional<std::string> {
        const auto value = request.header(name);
        if (!value || trim(*value).empty()) return std::nullopt;
        const std::string_view v = trim(*value);
        return tagged("hdr", hashed ? hash_identity(v) : sanitize_identity(v));
      });
}

Identity Identity::attribute(std::string name) {
  if (name.empty()) throw std::invalid_argument("invalid identity attribute '': name is empty");
  return Identity(
      [name = std::move(name)](const RequestView& request) -> std::optional<std::string> {
        const auto value = request.attribute(name);
        if (!value || value->empty()) return std::nullopt;
        return tagged(name, sanitize_identity(*value));
      });
}

Identity Identity::user() { return attribute("user"); }
Identity Identity::org() { return attribute("org"); }

Identity Identity::custom(std::string tag, Function function) {
  if (tag.empty() || needs_hash(tag))
    throw std::invalid_argument("invalid identity tag '" + detail::printable(tag) +
                                "': must be short and printable");
  if (!function) throw std::invalid_argument("invalid identity '" + tag + "': function is empty");
  return Identity([tag = std::move(tag), function = std::move(function)](
                      const RequestView& request) -> std::optional<std::string> {
    auto value = function(request);
    if (!value || value->empty()) return std::nullopt;
    return tagged(tag, sanitize_identity(*value));
  });
}

Identity Identity::first_of(std::vector<Identity> selectors) {
  if (selectors.empty()) throw std::invalid_argument("invalid identity: first_of needs selectors");
  return Identity([selectors = std::move(selectors)](const RequestView& request) {
    for (const Identity& selector : selectors)
      if (auto id = selector(request)) return id;
    return std::optional<std::string>{};
  });
}

Identity Identity::all_of(std::vector<Identity> selectors) {
  if (selectors.empty()) throw std::invalid_argument("invalid identity: all_of needs selectors");
  return Identity(
      [selectors = std::move(selectors)](const RequestView& request) -> std::optional<std::string> {
        std::string joined;
        for (const Identity& selector : selectors) {
          auto id = selector(request);
          if (!id) return std::nullopt;
          if (!joined.empty()) joined += '|';
          joined += *id;
        }
        return sanitize_identity(joined);
      });
}

}  // namespace pacer::http
