#include "pacer/http/identity.h"

#include <openssl/evp.h>

#include <cctype>
#include <stdexcept>

#include "core/text.h"
#include "key_text.h"

namespace pacer::http {

namespace internal {

// The key space must be injective (docs/DESIGN.md §4): no value kept as it is may
// read as another value's hash ("h:" + hex), nor as two values joined by all_of ('|'). Both are
// hashed instead, so a client choosing its own key text can never land in someone else's bucket.
bool needs_hash(std::string_view value) {
  if (value.size() > kMaxIdentityBytes) return true;
  if (value.substr(0, 2) == kHashMark) return true;
  for (unsigned char c : value)
    if (c == '{' || c == '}' || c == '|' || c < 0x20 || c == 0x7f) return true;
  return false;
}

void append_hash(std::string& out, std::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is unavailable in this OpenSSL build");
  out.append(kHashMark).append(pacer::internal::to_hex(digest, 16));
}

void append_sanitized(std::string& out, std::string_view value) {
  if (needs_hash(value)) {
    append_hash(out, value);
  } else {
    out.append(value);
  }
}

void sanitize_tail(std::string& out, std::size_t mark) {
  if (!needs_hash(std::string_view(out).substr(mark))) return;
  hash_tail(out, mark);
}

void hash_tail(std::string& out, std::size_t mark) {
  const std::string tail = out.substr(mark);
  out.resize(mark);
  append_hash(out, tail);
}

}  // namespace internal

namespace {

using internal::append_sanitized;

// A tag starts every identity ("<tag>:<value>"): with ':' or '|' in it, or "h" (the mark of a
// hash), two different tag and value pairs could read the same.
void check_tag(const std::string& tag, const char* what) {
  if (tag.empty() || tag.size() > 32 || tag == "h" ||
      tag.find_first_of(":|") != std::string::npos || internal::needs_hash(tag)) {
    throw std::invalid_argument(std::string("invalid identity ") + what + " '" +
                                pacer::internal::printable(tag) +
                                "': 1 to 32 printable bytes without ':', '|', '{' or '}', "
                                "and not \"h\"");
  }
}

// "tag:" + the sanitised value; the value alone without a tag (Dialect::kFastApiPacer).
void append_tagged(std::string& out, std::string_view tag, std::string_view value) {
  if (!tag.empty()) out.append(tag).append(":");
  append_sanitized(out, value);
}

}  // namespace

using pacer::internal::trim;

std::string hash_identity(std::string_view value) {
  std::string out;
  internal::append_hash(out, value);
  return out;
}

std::string sanitize_identity(std::string_view value) {
  std::string out;
  append_sanitized(out, value);
  return out;
}

bool valid_key_prefix(std::string_view prefix) {
  return !prefix.empty() && prefix.size() <= 64 && sanitize_identity(prefix) == prefix;
}

Identity Identity::client_ip(ClientIpOptions options, Dialect dialect) {
  options.validate();
  if (dialect == Dialect::kFastApiPacer) {
    return Identity([options = std::move(options)](const RequestView& request, std::string& out) {
      const std::string_view peer = request.peer_address();
      if (peer.empty()) {
        out.append("unknown");
      } else if (const auto ip = http::client_ip(request, options)) {
        ip->append_to(out);
      } else {
        append_sanitized(out, peer);  // not an IP address ("testclient"): as it is
      }
      return true;
    });
  }
  return Identity([options = std::move(options)](const RequestView& request, std::string& out) {
    internal::append_client_ip(out, http::client_ip(request, options));
    return true;
  });
}

namespace {

// The API key of a request, or empty: X-API-Key, else the token of "Authorization: Bearer".
// Dialect::kFastApiPacer: X-API-Key as sent, "Bearer " matched case-sensitively (the token is
// still trimmed), then the `api_key` query parameter. `scratch` holds a decoded parameter.
std::string_view api_key_of(const RequestView& request, Dialect dialect, std::string& scratch) {
  const bool seed = dialect == Dialect::kFastApiPacer;
  if (auto key = request.header("X-API-Key")) {
    const std::string_view value = seed ? *key : trim(*key);
    if (!value.empty()) return value;
  }
  if (auto auth = request.header("Authorization")) {
    const std::string_view value = seed ? *auth : trim(*auth);
    constexpr std::string_view kBearer = "bearer ";
    const std::string_view scheme = value.substr(0, kBearer.size());
    if (value.size() > kBearer.size() && (seed ? scheme == "Bearer " : iequals(scheme, kBearer))) {
      const std::string_view token = trim(value.substr(kBearer.size()));
      if (!token.empty()) return token;
    }
  }
  if (seed) {
    if (auto param = request.query_parameter("api_key"); param && !param->empty()) {
      scratch = std::move(*param);
      return scratch;
    }
  }
  return {};
}

}  // namespace

Identity Identity::api_key(Dialect dialect) {
  if (dialect == Dialect::kFastApiPacer) {
    // The 32 hex digits alone, as FastAPI Pacer keyed them.
    return Identity(
        [](const RequestView& request, std::string& out) {
          std::string scratch;
          const std::string_view key = api_key_of(request, Dialect::kFastApiPacer, scratch);
          if (key.empty()) return false;
          const std::size_t mark = out.size();
          internal::append_hash(out, key);
          out.erase(mark, internal::kHashMark.size());
          return true;
        },
        "no_api_key");
  }
  return Identity([](const RequestView& request, std::string& out) {
    std::string scratch;
    const std::string_view key = api_key_of(request, Dialect::kPacer, scratch);
    if (key.empty()) return false;
    out.append("key:");
    internal::append_hash(out, key);
    return true;
  });
}

Identity Identity::header(std::string name, bool hashed) {
  if (name.empty()) throw std::invalid_argument("invalid identity header '': name is empty");
  return Identity([name = std::move(name), hashed](const RequestView& request, std::string& out) {
    const auto value = request.header(name);
    if (!value || trim(*value).empty()) return false;
    const std::string_view v = trim(*value);
    out.append("hdr:");
    if (hashed) {
      internal::append_hash(out, v);
    } else {
      append_sanitized(out, v);
    }
    return true;
  });
}

Identity Identity::attribute(std::string name, Dialect dialect) {
  if (name.empty()) throw std::invalid_argument("invalid identity attribute '': name is empty");
  check_tag(name, "attribute");
  const std::string_view shared =
      dialect == Dialect::kFastApiPacer && name == "org" ? "no_org" : "anonymous";
  return Identity(
      [name = std::move(name), dialect](const RequestView& request, std::string& out) {
        const auto value = request.attribute(name);
        if (!value || value->empty()) return false;
        append_tagged(out, dialect == Dialect::kPacer ? std::string_view(name) : "", *value);
        return true;
      },
      shared);
}

Identity Identity::user(Dialect dialect) { return attribute("user", dialect); }
Identity Identity::org(Dialect dialect) { return attribute("org", dialect); }

Identity Identity::custom(std::string tag, Function function, Dialect dialect) {
  check_tag(tag, "tag");
  if (!function) throw std::invalid_argument("invalid identity '" + tag + "': function is empty");
  if (dialect == Dialect::kFastApiPacer) tag.clear();
  return Identity([tag = std::move(tag), function = std::move(function)](const RequestView& request,
                                                                         std::string& out) {
    auto value = function(request);
    if (!value || value->empty()) return false;
    append_tagged(out, tag, *value);
    return true;
  });
}

Identity Identity::first_of(std::vector<Identity> selectors) {
  if (selectors.empty()) throw std::invalid_argument("invalid identity: first_of needs selectors");
  return Identity([selectors = std::move(selectors)](const RequestView& request, std::string& out) {
    for (const Identity& selector : selectors)
      if (selector.append_to(request, out)) return true;
    return false;
  });
}

Identity Identity::all_of(std::vector<Identity> selectors) {
  if (selectors.empty()) throw std::invalid_argument("invalid identity: all_of needs selectors");
  return Identity([selectors = std::move(selectors)](const RequestView& request, std::string& out) {
    const std::size_t mark = out.size();
    for (std::size_t i = 0; i < selectors.size(); ++i) {
      if (i > 0) out += '|';
      if (!selectors[i].append_to(request, out)) {
        out.resize(mark);
        return false;
      }
    }
    // The parts are sanitised already (no '|' inside one, none reads as a hash); only the
    // length of the whole may call for a hash.
    if (out.size() - mark > internal::kMaxIdentityBytes) internal::hash_tail(out, mark);
    return true;
  });
}

namespace {

// An HTTP field name (RFC 9110 token), 1 to 64 bytes.
bool header_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

constexpr std::string_view kSelectors =
    "client_ip, api_key, header:<Header-Name>, user, org, attribute:<name>, or several joined "
    "with '+' (all must apply)";

Identity parse_one(std::string_view text, const ClientIpOptions& ip, Dialect dialect) {
  auto refuse = [&](std::string_view why) -> Identity {
    throw std::invalid_argument("invalid identity '" + pacer::internal::printable(text) + "'" +
                                std::string(why) + "; expected " + std::string(kSelectors));
  };
  if (text == "client_ip") return Identity::client_ip(ip, dialect);
  if (text == "api_key") return Identity::api_key(dialect);
  if (text == "user") return Identity::user(dialect);
  if (text == "org") return Identity::org(dialect);
  if (text.starts_with("header:")) {
    const std::string_view name = text.substr(7);
    if (!header_name(name)) return refuse(": the header name must be 1 to 64 token characters");
    return Identity::header(std::string(name), /*hashed=*/true);
  }
  if (text.starts_with("attribute:")) {
    try {
      return Identity::attribute(std::string(text.substr(10)), dialect);
    } catch (const std::invalid_argument& e) {
      return refuse(std::string(": ") + e.what());
    }
  }
  return refuse("");
}

}  // namespace

Identity Identity::parse(std::string_view text, const ClientIpOptions& ip, Dialect dialect) {
  if (text.find('+') == std::string_view::npos || text.starts_with("header:"))
    return parse_one(text, ip, dialect);
  std::vector<Identity> parts;
  for (std::string_view rest = text;;) {
    const std::size_t plus = rest.find('+');
    parts.push_back(parse_one(rest.substr(0, plus), ip, dialect));
    if (plus == std::string_view::npos) break;
    rest = rest.substr(plus + 1);
  }
  return all_of(std::move(parts));
}

Identity Identity::parse(std::span<const std::string> selectors, const ClientIpOptions& ip,
                         Dialect dialect) {
  if (selectors.empty()) {
    throw std::invalid_argument("invalid identity: no selector; expected " +
                                std::string(kSelectors));
  }
  if (selectors.size() == 1) return parse(selectors.front(), ip, dialect);
  std::vector<Identity> parts;
  for (const std::string& s : selectors) parts.push_back(parse(s, ip, dialect));
  return first_of(std::move(parts));
}

}  // namespace pacer::http
