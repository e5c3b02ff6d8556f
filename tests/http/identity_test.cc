#include "pacer/http/identity.h"

#include <gtest/gtest.h>

namespace pacer::http {
namespace {

SimpleRequest request_from(std::string peer) {
  SimpleRequest r;
  r.peer_ = std::move(peer);
  return r;
}

TEST(Identity, ClientIpIsTaggedAndUsesThePeer) {
  const SimpleRequest r = request_from("198.51.100.4");
  EXPECT_EQ(Identity::client_ip()(r), "ip:198.51.100.4");
}

TEST(Identity, ClientIpAggregatesIpv6Prefixes) {
  const SimpleRequest r = request_from("2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(Identity::client_ip({.ipv6_prefix = 64})(r), "ip:2001:db8:1:2::");
  EXPECT_THROW(Identity::client_ip({.ipv6_prefix = 129}), std::invalid_argument);
}

TEST(Identity, UnparseablePeerIsUnknownNotACrash) {
  EXPECT_EQ(Identity::client_ip()(request_from("not an ip")), "ip:unknown");
}

TEST(Identity, ApiKeysAreAlwaysHashedNeverInClear) {
  SimpleRequest r;
  r.headers_ = {{"x-api-key", "secret-key-1"}};
  const auto id = Identity::api_key()(r);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->find("secret"), std::string::npos);
  EXPECT_EQ(*id, "key:" + hash_identity("secret-key-1"));
  EXPECT_EQ(id->size(), 4 + 2 + 32u);
}

TEST(Identity, BearerTokenIsAnApiKeyAndHashedTheSameWay) {
  SimpleRequest bearer;
  bearer.headers_ = {{"Authorization", "Bearer tok123"}};
  SimpleRequest header;
  header.headers_ = {{"X-API-Key", "tok123"}};
  EXPECT_EQ(Identity::api_key()(bearer), Identity::api_key()(header));
  SimpleRequest basic;
  basic.headers_ = {{"Authorization", "Basic dXNlcjpwYXNz"}};
  EXPECT_EQ(Identity::api_key()(basic), std::nullopt);
  SimpleRequest empty;
  empty.headers_ = {{"X-API-Key", "  "}};
  EXPECT_EQ(Identity::api_key()(empty), std::nullopt);
}

TEST(Identity, FastApiPacerDialectKeepsThePythonPackagesText) {
  constexpr Dialect kSeed = Dialect::kFastApiPacer;
  // Untagged addresses; a peer that is not an address as it is, none at all "unknown".
  EXPECT_EQ(Identity::client_ip({}, kSeed)(request_from("198.51.100.4")), "198.51.100.4");
  EXPECT_EQ(Identity::client_ip({}, kSeed)(request_from("testclient")), "testclient");
  EXPECT_EQ(Identity::client_ip({}, kSeed)(request_from("")), "unknown");
  EXPECT_EQ(Identity::client_ip({}, kSeed)(request_from("{evil}")), sanitize_identity("{evil}"));
  // API keys: the 32 hex digits alone; X-API-Key as sent, a case-sensitive "Bearer ", then the
  // api_key query parameter.
  const std::string digest = hash_identity("secret").substr(2);
  const Identity key = Identity::api_key(kSeed);
  SimpleRequest r;
  r.headers_ = {{"X-API-Key", "secret"}};
  EXPECT_EQ(key(r), digest);
  r.headers_ = {{"X-API-Key", " secret"}};
  EXPECT_EQ(key(r), hash_identity(" secret").substr(2));
  r.headers_ = {{"Authorization", "Bearer  secret "}};
  EXPECT_EQ(key(r), digest);
  r.headers_ = {{"Authorization", "bearer secret"}};
  EXPECT_EQ(key(r), std::nullopt);
  EXPECT_EQ(Identity::api_key()(r), "key:" + hash_identity("secret"));  // kPacer: any case
  r.query_ = "a=1&api_key=sec%72et&b";
  EXPECT_EQ(key(r), digest);
  EXPECT_EQ(Identity::api_key()(r), "key:" + hash_identity("secret"));  // kPacer: no query
  r.query_ = "api_key=";
  r.headers_.clear();
  EXPECT_EQ(key(r), std::nullopt);
  EXPECT_EQ(key.shared_name(), "no_api_key");
  // Attributes untagged, with their own shared buckets.
  r.attributes_ = {{"user", "u42"}, {"org", "acme"}};
  EXPECT_EQ(Identity::user(kSeed)(r), "u42");
  EXPECT_EQ(Identity::org(kSeed)(r), "acme");
  EXPECT_EQ(Identity::user(kSeed).shared_name(), "anonymous");
  EXPECT_EQ(Identity::org(kSeed).shared_name(), "no_org");
  EXPECT_EQ(Identity::org().shared_name(), "anonymous");
  EXPECT_EQ(Identity::parse("org+user", {}, kSeed)(r), "acme|u42");
}

TEST(RequestView, QueryParametersAreFormDecodedAndTheLastOneCounts) {
  SimpleRequest r;
  r.query_ = "x=1&a%5Fb=c+d%2B%zz&x=2&flag&=v&x";
  EXPECT_EQ(r.query_parameter("a_b"), "c d+%zz");
  EXPECT_EQ(r.query_parameter("x"), "");  // the last "x", without a value
  EXPECT_EQ(r.query_parameter("flag"), "");
  EXPECT_EQ(r.query_parameter(""), "v");
  EXPECT_EQ(r.query_parameter("missing"), std::nullopt);
  r.query_ = "p=%4";
  EXPECT_EQ(r.query_parameter("p"), "%4");
}

TEST(Identity, FirstOfFallsBack) {
  const Identity who = Identity::first_of({Identity::api_key(), Identity::client_ip()});
  SimpleRequest r = request_from("192.0.2.1");
  EXPECT_EQ(who(r), "ip:192.0.2.1");
  r.headers_ = {{"X-API-Key", "k"}};
  EXPECT_EQ(who(r), "key:" + hash_identity("k"));
}

TEST(Identity, UserOrgAndComposition) {
  SimpleRequest r;
  EXPECT_EQ(Identity::user()(r), std::nullopt);
  r.attributes_ = {{"user", "42"}, {"org", "acme"}};
  EXPECT_EQ(Identity::user()(r), "user:42");
  EXPECT_EQ(Identity::org()(r), "org:acme");
  EXPECT_EQ(Identity::all_of({Identity::org(), Identity::user()})(r), "org:acme|user:42");
  r.attributes_.erase("user");
  EXPECT_EQ(Identity::all_of({Identity::org(), Identity::user()})(r), std::nullopt);
}

TEST(Identity, NamedHeaderAndCustom) {
  SimpleRequest r;
  r.headers_ = {{"X-Tenant", "blue"}};
  EXPECT_EQ(Identity::header("x-tenant")(r), "hdr:blue");
  EXPECT_EQ(Identity::header("X-Tenant", /*hashed=*/true)(r), "hdr:" + hash_identity("blue"));
  EXPECT_EQ(Identity::header("X-Missing")(r), std::nullopt);
  const Identity custom = Identity::custom("tenant", [](const RequestView& v) {
    return std::optional<std::string>(std::string(v.header("X-Tenant").value_or("")));
  });
  EXPECT_EQ(custom(r), "tenant:blue");
  EXPECT_THROW(Identity::custom("", [](const RequestView&) { return std::nullopt; }),
               std::invalid_argument);
}

TEST(Identity, UnsafeValuesAreHashed) {
  for (const std::string& bad : {std::string("a{b"), std::string("a}b"), std::string("a\nb"),
                                 std::string("a\x7f"), std::string(129, 'x')}) {
    EXPECT_EQ(sanitize_identity(bad), hash_identity(bad)) << bad;
    SimpleRequest r;
    r.attributes_ = {{"user", bad}};
    const auto id = Identity::user()(r);
    ASSERT_TRUE(id);
    EXPECT_EQ(id->find_first_of("{}\n\x7f"), std::string::npos);
    EXPECT_LE(id->size(), 128u);
  }
  EXPECT_EQ(sanitize_identity(std::string(128, 'x')), std::string(128, 'x'));
}

TEST(Identity, HashIsStableAcrossProcesses) {
  // SHA-256("abc") starts with ba7816bf8f01cfea414140de5dae2223.
  EXPECT_EQ(hash_identity("abc"), "h:ba7816bf8f01cfea414140de5dae2223");
}

// append_to writes what operator() returns after whatever the string holds, and leaves the
// string alone when the selector does not apply (the HTTP layer builds keys this way).
TEST(Identity, AppendToWritesTheSameTextInPlaceOrNothing) {
  SimpleRequest r = request_from("2001:db8::7");
  r.headers_ = {{"X-API-Key", "k1"}, {"X-Tenant", "{blue}"}};
  r.attributes_ = {{"user", "u7"}, {"org", std::string(200, 'o')}};
  const std::vector<Identity> applies = {
      Identity::client_ip(),
      Identity::api_key(),
      Identity::header("X-Tenant"),
      Identity::header("X-Tenant", /*hashed=*/true),
      Identity::user(),
      Identity::org(),
      Identity::custom("tenant", [](const RequestView&) { return std::string("t{1}"); }),
      Identity::first_of({Identity::header("X-Missing"), Identity::user()}),
      Identity::all_of({Identity::org(), Identity::user()}),
      Identity::all_of({Identity::client_ip(), Identity::user()}),
  };
  for (const Identity& who : applies) {
    const std::optional<std::string> expected = who(r);
    ASSERT_TRUE(expected.has_value());
    std::string out = "prefix:";
    EXPECT_TRUE(who.append_to(r, out));
    EXPECT_EQ(out, "prefix:" + *expected);
  }
  const std::vector<Identity> does_not_apply = {
      Identity::header("X-Missing"),
      Identity::attribute("team"),
      Identity::custom("none", [](const RequestView&) { return std::optional<std::string>(); }),
      Identity::first_of({Identity::header("X-Missing"), Identity::attribute("team")}),
      Identity::all_of({Identity::user(), Identity::attribute("team")}),
  };
  for (const Identity& who : does_not_apply) {
    EXPECT_EQ(who(r), std::nullopt);
    std::string out = "prefix:";
    EXPECT_FALSE(who.append_to(r, out));
    EXPECT_EQ(out, "prefix:");
  }
  // A joined identity that is too long is hashed as a whole, and only that part of the string.
  auto text = [](char c) {
    return [c](const RequestView&) { return std::optional<std::string>(std::string(100, c)); };
  };
  const Identity joined =
      Identity::all_of({Identity::custom("a", text('a')), Identity::custom("b", text('b'))});
  std::string out = "prefix:";
  ASSERT_TRUE(joined.append_to(r, out));
  EXPECT_EQ(
      out, "prefix:" + hash_identity("a:" + std::string(100, 'a') + "|b:" + std::string(100, 'b')));
  EXPECT_EQ(joined(r), out.substr(7));
}

}  // namespace
}  // namespace pacer::http

namespace pacer::http {
namespace {

// One rule for key prefixes (HttpLimiter, pacerd, the Python package's app_name).
TEST(KeyPrefixTest, OneRuleForEveryPrefix) {
  const std::string longest(64, 'p');
  for (const std::string_view good :
       {std::string_view("pacer"), std::string_view("edge-1"), std::string_view("app.v2"),
        std::string_view("a:b"), std::string_view("a b"), std::string_view(longest)})
    EXPECT_TRUE(valid_key_prefix(good)) << good;
  for (const std::string& bad :
       {std::string(), std::string(65, 'p'), std::string("a{b"), std::string("a}b"),
        std::string("a\x7f"), std::string("a\nb"), std::string("a\0b", 3)})
    EXPECT_FALSE(valid_key_prefix(bad)) << bad;
}

TEST(KeyPrefixTest, ClientIpOptionsNameABadIpv6Prefix) {
  ClientIpOptions options;
  options.ipv6_prefix = 129;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  try {
    Identity::client_ip(options);
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'129'"), std::string::npos) << e.what();
  }
  options.ipv6_prefix = 64;
  EXPECT_NO_THROW(options.validate());
}

}  // namespace
}  // namespace pacer::http

namespace pacer::http {
namespace {

// Identity::parse, the grammar pacerd's config and the library share: each selector as the
// factory makes it, and every malformed text refused with a message naming it.
TEST(IdentityParse, SelectorsMeanWhatTheirFactoriesDo) {
  SimpleRequest r;
  r.peer_ = "203.0.113.7";
  r.headers_ = {{"X-API-Key", "k1"}, {"X-Tenant", "acme"}};
  r.attributes_ = {{"user", "42"}, {"org", "7"}};
  EXPECT_EQ(Identity::parse("client_ip")(r), "ip:203.0.113.7");
  EXPECT_EQ(Identity::parse("api_key")(r), Identity::api_key()(r));
  EXPECT_EQ(Identity::parse("header:X-Tenant")(r), Identity::header("X-Tenant", true)(r));
  EXPECT_EQ(Identity::parse("user")(r), "user:42");
  EXPECT_EQ(Identity::parse("org+user")(r), "org:7|user:42");
  EXPECT_EQ(Identity::parse("attribute:org")(r), "org:7");
  const std::vector<std::string> list{"header:X-Missing", "client_ip"};
  EXPECT_EQ(Identity::parse(list)(r), "ip:203.0.113.7");
  EXPECT_FALSE(Identity::parse("header:X-Missing")(r).has_value());
}

TEST(IdentityParse, HostileTextIsRefusedNamingIt) {
  for (const std::string& bad : std::vector<std::string>{
           "", "ip", "client_ip ", "+", "org+", "+user", "org++user", "header:", "header:X Y",
           "header:" + std::string(65, 'a'), "attribute:", "attribute:a:b", "attribute:h",
           std::string("client_ip\0x", 11), "\xff\xfe", "org+cookie"}) {
    try {
      Identity::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("invalid identity"), std::string::npos) << what;
      EXPECT_NE(what.find("expected client_ip, api_key"), std::string::npos) << what;
    }
  }
  EXPECT_THROW(Identity::parse(std::vector<std::string>{}), std::invalid_argument);
}

}  // namespace
}  // namespace pacer::http
