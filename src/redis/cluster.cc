#include "cluster.h"

#include <array>
#include <charconv>

#include "core/text.h"

namespace pacer::redis::internal {
namespace {

constexpr std::array<std::uint16_t, 256> make_crc16_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    unsigned crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = static_cast<std::uint16_t>(crc);
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kCrc16Table = make_crc16_table();

bool unknown_host(const Reply& host) {
  return host.type == Reply::Type::kNil || host.str.empty() || host.str == "?";
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (const char c : data) {
    const auto index = static_cast<std::uint8_t>((crc >> 8) ^ static_cast<std::uint8_t>(c));
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[index]);
  }
  return crc;
}

std::uint16_t hash_slot(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) & (kSlotCount - 1));
}

SlotMapResult parse_cluster_slots(const Reply& reply, std::string_view default_host) {
  SlotMapResult result;
  if (reply.type == Reply::Type::kError) {
    result.error = reply.str;
    return result;
  }
  if (reply.type != Reply::Type::kArray) {
    result.error = "CLUSTER SLOTS did not return an array";
    return result;
  }
  for (const Reply& entry : reply.elements) {
    // [first, last, [host, port, id, ...], replicas...]
    if (entry.type != Reply::Type::kArray || entry.elements.size() < 3 ||
        entry.elements[0].type != Reply::Type::kInteger ||
        entry.elements[1].type != Reply::Type::kInteger ||
        entry.elements[2].type != Reply::Type::kArray || entry.elements[2].elements.size() < 2 ||
        entry.elements[2].elements[1].type != Reply::Type::kInteger) {
      result.error = "malformed CLUSTER SLOTS entry";
      result.ranges.clear();
      return result;
    }
    const std::int64_t first = entry.elements[0].integer;
    const std::int64_t last = entry.elements[1].integer;
    const Reply& host = entry.elements[2].elements[0];
    const std::int64_t port = entry.elements[2].elements[1].integer;
    if (first < 0 || last < first || last >= static_cast<std::int64_t>(kSlotCount) || port <= 0 ||
        port > 65535 || (host.type != Reply::Type::kString && host.type != Reply::Type::kNil)) {
      result.error = "CLUSTER SLOTS entry out of range";
      result.ranges.clear();
      return result;
    }
    result.ranges.push_back({static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last),
                             unknown_host(host) ? std::string(default_host) : host.str,
                             static_cast<std::uint16_t>(port)});
  }
  if (result.ranges.empty()) result.error = "CLUSTER SLOTS returned no slots";
  return result;
}

std::optional<Redirect> parse_redirect(const Reply& reply, std::string_view default_host) {
  if (reply.type != Reply::Type::kError) return std::nullopt;
  Redirect redirect;
  std::string_view text = reply.str;
  if (text.starts_with("MOVED ")) {
    redirect.kind = Redirect::Kind::kMoved;
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    redirect.kind = Redirect::Kind::kAsk;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view slot_text = text.substr(0, space);
  unsigned slot = 0;
  const auto [end, ec] =
      std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot >= kSlotCount)
    return std::nullopt;
  redirect.slot = static_cast<std::uint16_t>(slot);

  std::string_view endpoint = text.substr(space + 1);
  const auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = pacer::internal::parse_port(endpoint.substr(colon + 1));
  if (!port) return std::nullopt;
  redirect.port = *port;
  std::string_view host = endpoint.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  redirect.host = host.empty() || host == "?" ? std::string(default_host) : std::string(host);
  return redirect;
}

std::string endpoint_name(std::string_view host, std::uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.append("[").append(host).append("]");
  } else {
    out.append(host);
  }
  out.append(":").append(std::to_string(port));
  return out;
}

}  // namespace pacer::redis::internal
