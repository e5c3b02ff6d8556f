#include "pacer/http/http_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "../support/held_store.h"
#include "core/text.h"

namespace pacer::http {
namespace {

using std::chrono::seconds;

constexpr std::int64_t kSecond = 1'000'000'000;

struct Fixture {
  std::int64_t now = 5'000 * kSecond;
  MemoryStore store{{.clock = [this] { return now; }}};
  Limiter limiter{store};
};

Verdict run(const HttpLimiter& http, const RequestView& request) {
  Verdict out;
  bool called = false;
  http.check(request, [&](Verdict&& v) {
    out = std::move(v);
    called = true;
  });
  EXPECT_TRUE(called);  // the in-process store answers inline
  return out;
}

std::string header(const Verdict& v, std::string_view name) {
  for (const auto& [n, value] : v.headers)
    if (n == name) return std::string(value);
  return "<absent>";
}

SimpleRequest get(std::string path, std::string peer = "192.0.2.10") {
  SimpleRequest r;
  r.path_ = std::move(path);
  r.peer_ = std::move(peer);
  return r;
}

LimitRule rule(std::string name, Rate rate) { return {.policy = Policy(std::move(name), {rate})}; }

TEST(HttpLimiter, StorageKeyHasOneHashTagPerPolicyScopeAndIdentity) {
  Fixture f;
  HttpLimiter http(f.limiter, {.key_prefix = "svc"});
  SimpleRequest r = get("/items/42");
  r.route_ = "/items/{id}";
  LimitRule by_route = rule("items", Rate(10, seconds(60)));
  EXPECT_EQ(http.storage_key(by_route, r), "svc:{items:/items/<id>:ip:192.0.2.10}");
  by_route.scope = Scope::kMethodRoute;
  EXPECT_EQ(http.storage_key(by_route, r), "svc:{items:GET /items/<id>:ip:192.0.2.10}");
  by_route.scope = Scope::kApp;
  EXPECT_EQ(http.storage_key(by_route, r), "svc:{items:app:ip:192.0.2.10}");
}

// Keys are built in place from parts rendered when a rule is added; whatever path builds them,
// the store sees exactly storage_key(rule, request).
TEST(HttpLimiter, KeysReachingTheStoreAreTheStorageKeys) {
  std::vector<std::string> seen;
  MemoryStore store;
  Limiter limiter(store,
                  {.on_decision = [&](const DecisionEvent& e) { seen.emplace_back(e.key); }});
  HttpLimiter http(limiter, {.key_prefix = "svc"});
  LimitRule global = rule("global", Rate(100, seconds(60)));  // scope from each request's route
  LimitRule by_route = rule("items", Rate(100, seconds(60)));
  LimitRule by_method = rule("any", Rate(100, seconds(60)));
  by_method.scope = Scope::kMethodRoute;
  LimitRule whole_app = rule("app", Rate(100, seconds(60)));
  whole_app.scope = Scope::kApp;
  whole_app.identity = Identity::api_key();  // no key on the request: the anonymous bucket
  whole_app.missing_identity = MissingIdentity::kShared;
  http.set_middleware({.rule = global});
  http.add_route("GET", "/items/{id}", by_route);
  http.add_route("", "/any/{x}", by_method);
  http.add_route("POST", "/app", whole_app);

  auto check = [&](SimpleRequest r, const LimitRule& route_rule, std::string_view global_key,
                   std::string_view route_key) {
    seen.clear();
    EXPECT_EQ(run(http, r).status, 0);
    ASSERT_EQ(seen.size(), 2U);
    EXPECT_EQ(seen[0], global_key);
    EXPECT_EQ(seen[0], http.storage_key(global, r));
    EXPECT_EQ(seen[1], route_key);
    EXPECT_EQ(seen[1], http.storage_key(route_rule, r));
  };
  SimpleRequest items = get("/items/42");
  items.route_ = "/items/{id}";
  check(items, by_route, "svc:{global:/items/<id>:ip:192.0.2.10}",
        "svc:{items:/items/<id>:ip:192.0.2.10}");
  SimpleRequest any = get("/any/1", "2001:db8::1");
  any.route_ = "/any/{x}";
  any.method_ = "delete";
  check(any, by_method, "svc:{global:/any/<x>:ip:2001:db8::1}",
        "svc:{any:delete /any/<x>:ip:2001:db8::1}");
  SimpleRequest app = get("/app");
  app.method_ = "POST";
  check(app, whole_app, "svc:{global:/app:ip:192.0.2.10}", "svc:{app:app:anonymous}");
  // A scope that is not safe in a key is hashed, the same way on every path.
  SimpleRequest odd = get("/" + std::string(200, 'x'));
  seen.clear();
  run(http, odd);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0],
            "svc:{global:" + hash_identity("/" + std::string(200, 'x')) + ":ip:192.0.2.10}");
  EXPECT_EQ(seen[0], http.storage_key(global, odd));
  EXPECT_EQ(storage_key("svc", "global", "/" + std::string(200, 'x'), "ip:192.0.2.10"), seen[0]);
}

// Verdicts lend their header list and keys from per-thread storage: a handler may keep the
// headers, or check another request from inside the handler, and every verdict stays right.
TEST(HttpLimiter, VerdictHandlersMayKeepHeadersAndCheckAgain) {
  Fixture f;
  HttpLimiter http(f.limiter);
  http.add_route("GET", "/a", rule("a", Rate(10, seconds(60), 4)));
  http.add_route("GET", "/b", rule("b", Rate(20, seconds(60), 9)));
  HeaderList kept;
  http.check(get("/a"), [&](Verdict&& v) { kept = std::move(v.headers); });
  ASSERT_EQ(kept.size(), 3U);
  EXPECT_EQ(kept[1].second, "4");
  std::string outer_remaining, inner_remaining;
  http.check(get("/a"), [&](Verdict&& outer) {
    http.check(get("/b"),
               [&](Verdict&& inner) { inner_remaining = header(inner, "RateLimit-Remaining"); });
    outer_remaining = header(outer, "RateLimit-Remaining");
  });
  EXPECT_EQ(outer_remaining, "3");
  EXPECT_EQ(inner_remaining, "9");
  EXPECT_EQ(header(run(http, get("/a")), "RateLimit-Remaining"), "2");
  EXPECT_EQ(header(run(http, get("/b")), "RateLimit-Remaining"), "8");
  EXPECT_EQ(kept[1].second, "4");
}

// A check started while this thread's key strings are lent out (here from a hook, between the
// middleware's decision and the route's) builds its keys in its own strings: the outer request's
// route key, built before its first decision, is not disturbed.
TEST(HttpLimiter, ChecksStartedFromHooksKeepEveryKey) {
  std::vector<std::string> seen;
  MemoryStore store;
  const HttpLimiter* http_limiter = nullptr;
  bool nested = false;
  Limiter limiter(store, {.on_decision = [&](const DecisionEvent& e) {
                    seen.emplace_back(e.key);
                    if (nested || http_limiter == nullptr) return;
                    nested = true;
                    EXPECT_EQ(run(*http_limiter, get("/b", "198.51.100.2")).status, 0);
                  }});
  HttpLimiter http(limiter, {.key_prefix = "svc"});
  http.set_middleware({.rule = rule("global", Rate(100, seconds(60)))});
  http.add_route("GET", "/a", rule("a", Rate(100, seconds(60))));
  http.add_route("GET", "/b", rule("b", Rate(100, seconds(60))));
  http_limiter = &http;
  EXPECT_EQ(run(http, get("/a")).status, 0);
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "svc:{global:/a:ip:192.0.2.10}", "svc:{global:/b:ip:198.51.100.2}",
                      "svc:{b:/b:ip:198.51.100.2}", "svc:{a:/a:ip:192.0.2.10}"}));
}

TEST(HttpLimiter, NoLimitsMeansPassWithoutHeaders) {
  Fixture f;
  HttpLimiter http(f.limiter);
  const Verdict v = run(http, get("/"));
  EXPECT_EQ(v.status, 0);
  EXPECT_TRUE(v.headers.empty());
}

TEST(HttpLimiter, RouteLimitDeniesWithFlatOrNestedBody) {
  Fixture f;
  HttpLimiter http(f.limiter);
  http.add_route("GET", "/flat", rule("flat", Rate(1, seconds(10))));
  LimitRule nested = rule("nested", Rate(1, seconds(10)));
  nested.body = BodyStyle::kNested;
  http.add_route("GET", "/nested", std::move(nested));
  EXPECT_EQ(run(http, get("/flat")).status, 0);
  Verdict v = run(http, get("/flat"));
  EXPECT_EQ(v.status, 429);
  EXPECT_EQ(v.body, R"({"detail":"rate_limited","retry_after_ms":10000})");
  EXPECT_EQ(header(v, "Retry-After"), "10");
  EXPECT_EQ(run(http, get("/nested")).status, 0);
  v = run(http, get("/nested"));
  EXPECT_EQ(v.body, R"({"detail":{"detail":"rate_limited","retry_after_ms":10000}})");
}

TEST(HttpLimiter, RetryAfterRoundsUpAndNeverSaysZero) {
  Fixture f;
  HttpLimiter http(f.limiter);
  http.add_route("GET", "/", rule("r", Rate(1, seconds(10))));
  run(http, get("/"));
  f.now += 9 * kSecond + 500'000'000;  // 0.5 s left
  Verdict v = run(http, get("/"));
  EXPECT_EQ(header(v, "Retry-After"), "1");
  EXPECT_EQ(v.body, R"({"detail":"rate_limited","retry_after_ms":500})");
  f.now += 499'999'999;  // 1 ns left
  v = run(http, get("/"));
  EXPECT_EQ(header(v, "Retry-After"), "1");
  EXPECT_EQ(v.body, R"({"detail":"rate_limited","retry_after_ms":1})");
  f.now += 1;
  EXPECT_EQ(run(http, get("/")).status, 0);
}

TEST(HttpLimiter, MethodSpecificRoutesWinOverAnyMethod) {
  Fixture f;
  HttpLimiter http(f.limiter);
  http.add_route("", "/x", rule("any", Rate(100, seconds(1))));
  http.add_route("POST", "/x", rule("post", Rate(1, seconds(60))));
  SimpleRequest post = get("/x");
  post.method_ = "POST";
  EXPECT_EQ(header(run(http, post), "RateLimit-Limit"), "1");
  EXPECT_EQ(header(run(http, get("/x")), "RateLimit-Limit"), "100");
  EXPECT_THROW(http.add_route("POST", "/x", rule("again", Rate(1, seconds(1)))),
               std::invalid_argument);
}

TEST(HttpLimiter, MiddlewareExclusionsByPathPrefixAndMethod) {
  Fixture f;
  HttpLimiter http(f.limiter);
  LimitRule global = rule("global", Rate(1, seconds(60)));
  global.scope = Scope::kApp;  // one bucket per client for the whole app
  http.set_middleware({.rule = std::move(global), .exclude_paths = {"/health", "/static/*"}});
  EXPECT_EQ(run(http, get("/")).status, 0);
  EXPECT_EQ(run(http, get("/")).status, 429);
  EXPECT_EQ(run(http, get("/health")).status, 0);
  EXPECT_EQ(run(http, get("/health/deep")).status, 429);  // exact match only
  EXPECT_EQ(run(http, get("/static/app.js")).status, 0);
  for (const char* method : {"OPTIONS", "HEAD", "options"}) {
    SimpleRequest r = get("/");
    r.method_ = method;
    EXPECT_EQ(run(http, r).status, 0) << method;
  }
}

TEST(HttpLimiter, MiddlewareDenialStopsBeforeTheRouteIsCharged) {
  Fixture f;
  HttpLimiter http(f.limiter);
  http.set_middleware({.rule = rule("global", Rate(1, seconds(60)))});
  http.add_route("GET", "/r", rule("route", Rate(5, seconds(60), 4)));
  EXPECT_EQ(run(http, get("/r")).status, 0);
  EXPECT_EQ(run(http, get("/r")).status, 429);
  const Policy route("route", {Rate(5, seconds(60), 4)});
  // Only the first request reached the route limit.
  EXPECT_EQ(
      f.limiter.peek(route, http.storage_key(rule("route", Rate(5, seconds(60), 4)), get("/r")), 0)
          .remaining,
      4);
}

TEST(HttpLimiter, OptionalHeaders) {
  Fixture f;
  HttpLimiter http(
      f.limiter,
      {.headers = {.x_ratelimit_reset = true, .x_ratelimit_policy = true, .ietf_draft = true}});
  http.add_route(
      "GET", "/",
      {.policy = Policy("api", {Rate(100, seconds(60), 10), Rate(1000, seconds(3600), 100)})});
  const auto before =
      std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const Verdict v = run(http, get("/"));
  EXPECT_EQ(header(v, "RateLimit-Limit"), "100");
  EXPECT_EQ(header(v, "RateLimit-Remaining"), "10");
  EXPECT_EQ(header(v, "RateLimit-Reset"), "1");  // 0.6 s rounded up
  EXPECT_EQ(header(v, "X-RateLimit-Policy"), "Policy(api): 100/1m (burst=10), 1000/1h (burst=100)");
  EXPECT_EQ(header(v, "RateLimit-Policy"), R"("api";q=100;w=60, "api.1";q=1000;w=3600)");
  EXPECT_EQ(header(v, "RateLimit"), R"("api";r=10;t=1)");
  const long reset_at = std::stol(header(v, "X-RateLimit-Reset"));
  EXPECT_GE(reset_at, before + 1);
  EXPECT_LE(reset_at, before + 2);
}

TEST(HttpLimiter, HeadersComeFromTheRateWithTheFewestRemaining) {
  Fixture f;
  HttpLimiter http(f.limiter, {.headers = {.ietf_draft = true}});
  // 10/s with burst 9 has 9 left after one request; 3/min has 2 left: it reports.
  http.add_route("GET", "/",
                 {.policy = Policy("two", {Rate(10, seconds(1), 9), Rate(3, seconds(60), 2)})});
  const Verdict v = run(http, get("/"));
  EXPECT_EQ(header(v, "RateLimit-Limit"), "3");
  EXPECT_EQ(header(v, "RateLimit-Remaining"), "2");
  EXPECT_EQ(header(v, "RateLimit"), R"("two.1";r=2;t=20)");
}

// With a middleware limit and a route limit that both pass, the response carries the headers of
// the one closer to denying, and the route's on a tie: the same on the inline path (in-process
// store) and on the path that continues from the store's answers.
TEST(HttpLimiter, MiddlewareAndRouteReportTheOneCloserToDenyingRouteOnATie) {
  auto configure = [](HttpLimiter& http) {
    http.set_middleware({.rule = rule("global", Rate(50, seconds(60), 5))});  // 5 left
    http.add_route("GET", "/few", rule("few", Rate(10, seconds(60), 2)));     // 2 left
    http.add_route("GET", "/many", rule("many", Rate(90, seconds(60), 8)));   // 8 left
    http.add_route("GET", "/tie", rule("tie", Rate(70, seconds(60), 5)));     // 5 left
  };
  auto expect = [](auto&& verdict_for) {
    EXPECT_EQ(header(verdict_for("/few"), "RateLimit-Limit"), "10");
    EXPECT_EQ(header(verdict_for("/many"), "RateLimit-Limit"), "50");
    const Verdict tie = verdict_for("/tie");
    EXPECT_EQ(header(tie, "RateLimit-Limit"), "70");
    EXPECT_EQ(header(tie, "RateLimit-Remaining"), "5");
  };
  {
    SCOPED_TRACE("inline");
    Fixture f;
    HttpLimiter http(f.limiter);
    configure(http);
    // Each route is asked with a fresh client, so the middleware has all of its burst left.
    int client = 0;
    expect([&](const std::string& path) {
      SimpleRequest r = get(path);
      r.peer_ = "192.0.2." + std::to_string(++client);
      return run(http, r);
    });
  }
  {
    SCOPED_TRACE("answered later");
    pacer::testing::HeldStore store;
    Limiter limiter(store);
    HttpLimiter http(limiter);
    configure(http);
    int client = 0;
    expect([&](const std::string& path) {
      SimpleRequest r = get(path);
      r.peer_ = "192.0.2." + std::to_string(++client);
      std::optional<Verdict> verdict;
      http.check(r, [&](Verdict&& v) { verdict = std::move(v); });
      while (!verdict && store.answer_all() > 0) {
      }
      EXPECT_TRUE(verdict.has_value());
      return verdict.value_or(Verdict{});
    });
  }
}

TEST(HttpLimiter, CostThatCanNeverPassSaysSoWithoutRetryAfter) {
  Fixture f;
  HttpLimiter http(f.limiter);
  LimitRule heavy = rule("heavy", Rate(10, seconds(60), 1));
  heavy.cost = [](const RequestView&) { return 3; };
  http.add_route("POST", "/bulk", std::move(heavy));
  SimpleRequest r = get("/bulk");
  r.method_ = "POST";
  const Verdict v = run(http, r);
  EXPECT_EQ(v.status, 429);
  EXPECT_EQ(v.body, R"({"detail":"cost_exceeds_capacity","retry_after_ms":null})");
  EXPECT_EQ(header(v, "Retry-After"), "<absent>");
}

class DownStore final : public Store {
 public:
  void check(const Policy&, std::string_view key, std::int64_t, CheckHandler done) override {
    done({make_error_code(Errc::kStoreUnavailable), {}, key});
  }
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            CheckHandler done) override {
    check(policy, key, cost, std::move(done));
  }
  void reset(const Policy&, std::string_view, ResetHandler done) override {
    done(make_error_code(Errc::kStoreUnavailable));
  }
  bool connected() const override { return false; }
};

TEST(HttpLimiter, FailClosedAnswers503WithRetryAfter) {
  DownStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kClosed});
  HttpLimiter http(limiter, {.unavailable_retry_after = seconds(7)});
  http.add_route("GET", "/", rule("r", Rate(1, seconds(1))));
  const Verdict v = run(http, get("/"));
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(v.body, R"({"detail":"Service temporarily unavailable"})");
  EXPECT_EQ(header(v, "Retry-After"), "7");
}

TEST(HttpLimiter, FailOpenPassesMarkedDegraded) {
  DownStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kOpen});
  HttpLimiter http(limiter);
  http.add_route("GET", "/", rule("r", Rate(1, seconds(1))));
  EXPECT_EQ(run(http, get("/")).status, 0);
  EXPECT_EQ(run(http, get("/")).status, 0);
  EXPECT_EQ(limiter.metrics().snapshot().degraded, 2u);
}

TEST(HttpLimiter, BadConfigurationNamesTheValue) {
  Fixture f;
  for (const char* prefix : {"", "a{b", "bad\nprefix"}) {
    try {
      HttpLimiter http(f.limiter, {.key_prefix = prefix});
      ADD_FAILURE() << prefix;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + pacer::internal::printable(prefix) + "'"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(parse_scope("method_route"), Scope::kMethodRoute);
  EXPECT_THROW(parse_scope("galaxy"), std::invalid_argument);
}

// ---- issue 6: lifetimes and rule changes during traffic ---------------------------------------

using pacer::testing::HeldStore;

// Item 2: a verdict pending when the HttpLimiter (and the Limiter it was given) go away used
// to run into freed memory; the pending request owns what it needs.
TEST(HttpLimiter, VerdictInFlightOutlivesTheHttpLimiterAndTheLimiter) {
  HeldStore store;
  int verdicts = 0;
  Verdict last;
  {
    auto limiter = std::make_unique<Limiter>(store);
    auto http = std::make_unique<HttpLimiter>(*limiter);
    http->set_middleware({.rule = rule("global", Rate(100, seconds(60), 10))});
    http->add_route("GET", "/", rule("root", Rate(1, seconds(60))));
    for (int i = 0; i < 2; ++i)
      http->check(get("/"), [&](Verdict&& v) {
        ++verdicts;
        last = std::move(v);
      });
    http.reset();
    limiter.reset();
  }
  // Each answer lets the request go on to its next limit: the middleware, then the route.
  while (store.answer_all() > 0) {
  }
  EXPECT_EQ(verdicts, 2);
  EXPECT_EQ(last.status, 429);  // the second request found the route's one permit used
  EXPECT_EQ(header(last, "RateLimit-Limit"), "1");
}

// Item 9: add_route / set_middleware during traffic used to reallocate the rule vector under
// requests that held pointers into it.
TEST(HttpLimiter, RuleChangesWhileARequestIsInFlightKeepItsRulesAlive) {
  HeldStore store;
  Limiter limiter(store);
  HttpLimiter http(limiter);
  http.add_route("GET", "/", rule("root", Rate(1, seconds(60))));
  http.set_middleware({.rule = rule("global", Rate(100, seconds(60)))});
  int verdicts = 0;
  http.check(get("/"), [&](Verdict&& v) {
    ++verdicts;
    EXPECT_EQ(v.status, 0);
    EXPECT_EQ(header(v, "RateLimit-Limit"), "1");  // the route's rule, read after the changes
  });
  for (int i = 0; i < 64; ++i)
    http.add_route("GET", "/r" + std::to_string(i),
                   rule("r" + std::to_string(i), Rate(1, seconds(1))));
  http.set_middleware({.rule = rule("global2", Rate(100, seconds(60)))});
  while (store.answer_all() > 0) {
  }
  EXPECT_EQ(verdicts, 1);
  // New requests see the new rules.
  const SimpleRequest r = get("/r63");
  http.check(r, [&](Verdict&& v) { EXPECT_EQ(header(v, "RateLimit-Limit"), "1"); });
  while (store.answer_all() > 0) {
  }
}

TEST(HttpLimiter, ConcurrentChecksAndRuleChangesAreSafe) {
  MemoryStore store;
  Limiter limiter(store);
  HttpLimiter http(limiter);
  http.add_route("GET", "/", rule("root", Rate(1'000'000, seconds(1), 1000)));
  std::atomic<bool> stop{false};
  std::atomic<int> verdicts{0};
  std::vector<std::thread> checkers;
  for (int t = 0; t < 2; ++t) {
    checkers.emplace_back([&] {
      const SimpleRequest r = get("/");
      while (!stop.load()) http.check(r, [&](Verdict&&) { verdicts.fetch_add(1); });
    });
  }
  // Changes start only once both checkers are busy, and keep pace with them.
  while (verdicts.load() < 100) std::this_thread::yield();
  for (int i = 0; i < 200; ++i) {
    const int seen = verdicts.load();
    while (verdicts.load() < seen + 10) std::this_thread::yield();
    http.add_route("", "/x" + std::to_string(i),
                   rule("x" + std::to_string(i), Rate(1, seconds(1))));
    if (i % 10 == 0)
      http.set_middleware(
          {.rule = rule("g" + std::to_string(i), Rate(1'000'000, seconds(1), 1000))});
  }
  stop = true;
  for (auto& t : checkers) t.join();
  EXPECT_GE(verdicts.load(), 2100);
}

// Item 5: a policy the store cannot represent is refused when it is registered.
TEST(HttpLimiter, RulesTheStoreCannotRepresentAreRefusedAtRegistration) {
  HeldStore store;
  store.resolution_ = std::chrono::microseconds(1);
  Limiter limiter(store);
  HttpLimiter http(limiter);
  EXPECT_THROW(http.add_route("GET", "/", rule("fast", Rate(5'000'000, seconds(1)))),
               std::invalid_argument);
  EXPECT_THROW(http.set_middleware({.rule = rule("fast", Rate(5'000'000, seconds(1)))}),
               std::invalid_argument);
  EXPECT_NO_THROW(http.add_route("GET", "/", rule("ok", Rate(5, seconds(1)))));
}

}  // namespace
}  // namespace pacer::http
