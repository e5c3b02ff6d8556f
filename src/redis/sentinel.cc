#include "sentinel.h"

#include <charconv>
#include <vector>

#include "core/text.h"

namespace pacer::redis::internal {
namespace {

using pacer::internal::parse_port;
using pacer::internal::printable;

// Host names and IP addresses: 1..255 printable bytes without spaces.
bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (const char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

bool is_text(const Reply& reply) {
  return reply.type == Reply::Type::kString || reply.type == Reply::Type::kStatus;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  return pacer::internal::iequals(a, b);
}

}  // namespace

MasterAddressResult parse_master_address(const Reply& reply) {
  MasterAddressResult result;
  switch (reply.type) {
    case Reply::Type::kNil:
      result.unknown_master = true;
      return result;
    case Reply::Type::kError:
      result.error = reply.str.empty() ? "an empty error reply" : reply.str;
      return result;
    case Reply::Type::kArray:
      break;
    default:
      result.error = "not an address (expected [host, port])";
      return result;
  }
  // Some proxies answer an unknown name with an empty array rather than nil.
  if (reply.elements.empty()) {
    result.unknown_master = true;
    return result;
  }
  if (reply.elements.size() != 2 || !is_text(reply.elements[0])) {
    result.error = "not an address (expected [host, port])";
    return result;
  }
  const Reply& port = reply.elements[1];
  std::optional<std::uint16_t> number;
  if (is_text(port)) {
    number = parse_port(port.str);
  } else if (port.type == Reply::Type::kInteger && port.integer > 0 && port.integer <= 65535) {
    number = static_cast<std::uint16_t>(port.integer);
  }
  if (!valid_host(reply.elements[0].str)) {
    result.error = "bad host '" + printable(reply.elements[0].str) + "' in the address";
    return result;
  }
  if (!number) {
    result.error = "bad port '" + printable(is_text(port) ? port.str : "?") + "'";
    return result;
  }
  result.address = MasterAddress{reply.elements[0].str, *number};
  return result;
}

std::optional<SwitchMaster> parse_switch_master(std::string_view payload) {
  std::vector<std::string_view> fields;
  std::size_t begin = 0;
  while (begin < payload.size()) {
    const auto space = payload.find(' ', begin);
    const auto end = space == std::string_view::npos ? payload.size() : space;
    if (end == begin) return std::nullopt;  // two spaces in a row, or a leading space
    if (fields.size() == 5) return std::nullopt;
    fields.push_back(payload.substr(begin, end - begin));
    if (space == std::string_view::npos) break;
    begin = space + 1;
    if (begin == payload.size()) return std::nullopt;  // a trailing space
  }
  if (fields.size() != 5) return std::nullopt;
  const auto from_port = parse_port(fields[2]);
  const auto to_port = parse_port(fields[4]);
  if (!from_port || !to_port || !valid_host(fields[1]) || !valid_host(fields[3]))
    return std::nullopt;
  return SwitchMaster{std::string(fields[0]),
                      {std::string(fields[1]), *from_port},
                      {std::string(fields[3]), *to_port}};
}

std::optional<PubSubPush> parse_pubsub_push(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty() || !is_text(reply.elements[0]))
    return std::nullopt;
  const std::string& kind = reply.elements[0].str;
  const auto& e = reply.elements;
  if (iequals_ascii(kind, "message")) {
    if (e.size() != 3 || !is_text(e[1]) || !is_text(e[2])) return std::nullopt;
    return PubSubPush{PubSubPush::Kind::kMessage, e[1].str, e[2].str};
  }
  if (iequals_ascii(kind, "subscribe")) {
    if (e.size() != 3 || !is_text(e[1]) || e[2].type != Reply::Type::kInteger) return std::nullopt;
    return PubSubPush{PubSubPush::Kind::kSubscribe, e[1].str, {}};
  }
  if (iequals_ascii(kind, "pong")) {
    if (e.size() > 2) return std::nullopt;
    return PubSubPush{PubSubPush::Kind::kPong, {}, {}};
  }
  return std::nullopt;
}

Role parse_role(const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty() || !is_text(reply.elements[0]))
    return Role::kUnknown;
  const std::string& role = reply.elements[0].str;
  if (role == "master") return Role::kMaster;
  if (role == "slave" || role == "replica") return Role::kReplica;
  if (role == "sentinel") return Role::kSentinel;
  return Role::kUnknown;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kMaster:
      return "master";
    case Role::kReplica:
      return "replica";
    case Role::kSentinel:
      return "sentinel";
    case Role::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace pacer::redis::internal
