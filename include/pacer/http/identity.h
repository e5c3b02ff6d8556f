// pacer/http/identity.h — who a request is counted against.
//
// An Identity turns a request into a string, or into nothing when it does not apply (no API
// key on the request, no user set by earlier middleware); `first_of` then tries the next.
// Every result is tagged with its kind ("ip:", "key:", "user:", ...) so different selectors
// never share a bucket, and sanitised (docs/DESIGN.md §4): values with '{', '}', control characters
// or more than 128 bytes are replaced by a hash; API keys and bearer tokens are always hashed.
//
//   auto who = Identity::first_of({Identity::api_key(), Identity::client_ip()});
//   std::optional<std::string> id = who(request);  // "key:3f2a…" or "ip:203.0.113.7"
//   who.append_to(request, key);  // the same text, written at the end of `key` (no temporary)
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/http/ip.h"
#include "pacer/http/request_view.h"

namespace pacer::http {

// "h:" + the first 128 bits of SHA-256(value), in hex.
std::string hash_identity(std::string_view value);

// The value itself when it is safe to put in a storage key, else hash_identity(value).
std::string sanitize_identity(std::string_view value);

// Whether `prefix` may start storage keys (docs/DESIGN.md §4): 1 to 64 bytes that sanitize_identity
// keeps as they are (no braces, no control characters). HttpLimiterOptions::key_prefix,
// pacerd's `key_prefix` and the Python package's `app_name` all follow this rule.
bool valid_key_prefix(std::string_view prefix);

// How the selectors write an identity (docs/DESIGN.md §4). Both keep the key space one-to-one
// within one selector; they differ in what the text looks like.
enum class Dialect : std::uint8_t {
  // Tagged by kind ("ip:203.0.113.7", "key:h:3f2a…", "user:42"): the C++ HTTP layer, pacerd.
  kPacer,
  // The Python package's selectors, a named compatibility option keeping FastAPI Pacer's
  // identities: untagged ("203.0.113.7", the API key's 32 hex digits, "42"); a peer that is not
  // an IP address kept as it is and none at all "unknown"; API keys also from the `api_key`
  // query parameter, a bearer token only after a case-sensitive "Bearer " and X-API-Key as
  // sent; and each selector's own shared bucket for requests without it (shared_name()).
  kFastApiPacer,
};

class Identity {
 public:
  using Function = std::function<std::optional<std::string>(const RequestView&)>;

  // The client address (trusted proxies only; see ip.h). Always applies: a peer address
  // that cannot be parsed yields "ip:unknown".
  static Identity client_ip(ClientIpOptions options = {}, Dialect dialect = Dialect::kPacer);
  // X-API-Key, else "Authorization: Bearer <token>"; always hashed.
  static Identity api_key(Dialect dialect = Dialect::kPacer);
  // A named request header; `hashed` for secrets.
  static Identity header(std::string name, bool hashed = false);
  // Attributes set by earlier middleware.
  static Identity user(Dialect dialect = Dialect::kPacer);
  static Identity org(Dialect dialect = Dialect::kPacer);
  static Identity attribute(std::string name, Dialect dialect = Dialect::kPacer);
  // Your own function; its result is tagged with `tag` (untagged in Dialect::kFastApiPacer) and
  // sanitised like the others. The function may throw: the exception leaves append_to().
  static Identity custom(std::string tag, Function function, Dialect dialect = Dialect::kPacer);
  // The first selector that applies.
  static Identity first_of(std::vector<Identity> selectors);
  // All selectors must apply; their results are joined with '|' (e.g. org and user).
  static Identity all_of(std::vector<Identity> selectors);

  // The selector grammar every front end shares (pacerd's `identity`, the Python package's
  // selector names; docs/API.md): "client_ip", "api_key", "header:<Name>" (the value hashed: a
  // header is often a credential), "user", "org", "attribute:<name>", and "<a>+<b>" for all_of
  // ("org+user"). Throws std::invalid_argument naming the text and what is accepted.
  static Identity parse(std::string_view text, const ClientIpOptions& ip = {},
                        Dialect dialect = Dialect::kPacer);
  // Several selectors tried in order (first_of); one is itself.
  static Identity parse(std::span<const std::string> selectors, const ClientIpOptions& ip = {},
                        Dialect dialect = Dialect::kPacer);

  // The identity a rule with MissingIdentity::kShared counts a request under when this selector
  // does not apply: "anonymous"; in Dialect::kFastApiPacer the selector's own ("no_api_key" for
  // api_key, "no_org" for org).
  std::string_view shared_name() const { return shared_name_; }

  std::optional<std::string> operator()(const RequestView& request) const {
    std::string out;
    if (!append_to(request, out)) return std::nullopt;
    return out;
  }

  // Appends what operator() would return to `out` and returns true, or returns false and leaves
  // `out` as it was when the selector does not apply. The built-in selectors write in place:
  // the HTTP layer builds storage keys this way without a temporary string per request.
  bool append_to(const RequestView& request, std::string& out) const {
    return append_(request, out);
  }

 private:
  using Appender = std::function<bool(const RequestView&, std::string&)>;
  explicit Identity(Appender append, std::string_view shared_name = "anonymous")
      : append_(std::move(append)), shared_name_(shared_name) {}
  Appender append_;
  std::string_view shared_name_;  // a string literal
};

}  // namespace pacer::http
