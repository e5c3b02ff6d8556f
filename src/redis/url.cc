#include "pacer/redis/url.h"

#include <charconv>
#include <limits>
#include <stdexcept>

#include "core/text.h"

namespace pacer::redis {
namespace {

constexpr std::uint16_t kDefaultPort = 6379;
constexpr std::uint16_t kDefaultSentinelPort = 26379;
constexpr std::string_view kSchemes =
    "redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or "
    "rediss+sentinel://";

using pacer::internal::iequals;
using pacer::internal::parse_port;
using pacer::internal::printable;

[[noreturn]] void fail(std::string_view url, const std::string& what) {
  throw std::invalid_argument("invalid Redis URL '" + printable(mask_redis_url(url)) +
                              "': " + what);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view url, std::string_view text, const char* what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const bool complete = i + 2 < text.size();
    const int hi = complete ? hex_value(text[i + 1]) : -1;
    const int lo = complete ? hex_value(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) fail(url, std::string("bad percent-escape in the ") + what);
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::pair<std::string, std::uint16_t> parse_host(std::string_view url, std::string_view text,
                                                 std::uint16_t default_port) {
  if (text.empty()) fail(url, "missing host");
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) fail(url, "'[' without ']' around an IPv6 address");
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') fail(url, "unexpected text after ']'");
      port = rest.substr(1);
      if (port.empty()) fail(url, "empty port");
    }
    if (host.find(':') == std::string_view::npos) fail(url, "brackets are for IPv6 addresses");
  } else {
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      if (port.find(':') != std::string_view::npos)
        fail(url, "an IPv6 address must be written in brackets, e.g. [::1]:6379");
      if (port.empty()) fail(url, "empty port");
    }
  }
  if (host.empty()) fail(url, "missing host");
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '[' || c == ']' || c == '@' || c == '?' || c == '#' ||
        c == '%' || c == '/')
      fail(url, "invalid character in host '" + printable(host) + "'");
  }
  std::uint16_t port_number = default_port;
  if (!port.empty()) {
    const auto parsed = parse_port(port);
    if (!parsed) fail(url, "port '" + printable(port) + "' is not a number from 1 to 65535");
    port_number = *parsed;
  }
  return {std::string(host), port_number};
}

// Where the value of a `sentinel_password=` query parameter starts (npos: none).
std::size_t sentinel_password_value(std::string_view url) {
  static constexpr std::string_view kKey = "sentinel_password=";
  for (std::size_t i = 0; i + kKey.size() <= url.size(); ++i) {
    if ((i == 0 || url[i - 1] == '?' || url[i - 1] == '&') &&
        iequals(url.substr(i, kKey.size()), kKey))
      return i + kKey.size();
  }
  return std::string_view::npos;
}

int parse_db(std::string_view url, std::string_view path) {
  int db = 0;
  const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
  if (!is_digits(path) || ec != std::errc() || end != path.data() + path.size())
    fail(url, "database '" + printable(path) + "' is not a number from 0 up");
  return db;
}

// `sentinel_password=...&sentinel_username=...`, values percent-decoded.
void parse_query(std::string_view url, std::string_view query, RedisUrl& out) {
  bool have_password = false;
  bool have_username = false;
  std::size_t begin = 0;
  while (begin <= query.size()) {
    const auto amp = query.find('&', begin);
    const std::string_view item =
        query.substr(begin, amp == std::string_view::npos ? amp : amp - begin);
    const auto eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (iequals(key, "sentinel_password")) {
      if (have_password) fail(url, "sentinel_password given twice");
      have_password = true;
      out.sentinel_password = percent_decode(url, value, "sentinel_password");
      if (out.sentinel_password.empty()) fail(url, "empty sentinel_password");
    } else if (iequals(key, "sentinel_username")) {
      if (have_username) fail(url, "sentinel_username given twice");
      have_username = true;
      out.sentinel_username = percent_decode(url, value, "sentinel_username");
    } else {
      fail(url, "unknown query parameter '" + printable(key) +
                    "': expected sentinel_password or sentinel_username");
    }
    if (amp == std::string_view::npos) break;
    begin = amp + 1;
  }
  if (!out.sentinel_username.empty() && out.sentinel_password.empty())
    fail(url, "sentinel_username needs sentinel_password");
}

// Master names go into the path: everything but unreserved characters is percent-encoded.
std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace

std::string mask_redis_url(std::string_view url) {
  // A sentinel password in the query is masked to the end of the URL (an unescaped '&' in it
  // must not reveal its tail); an '@' inside it does not count as the end of a user part.
  std::string_view tail;
  if (const auto value = sentinel_password_value(url); value != std::string_view::npos) {
    tail = "***";
    url = url.substr(0, value);
  }
  // Mask from the first ':' after the scheme to the last '@': a password with unescaped '/',
  // '?' or '@' still ends up masked entirely, whatever else is wrong with the URL.
  const auto scheme_end = url.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const auto at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url) + std::string(tail);
  const auto colon = url.find(':', start);
  std::string out(url.substr(0, start));
  if (colon != std::string_view::npos && colon < at) {
    out.append(url.substr(start, colon + 1 - start));
  }
  // Without a ':' the whole user part is masked: `redis://secret@host` is a common mistake.
  out.append("***");
  out.append(url.substr(at));
  out.append(tail);
  return out;
}

RedisUrl parse_redis_url(std::string_view url) {
  RedisUrl out;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) fail(url, "expected " + std::string(kSchemes));
  const std::string_view scheme = url.substr(0, scheme_end);
  if (iequals(scheme, "redis")) {
  } else if (iequals(scheme, "rediss")) {
    out.tls = true;
  } else if (iequals(scheme, "redis+cluster")) {
    out.cluster = true;
  } else if (iequals(scheme, "rediss+cluster")) {
    out.tls = out.cluster = true;
  } else if (iequals(scheme, "redis+sentinel")) {
    out.sentinel = true;
  } else if (iequals(scheme, "rediss+sentinel")) {
    out.tls = out.sentinel = true;
  } else {
    fail(url, "unknown scheme '" + printable(scheme) + "': expected " + std::string(kSchemes));
  }

  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) fail(url, "fragments are not supported");
  // The query starts at the first '?' (a '?' in a password is written %3F).
  if (const auto question = rest.find('?'); question != std::string_view::npos) {
    if (!out.sentinel)
      fail(url, "query parameters are supported only with redis+sentinel:// (sentinel_password)");
    parse_query(url, rest.substr(question + 1), out);
    rest = rest.substr(0, question);
  }

  // The user part ends at the last '@', so that a stray '@' in a password is not taken as a host.
  const auto at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      fail(url, "a user name needs a password (user:password@); a password alone is :password@");
    out.username = percent_decode(url, userinfo.substr(0, colon), "user name");
    out.password = percent_decode(url, userinfo.substr(colon + 1), "password");
    if (out.password.empty() && !out.username.empty())
      fail(url, "empty password for user '" + printable(out.username) + "'");
  }

  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (out.sentinel) {
    // master_name[/db]
    const auto db_slash = path.find('/');
    const std::string_view name = path.substr(0, db_slash);
    if (name.empty())
      fail(url, "missing master name: expected redis+sentinel://host:port/master_name[/db]");
    out.master_name = percent_decode(url, name, "master name");
    for (const char c : out.master_name) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f)
        fail(url, "invalid character in master name '" + printable(out.master_name) + "'");
    }
    if (db_slash != std::string_view::npos) {
      const std::string_view db = path.substr(db_slash + 1);
      if (!db.empty()) out.db = parse_db(url, db);
    }
  } else if (!path.empty()) {
    if (out.cluster) fail(url, "a database number is not allowed in cluster mode");
    out.db = parse_db(url, path);
  }

  if (authority.empty()) fail(url, "missing host");
  const std::uint16_t default_port = out.sentinel ? kDefaultSentinelPort : kDefaultPort;
  std::size_t begin = 0;
  while (begin <= authority.size()) {
    const auto comma = authority.find(',', begin);
    const std::string_view host =
        authority.substr(begin, comma == std::string_view::npos ? comma : comma - begin);
    out.hosts.push_back(parse_host(url, host, default_port));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  if (!out.cluster && !out.sentinel && out.hosts.size() > 1)
    fail(url, "several hosts need redis+cluster:// (or redis+sentinel:// for sentinels)");
  return out;
}

std::string RedisUrl::to_string() const {
  std::string out = tls ? "rediss" : "redis";
  if (cluster) out += "+cluster";
  if (sentinel) out += "+sentinel";
  out += "://";
  if (!password.empty()) out += percent_encode(username) + ":***@";
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (i > 0) out += ',';
    const auto& [host, port] = hosts[i];
    if (host.find(':') != std::string::npos) {
      out += '[' + host + ']';
    } else {
      out += host;
    }
    out += ':' + std::to_string(port);
  }
  if (sentinel) {
    out += '/' + percent_encode(master_name);
    if (db != 0) out += '/' + std::to_string(db);
    if (!sentinel_password.empty()) {
      out += '?';
      if (!sentinel_username.empty())
        out += "sentinel_username=" + percent_encode(sentinel_username) + '&';
      out += "sentinel_password=***";
    }
    return out;
  }
  if (db != 0) out += '/' + std::to_string(db);
  return out;
}

}  // namespace pacer::redis
