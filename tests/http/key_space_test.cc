// Issue 20 item 6: the storage key space is injective. A raw identity equal to the hashed form of
// another ("h:" + 32 hex), identities joined by all_of ('|'), scopes holding ':' or angle
// brackets: no two distinct (scope, identity) pairs, and no two distinct requests through the
// Identity selectors, may share a key (docs/DESIGN.md, "Key space").
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pacer/http/http_limiter.h"
#include "pacer/http/identity.h"

namespace pacer::http {
namespace {

// Text built from the characters that matter to the key grammar, and the forms that used to
// collide: long values, values with braces or control bytes, and the hashed form of another
// value written out raw.
rc::Gen<std::string> hostile_text() {
  const auto piece = rc::gen::oneOf(
      rc::gen::element<std::string>("a", "b", ":", "|", "{", "}", "<", ">", "%", "%3A",
                                    "h:", "ip:", "hdr:", "\x01", "\x7f", "/"),
      rc::gen::map(rc::gen::inRange(120, 140), [](int n) { return std::string(n, 'x'); }));
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(piece),
                      [](const std::vector<std::string>& pieces) {
                        std::string out;
                        for (const auto& p : pieces) out += p;
                        return out;
                      });
}

// A list of texts where some are the hashed forms or joins of others.
std::vector<std::string> adversarial_set(const std::vector<std::string>& seeds) {
  std::vector<std::string> out = seeds;
  for (const auto& s : seeds) {
    out.push_back(hash_identity(s));           // the hash written out as a raw value
    out.push_back(sanitize_identity(s));       // what the key holds for s
    out.push_back(s.substr(0, s.size() / 2));  // prefixes and their joins
    out.push_back(s + "|" + s);
    out.push_back(s + ":" + s);
  }
  return out;
}

RC_GTEST_PROP(KeySpace, DistinctScopeAndIdentityPairsNeverShareAKey, ()) {
  const auto scopes = adversarial_set(
      *rc::gen::container<std::vector<std::string>>(rc::gen::resize(6, hostile_text())));
  const auto identities = adversarial_set(
      *rc::gen::container<std::vector<std::string>>(rc::gen::resize(6, hostile_text())));
  std::map<std::string, std::pair<std::string, std::string>> seen;
  for (const auto& scope : scopes) {
    for (const auto& identity : identities) {
      const std::string key = storage_key("pfx", "policy", scope, identity);
      const auto [it, inserted] = seen.emplace(key, std::make_pair(scope, identity));
      if (!inserted) {
        RC_ASSERT(it->second == std::make_pair(scope, identity));
      }
    }
  }
}

// Requests through selectors: the header values are the client's to choose.
RC_GTEST_PROP(KeySpace, DistinctHeaderValuesNeverShareAnIdentity, ()) {
  const auto values = adversarial_set(
      *rc::gen::container<std::vector<std::string>>(rc::gen::resize(5, hostile_text())));
  const Identity single = Identity::header("X-A");
  const Identity joined = Identity::all_of({Identity::header("X-A"), Identity::header("X-B")});
  const Identity either = Identity::first_of({joined, single});
  std::map<std::string, std::pair<std::string, std::string>> seen;
  for (const auto& a : values) {
    for (const auto& b : values) {
      if (a.empty() || b.empty()) continue;  // an empty header does not apply
      SimpleRequest request;
      request.headers_ = {{"X-A", a}, {"X-B", b}};
      const auto id = either(request);
      if (!id) continue;
      SimpleRequest only_a;
      only_a.headers_ = {{"X-A", a}};
      const auto id_a = either(only_a);
      RC_ASSERT(id_a.has_value());
      const auto [it, inserted] = seen.emplace(*id, std::make_pair(a, b));
      if (!inserted) {
        // The same identity means the same two values, after trimming.
        RC_ASSERT(it->second.first == a);
        RC_ASSERT(it->second.second == b);
      }
      // A single value never reads as two joined ones.
      const bool b_applies = joined(request).has_value();
      if (b_applies) RC_ASSERT(*id_a != *id);
    }
  }
}

TEST(KeySpace, TheReportedCollisionIsGone) {
  // Issue 20: the raw key "h:<32 hex>" was stored under the same name as the hashed form of a
  // long key.
  const std::string long_key(200, 'k');
  const std::string raw = hash_identity(long_key);
  EXPECT_NE(storage_key("p", "api", "s", long_key), storage_key("p", "api", "s", raw));
  EXPECT_NE(sanitize_identity(raw), raw);
  // Scopes with ':' and angle brackets, and identities with ':'.
  EXPECT_NE(storage_key("p", "api", "/a:ip", "x"), storage_key("p", "api", "/a", "ip:x"));
  EXPECT_NE(storage_key("p", "api", "/items/{id}", "x"),
            storage_key("p", "api", "/items/<id>", "x"));
  // What keys look like for the plain cases is unchanged.
  EXPECT_EQ(storage_key("p", "api", "/items/{id}", "ip:1.2.3.4"), "p:{api:/items/<id>:ip:1.2.3.4}");
}

TEST(KeySpace, TagsThatCouldReadAsAnotherPairAreRefused) {
  auto text = [](const RequestView&) { return std::optional<std::string>("v"); };
  for (const char* bad : {"h", "a:b", "a|b", "", "{x}"}) {
    EXPECT_THROW(Identity::custom(bad, text), std::invalid_argument) << bad;
    if (*bad != 0) {
      EXPECT_THROW(Identity::attribute(bad), std::invalid_argument) << bad;
    }
  }
  EXPECT_NO_THROW(Identity::custom("tenant", text));
}

}  // namespace
}  // namespace pacer::http
