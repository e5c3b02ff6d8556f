// pacerd's configuration sections for what it connects to and what answers proxies
// (docs/DESIGN.md §8): [store], [store.tls], [grpc] and [auth], read through config_reader.h.
// config_sections.cc reads the rest and validates the whole.
#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "config.h"
#include "config_reader.h"
#include "config_sections.h"
#include "pacer/http/identity.h"
#include "pacer/open_store.h"
#include "pacer/redis/redis_store.h"
#include "pacer/redis/url.h"
#include "pacer/text.h"

namespace pacer::pacerd::sections {

using reader::Section;

namespace {

constexpr std::size_t kMaxDenyBody = 4096;

// A token of RFC 9110 §5.6.2 (the parts of a media type).
bool token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "type/subtype" and optional parameters ("; charset=utf-8"), printable ASCII only: it goes into
// a header as it is.
bool valid_media_type(std::string_view text) {
  if (text.empty() || text.size() > 256) return false;
  for (const char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  const auto end = text.find(';');
  const std::string_view type = text.substr(0, end);
  const auto slash = type.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size()) return false;
  for (std::size_t i = 0; i < type.size(); ++i)
    if (i != slash && !token_char(type[i])) return false;
  return true;
}

}  // namespace

void read_store(Section& s, Config& c) {
  if (auto url = s.string("url")) {
    if (is_memory_url(*url)) {  // memory:// (or memory): the in-process store (open_store.h)
      c.store_url = *url;
    } else {
      try {
        redis::parse_redis_url(*url);
        c.store_url = *url;
      } catch (const std::invalid_argument& e) {
        // The library's message names the URL with the password masked; so does ours.
        const toml::node* n = s.node("url");
        s.problems().add(n->source(), s.name("url"), nullptr,
                         std::string(e.what()) +
                             " (expected \"memory://\", redis://, rediss://, redis+cluster://, "
                             "rediss+cluster://, redis+sentinel:// or rediss+sentinel://)");
      }
    }
  }
  if (auto mode = s.string("fail_mode")) {
    try {
      c.fail_mode = parse_fail_mode(*mode);
    } catch (const std::invalid_argument& e) {
      s.problems().add(*s.node("fail_mode"), s.name("fail_mode"), "expected open, closed or local");
    }
  }
  if (auto v = s.duration("timeout", std::chrono::milliseconds(1), std::chrono::seconds(60)))
    c.timeout = std::chrono::ceil<std::chrono::milliseconds>(*v);
  if (auto v =
          s.duration("connect_timeout", std::chrono::milliseconds(1), std::chrono::seconds(60)))
    c.connect_timeout = std::chrono::ceil<std::chrono::milliseconds>(*v);
  if (auto v = s.integer("max_keys", 1024, 1'000'000'000))
    c.max_keys = static_cast<std::size_t>(*v);
  if (auto script = s.string("script")) {
    try {
      c.store_script = redis::parse_redis_script(*script);
    } catch (const std::invalid_argument&) {
      s.problems().add(*s.node("script"), s.name("script"), "expected auto, lua or module");
    }
  }
  if (auto prefix = s.string("key_prefix")) {
    if (http::valid_key_prefix(*prefix)) {
      c.key_prefix = *prefix;
    } else {
      s.problems().add(*s.node("key_prefix"), s.name("key_prefix"),
                       "must be 1 to 64 bytes without braces or control characters");
    }
  }
}

// [store.tls]: the library's TlsOptions (pacer/redis/client.h), checked now as the Redis client
// will use them (OpenSSL reads each file), so --check-config and a reload name a bad file with
// its line instead of a start that fails later (docs/OPERATIONS.md, "pacerd", Redis TLS).
void read_store_tls(Section& s, Config& c) {
  auto file = [&](const char* key) -> std::optional<std::string> {
    auto path = s.string(key);
    if (!path) return std::nullopt;
    const toml::node& node = *s.node(key);
    if (path->empty() || path->front() != '/') {
      s.problems().add(node, s.name(key),
                       "expected an absolute path (pacerd runs from / under systemd)");
      return std::nullopt;
    }
    if (::access(path->c_str(), R_OK) != 0) {
      s.problems().add(node, s.name(key), "cannot read: " + std::system_category().message(errno));
      return std::nullopt;
    }
    return path;
  };
  namespace ssl = boost::asio::ssl;
  ssl::context context(ssl::context::tls_client);
  boost::system::error_code ec;
  if (auto ca = file("ca_file")) {
    context.load_verify_file(*ca, ec);
    if (ec) {
      s.problems().add(*s.node("ca_file"), s.name("ca_file"),
                       "not a PEM file of CA certificates: " + ec.message());
    } else {
      c.tls.ca_file = *ca;
    }
  }
  const auto cert = file("cert_file");
  const auto key = file("key_file");
  if (cert) {
    context.use_certificate_chain_file(*cert, ec);
    if (ec) {
      s.problems().add(*s.node("cert_file"), s.name("cert_file"),
                       "not a PEM certificate (chain): " + ec.message());
    } else if (key) {
      context.use_private_key_file(*key, ssl::context::pem, ec);
      if (ec) {
        s.problems().add(*s.node("key_file"), s.name("key_file"),
                         "not the PEM private key of cert_file: " + ec.message());
      } else {
        c.tls.cert_file = *cert;
        c.tls.key_file = *key;
      }
    }
  }
  // A client certificate is its certificate and its key: one without the other is a mistake.
  if (s.node("cert_file") != nullptr && s.node("key_file") == nullptr) {
    s.problems().add(*s.node("cert_file"), s.name("cert_file"),
                     "needs store.tls.key_file too (the client certificate's private key)");
  }
  if (s.node("key_file") != nullptr && s.node("cert_file") == nullptr) {
    s.problems().add(*s.node("key_file"), s.name("key_file"),
                     "needs store.tls.cert_file too (the certificate of this key)");
  }
  if (auto name = s.string("server_name")) {
    bool ok = !name->empty() && name->size() <= 253;
    for (const char ch : *name) ok = ok && ch > 0x20 && ch < 0x7f && ch != '/';
    if (ok) {
      c.tls.server_name = *name;
    } else {
      s.problems().add(*s.node("server_name"), s.name("server_name"),
                       "expected a host name or IP address the server's certificate names "
                       "(1 to 253 characters, no spaces), e.g. \"redis.internal\"");
    }
  }
}

// [grpc] (docs/API.md, "Envoy rate limit service").
void read_grpc(Section& s, Config& c) {
  GrpcConfig g;
  bool ok = true;
  if (const auto* n = s.node("listen")) {
    if (auto a = reader::parse_listen(*n, s.name("listen"), s.problems())) {
      g.listen = *a;
    } else {
      ok = false;
    }
  } else {
    s.problems().add(s.where(), s.name("listen"), nullptr,
                     "missing: e.g. \"127.0.0.1:8081\" (the gRPC address Envoy's rate limit "
                     "service cluster points at)");
    ok = false;
  }
  if (auto v = s.integer("max_concurrent_streams", 1, 100'000))
    g.max_concurrent_streams = static_cast<int>(*v);
  if (auto v = s.integer("max_message_bytes", 1024, std::int64_t{64} * 1024 * 1024))
    g.max_message_bytes = static_cast<int>(*v);
  if (auto v = s.string("unavailable")) {
    if (*v == "unavailable") {
      g.unavailable = rls::UnavailableAnswer::kUnavailableStatus;
    } else if (*v == "over_limit") {
      g.unavailable = rls::UnavailableAnswer::kOverLimit;
    } else {
      s.problems().add(*s.node("unavailable"), s.name("unavailable"),
                       "expected \"unavailable\" (gRPC UNAVAILABLE: Envoy's failure_mode_deny "
                       "decides) or \"over_limit\"");
    }
  }
  if (auto v = s.string("response_headers")) {
    if (*v == "ratelimit") {
      g.ratelimit_headers = true;
    } else if (*v == "x-ratelimit") {
      g.x_ratelimit_headers = true;
    } else if (*v != "none") {
      s.problems().add(*s.node("response_headers"), s.name("response_headers"),
                       "expected \"none\", \"ratelimit\" (RateLimit-* and Retry-After) or "
                       "\"x-ratelimit\" (envoyproxy/ratelimit's X-RateLimit-*)");
    }
  }
  if (const auto* n = s.node("near_limit_ratio")) {
    const auto* f = n->as_floating_point();
    const double ratio = f ? f->get() : -1;
    if (f != nullptr && ratio > 0 && ratio <= 1) {
      g.near_limit_ratio = ratio;
    } else {
      s.problems().add(*n, s.name("near_limit_ratio"),
                       "expected a number above 0 and at most 1 (0.8: the last 20% of a limit "
                       "counts as near it)");
    }
  }
  if (auto v = s.string("config_dir")) {
    if (v->empty() || v->front() != '/') {
      s.problems().add(*s.node("config_dir"), s.name("config_dir"),
                       "expected an absolute path to a directory of envoyproxy/ratelimit YAML "
                       "files, e.g. \"/etc/pacerd/ratelimit\"");
      ok = false;
    } else {
      g.config_dir = *v;
    }
  } else if (s.node("config_dir") == nullptr) {
    s.problems().add(s.where(), s.name("config_dir"), nullptr,
                     "missing: the directory of envoyproxy/ratelimit YAML files, e.g. "
                     "\"/etc/pacerd/ratelimit\"");
    ok = false;
  }
  if (ok) c.grpc = std::move(g);
}

// [auth] (docs/API.md, "GET /v1/auth/{policy}").
void read_auth(Section& s, Config& c) {
  auto status = [&](const char* key, std::initializer_list<int> accepted, const char* expected) {
    const toml::node* n = s.node(key);
    if (n == nullptr) return std::optional<unsigned>();
    if (const auto* i = n->as_integer()) {
      for (const int a : accepted)
        if (i->get() == a) return std::optional<unsigned>(static_cast<unsigned>(a));
    }
    s.problems().add(*n, s.name(key), std::string("expected ") + expected);
    return std::optional<unsigned>();
  };
  if (auto v = status("deny_status", {403, 429},
                      "403 (nginx auth_request, the default) or 429 (forward-auth proxies: "
                      "Traefik ForwardAuth, Envoy ext_authz, Caddy forward_auth)"))
    c.auth.deny_status = *v;
  // nginx turns anything but 401 and 403 into a 500; a forward-auth proxy shows a 503 as it is.
  c.auth.unavailable_status = c.auth.deny_status == 429 ? 503 : 403;
  if (auto v = status("unavailable_status", {403, 503},
                      "403 (with X-Pacer-Outcome: unavailable, for nginx auth_request) or 503"))
    c.auth.unavailable_status = *v;
  if (auto body = s.string("deny_body")) {
    if (body->size() > kMaxDenyBody) {
      s.problems().add(
          *s.node("deny_body"), s.name("deny_body"),
          fmt::format("is {} bytes long; at most {} are allowed", body->size(), kMaxDenyBody));
    } else {
      c.auth.deny_body = *body;
    }
  }
  if (auto type = s.string("deny_content_type")) {
    if (!valid_media_type(*type)) {
      s.problems().add(*s.node("deny_content_type"), s.name("deny_content_type"),
                       "expected a media type such as \"application/json\" or \"text/plain; "
                       "charset=utf-8\"");
    } else if (s.node("deny_body") == nullptr) {
      s.problems().add(*s.node("deny_content_type"), s.name("deny_content_type"),
                       "only used with auth.deny_body, which is not set");
    } else {
      c.auth.deny_content_type = *type;
    }
  }
}

}  // namespace pacer::pacerd::sections
