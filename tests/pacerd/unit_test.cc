// pacerd's parsers in-process: the TOML configuration and the JSON requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api.h"
#include "config.h"
#include "file_watch.h"
#include "item_window.h"
#include "service.h"

namespace pacer::pacerd {
namespace {

namespace bhttp = boost::beast::http;

std::string errors_of(const std::string& text) {
  try {
    parse_config(text, "p.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(PacerdConfig, DefaultsAndEverySection) {
  const Config c = parse_config(R"(
[server]
listen = "[::1]:0"
threads = 3
idle_timeout = "10s"
trusted_proxies = ["loopback", "10.0.0.0/8"]
ipv6_prefix = 64
[admin]
listen = "127.0.0.1:9091"
[store]
url = "redis://:pw@127.0.0.1:6380/1"
fail_mode = "local"
timeout = "20ms"
key_prefix = "edge"
[api]
max_batch = 10
[headers]
ietf_draft = true
[[policy]]
name = "a"
rates = [{ limit = "100/1s", burst = 10 }, { limit = "1000/1h" }]
identity = ["header:X-Tenant", "client_ip"]
)",
                                "p.toml");
  EXPECT_EQ(c.listen.host, "::1");
  EXPECT_EQ(c.listen.to_string(), "[::1]:0");
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(c.idle_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.ipv6_prefix, 64);
  ASSERT_TRUE(c.admin_listen);
  EXPECT_EQ(c.admin_listen->port, 9091);
  EXPECT_EQ(c.fail_mode, FailMode::kLocal);
  EXPECT_EQ(c.timeout, std::chrono::milliseconds(20));
  EXPECT_EQ(c.key_prefix, "edge");
  EXPECT_EQ(c.max_batch, 10u);
  EXPECT_TRUE(c.headers.ietf_draft);
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].policy.rates().size(), 2u);
  EXPECT_EQ(c.policies[0].identity.size(), 2u);
  EXPECT_EQ(display_store_url(c.store_url).find("pw"), std::string::npos);
}

TEST(PacerdConfig, ErrorsNameFileLineKeyAndValue) {
  EXPECT_NE(errors_of("[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/0s\" }]\n")
                .find("p.toml:3:20: policy[0].rates[0].limit = \"1/0s\""),
            std::string::npos);
  EXPECT_NE(errors_of("[server]\nthreads = 999\n[[policy]]\nname = \"a\"\nrates = [{ limit = "
                      "\"1/1s\" }]\n")
                .find("p.toml:2:11: server.threads = 999: expected a whole number from 0 to 256"),
            std::string::npos);
  EXPECT_NE(errors_of("").find("at least one [[policy]]"), std::string::npos);
  EXPECT_NE(errors_of("[[policy]]\nrates = [{ limit = \"1/1s\" }]\n").find("policy[0].name"),
            std::string::npos);
  EXPECT_NE(errors_of("[[policy]]\nname = \"a\"\n").find("policy[0].rates: missing"),
            std::string::npos);
  EXPECT_NE(errors_of("[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\", brust = 2 }]\n")
                .find("policy[0].rates[0].brust = 2: unknown key"),
            std::string::npos);
  // Rates finer than Redis' clock are refused up front on Redis, fine in process.
  const std::string fast = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"2000000/1s\" }]\n";
  EXPECT_EQ(errors_of(fast), "");
  EXPECT_NE(errors_of("[store]\nurl = \"redis://127.0.0.1:1\"\n" + fast).find("2000000/1s"),
            std::string::npos);
  EXPECT_NE(errors_of("x = [1,\n").find("p.toml:1:9: not valid TOML"), std::string::npos);
}

TEST(PacerdConfig, RestartNeededNamesTheSettingsAReloadCannotChange) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  const Config a = parse_config(policy, "p.toml");
  const Config b = parse_config("[store]\nfail_mode = \"closed\"\n" + policy, "p.toml");
  const Config c = parse_config("[store]\nurl = \"redis://127.0.0.1:1\"\n" + policy, "p.toml");
  EXPECT_TRUE(a.restart_needed(b).empty());
  ASSERT_EQ(a.restart_needed(c).size(), 1u);
  EXPECT_NE(a.restart_needed(c)[0].find("store.url"), std::string::npos);
  // Where the new file sets it.
  EXPECT_EQ(a.restart_needed(c)[0].find("p.toml:2:7: store.url ("), 0u) << a.restart_needed(c)[0];
  const Config d =
      parse_config("[server]\nthreads = 1\nlisten = \"127.0.0.1:1\"\n" + policy, "p.toml");
  const auto both = a.restart_needed(d);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].find("p.toml:3:10: server.listen (127.0.0.1:9090 -> 127.0.0.1:1)"), 0u)
      << both[0];
  EXPECT_EQ(both[1].find("p.toml:2:11: server.threads (0 -> 1)"), 0u) << both[1];
  // A key removed from the file: the file alone.
  EXPECT_EQ(d.restart_needed(a)[0].find("p.toml: server.listen"), 0u) << d.restart_needed(a)[0];
}

TEST(PacerdConfig, AdminEndpointsOnTheMainListenerOnlyOnLoopbackOrWhenAsked) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  auto on_main = [&](const std::string& text) {
    return parse_config(text + policy, "p.toml").admin_endpoints_on_main();
  };
  EXPECT_TRUE(on_main(""));  // 127.0.0.1:9090
  EXPECT_TRUE(on_main("[server]\nlisten = \"127.0.0.2:1\"\n"));
  EXPECT_TRUE(on_main("[server]\nlisten = \"[::1]:1\"\n"));
  EXPECT_TRUE(on_main("[server]\nlisten = \"localhost:1\"\n"));
  EXPECT_FALSE(on_main("[server]\nlisten = \"0.0.0.0:1\"\n"));
  EXPECT_FALSE(on_main("[server]\nlisten = \"[::]:1\"\n"));
  EXPECT_FALSE(on_main("[server]\nlisten = \"10.1.2.3:1\"\n"));
  EXPECT_TRUE(on_main("[server]\nlisten = \"0.0.0.0:1\"\n[admin]\non_main = true\n"));
  EXPECT_FALSE(on_main("[admin]\nlisten = \"127.0.0.1:2\"\n"));
  EXPECT_NE(errors_of("[admin]\nlisten = \"127.0.0.1:2\"\non_main = true\n" + policy)
                .find("p.toml:3:11: admin.on_main = true: cannot be true with admin.listen"),
            std::string::npos)
      << errors_of("[admin]\nlisten = \"127.0.0.1:2\"\non_main = true\n" + policy);
  EXPECT_NE(errors_of("[admin]\non_main = \"yes\"\n" + policy).find("p.toml:2:11: admin.on_main"),
            std::string::npos);
  EXPECT_NE(errors_of("[admin]\n" + policy).find("admin.listen"), std::string::npos);
}

TEST(PacerdConfig, LoadConfigReadsAtMostFourMebibytes) {
  const std::string path = ::testing::TempDir() + "pacerd-unit-big.toml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "# " << std::string(4 * 1024 * 1024, 'x') << "\n";
  }
  try {
    load_config(path);
    ADD_FAILURE() << "a 4 MiB file was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 4 MiB"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

beast::Response serve(Service& service, Listener listener, bhttp::verb method,
                      const std::string& target, const std::string& body = "") {
  beast::Request request{method, target, 11};
  request.body() = body;
  request.prepare_payload();
  beast::Response response;
  // The in-process store answers inline.
  service.handle(
      std::move(request), beast::ClientEndpoint{.peer_address = "127.0.0.1"},
      [&](beast::Response&& r) { response = std::move(r); }, listener);
  return response;
}

TEST(PacerdService, WithoutAnAdminListenerANonLoopbackMainListenerServesNoAdminEndpoint) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  const std::string reset = R"({"policy":"a","key":"k"})";
  {
    const std::string text = "[server]\nlisten = \"0.0.0.0:9090\"\n" + policy;
    Service service(parse_config(text, "p.toml"), ConfigFile{.text = text});
    for (const char* path : {"/metrics", "/v1/config"}) {
      const auto r = serve(service, Listener::kMain, bhttp::verb::get, path);
      EXPECT_EQ(r.result_int(), 404) << path;
      EXPECT_NE(r.body().find("admin.on_main = true"), std::string::npos) << r.body();
    }
    EXPECT_EQ(serve(service, Listener::kMain, bhttp::verb::post, "/v1/reset", reset).result_int(),
              404);
    EXPECT_EQ(serve(service, Listener::kMain, bhttp::verb::post, "/v1/check", reset).result_int(),
              200);
  }
  for (const std::string server :
       {"[server]\nlisten = \"127.0.0.1:9090\"\n",
        "[server]\nlisten = \"0.0.0.0:9090\"\n[admin]\non_main = true\n"}) {
    const std::string text = server + policy;
    Service service(parse_config(text, "p.toml"), ConfigFile{.text = text});
    EXPECT_EQ(serve(service, Listener::kMain, bhttp::verb::get, "/metrics").result_int(), 200)
        << server;
    EXPECT_EQ(serve(service, Listener::kMain, bhttp::verb::post, "/v1/reset", reset).result_int(),
              200)
        << server;
  }
}

TEST(PacerdService, CostZeroIsNotADecisionInTheMetrics) {
  const std::string text = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"5/1h\" }]\n";
  Service service(parse_config(text, "p.toml"), ConfigFile{.text = text});
  serve(service, Listener::kMain, bhttp::verb::post, "/v1/check", R"({"policy":"a","key":"k"})");
  serve(service, Listener::kMain, bhttp::verb::post, "/v1/check",
        R"({"policy":"a","key":"k","cost":0})");
  serve(service, Listener::kMain, bhttp::verb::post, "/v1/check",
        R"([{"policy":"a","key":"k","cost":0},{"policy":"a","key":"j"}])");
  serve(service, Listener::kMain, bhttp::verb::post, "/v1/peek", R"({"policy":"a","key":"k"})");
  const std::string m = serve(service, Listener::kMain, bhttp::verb::get, "/metrics").body();
  EXPECT_NE(m.find("pacerd_decisions_total{policy=\"a\",result=\"allowed\"} 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("pacerd_decision_duration_seconds_count{policy=\"a\"} 2\n"), std::string::npos)
      << m;
  // This request itself.
  EXPECT_NE(m.find("pacerd_http_requests_in_flight 1\n"), std::string::npos) << m;
}

TEST(PacerdService, AWriteBetweenTheStartsReadAndTheServiceIsReloaded) {
  const std::string path = ::testing::TempDir() + "pacerd-unit-race.toml";
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << policy;
  auto [config, file] = load_config(path);
  // Rewritten after main read it, before the Service exists.
  std::ofstream(path, std::ios::binary | std::ios::trunc) << policy << "# changed\n";
  const auto settle = config.watch_settle;
  Service service(std::move(config), std::move(file));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(service.file_settled(t0)) << "seen changed, not yet settled";
  EXPECT_TRUE(service.file_settled(t0 + settle));
  EXPECT_FALSE(service.file_settled(t0 + 2 * settle));
  std::remove(path.c_str());
}

TEST(PacerdConfig, RatesDigestChangesWithTheRatesOnly) {
  const Policy a("p", {Rate::parse("10/1m", 5)});
  EXPECT_EQ(rates_digest(a), rates_digest(Policy("p", {Rate::parse("10/60s", 5)})));
  EXPECT_NE(rates_digest(a), rates_digest(Policy("p", {Rate::parse("10/1m", 4)})));
  EXPECT_NE(rates_digest(a), rates_digest(Policy("p", {Rate::parse("11/1m", 5)})));
}

ApiError error_of(std::string_view body, ApiCall call = ApiCall::kCheck) {
  auto r = parse_api_request(body, call, {.max_batch = 3, .max_key_bytes = 8});
  if (auto* e = std::get_if<ApiError>(&r)) return *e;
  return {"(none)", ""};
}

TEST(PacerdApi, ParsesSinglesAndBatches) {
  auto r = parse_api_request(R"({"policy":"a","key":"k"})", ApiCall::kCheck, {});
  ASSERT_TRUE(std::holds_alternative<ApiRequest>(r));
  EXPECT_FALSE(std::get<ApiRequest>(r).batch);
  EXPECT_EQ(std::get<ApiRequest>(r).items[0].cost, 1);
  r = parse_api_request(R"([{"policy":"a","key":"k","cost":0},{"key":"j","policy":"b"}])",
                        ApiCall::kCheck, {});
  ASSERT_TRUE(std::holds_alternative<ApiRequest>(r));
  const auto& items = std::get<ApiRequest>(r).items;
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].cost, 0);
  EXPECT_EQ(items[1].policy, "b");
}

TEST(PacerdApi, ErrorsNameTheField) {
  EXPECT_EQ(error_of(R"({"policy":"a","key":"123456789"})").field, "key");
  EXPECT_EQ(error_of(R"([{"policy":"a","key":"k"},{"policy":"a","key":"k","cost":-1}])").field,
            "[1].cost");
  EXPECT_EQ(error_of(R"([{},{},{},{}])").message, "a batch of 4 requests; at most 3 are allowed");
  EXPECT_EQ(error_of(R"({"policy":"a","key":"k","cost":1})", ApiCall::kReset).field, "cost");
  EXPECT_EQ(error_of(R"({"policy":"a","key":"k","cost":-1})", ApiCall::kPeek).field, "cost");
  EXPECT_EQ(error_of(R"({"policy":"a","key":"k","x":{"y":[1]}})").field, "x");
  EXPECT_EQ(error_of("[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]").message,
            "JSON nested deeper than 16 levels");
  // Strings with brackets do not count as nesting.
  EXPECT_EQ(error_of(R"({"policy":"[[[[[[[[[[[[[[[[[[[[[[","key":"k"})").field, "(none)");
  EXPECT_EQ(error_of("{\"policy\":\"a\",\"key\":\"\x80\"}").field, "");
}

TEST(PacerdApi, DecisionJson) {
  Decision d;
  d.outcome = Outcome::kDenied;
  d.limit = 10;
  d.retry_after = std::chrono::nanoseconds(1'000'001);
  d.reset_after = std::chrono::seconds(3);
  std::string out;
  append_decision_json(out, "api", d, /*shadow=*/false);
  EXPECT_EQ(out,
            R"({"allowed":false,"outcome":"denied","limit":10,"remaining":0,"retry_after_ms":2,)"
            R"("reset_after_ms":3000,"policy":"api","shadow":false,"degraded":false})");
  // A shadow policy's would-be denial is not shown: allowed, no retry (docs/DESIGN.md §8).
  out.clear();
  const http::Rule shadow(
      {.policy = Policy("api", {Rate(10, std::chrono::seconds(60))}), .shadow = true}, {});
  append_decision_json(out, "api", shadow.told(d), /*shadow=*/true);
  EXPECT_EQ(out,
            R"({"allowed":true,"outcome":"allowed","limit":10,"remaining":0,"retry_after_ms":0,)"
            R"("reset_after_ms":3000,"policy":"api","shadow":true,"degraded":false})");
}

}  // namespace
}  // namespace pacer::pacerd

namespace pacer::pacerd {
namespace {

// Issue 20 item 3: a change is read only once the file has stopped changing for `settle`.
TEST(PacerdFileWatch, AChangeIsTakenOnlyOnceItSettled) {
  using namespace std::chrono_literals;
  const FileStamp loaded{.mtime_ns = 1, .inode = 7, .device = 1, .size = 100};
  SettledChange watch(loaded, 2s);
  const auto t0 = SettledChange::Clock::time_point{} + 1h;
  EXPECT_FALSE(watch.observe(loaded, t0));
  // The first half of an in-place write, then the second 1.6 s later: the first is never taken.
  const FileStamp half{.mtime_ns = 2, .inode = 7, .device = 1, .size = 40};
  const FileStamp whole{.mtime_ns = 3, .inode = 7, .device = 1, .size = 120};
  EXPECT_FALSE(watch.observe(half, t0 + 1s));
  EXPECT_FALSE(watch.observe(half, t0 + 2s));
  EXPECT_TRUE(watch.waiting());
  EXPECT_FALSE(watch.observe(whole, t0 + 2600ms));  // changed again: the wait starts over
  EXPECT_FALSE(watch.observe(whole, t0 + 4s));
  EXPECT_TRUE(watch.observe(whole, t0 + 4600ms));
  EXPECT_FALSE(watch.observe(whole, t0 + 10s)) << "taken once";
  // Changed and changed back before it settled: nothing to read.
  const FileStamp other{.mtime_ns = 4, .inode = 8, .device = 1, .size = 120};
  EXPECT_FALSE(watch.observe(other, t0 + 11s));
  EXPECT_FALSE(watch.observe(whole, t0 + 12s));
  EXPECT_FALSE(watch.waiting());
  EXPECT_FALSE(watch.observe(whole, t0 + 20s));
  // A SIGHUP read the file: the watch does not read it again.
  EXPECT_FALSE(watch.observe(other, t0 + 21s));
  watch.loaded(other);
  EXPECT_FALSE(watch.observe(other, t0 + 30s));
  // settle 0: taken at the first look.
  SettledChange eager(loaded, 0s);
  EXPECT_FALSE(eager.observe(half, t0)) << "seen once: the stamp is recorded";
  EXPECT_TRUE(eager.observe(half, t0));
}

}  // namespace
}  // namespace pacer::pacerd

namespace pacer::pacerd {
namespace {

// Issue 20 item 2: at most `limit` items at the store; the rest wait in order of arrival.
TEST(PacerdItemWindow, BoundsItemsInFlightAndRunsTheRestInOrder) {
  ItemWindow window(2);
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) window.submit([&ran, i] { ran.push_back(i); });
  EXPECT_EQ(ran, (std::vector<int>{0, 1}));
  EXPECT_EQ(window.in_flight(), 2u);
  EXPECT_EQ(window.queued(), 3u);
  window.release();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  window.release();
  window.release();
  window.release();
  window.release();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(window.in_flight(), 0u);
  EXPECT_EQ(window.queued(), 0u);
  EXPECT_THROW(ItemWindow(0), std::invalid_argument);
  EXPECT_THROW(window.submit({}), std::invalid_argument);
}

// A store that answers inline releases from inside the item, which submits the next: 100,000
// items pass one at a time without the stack growing with them.
TEST(PacerdItemWindow, InlineCompletionsDoNotNest) {
  ItemWindow window(1);
  int depth = 0, deepest = 0, done = 0;
  std::function<void(int)> submit = [&](int left) {
    window.submit([&, left] {
      ++depth;
      deepest = std::max(deepest, depth);
      ++done;
      window.release();
      if (left > 0) submit(left - 1);
      --depth;
    });
  };
  submit(100'000);
  EXPECT_EQ(done, 100'001);
  EXPECT_LE(deepest, 1);
  EXPECT_EQ(window.in_flight(), 0u);
}

TEST(PacerdItemWindow, ManyThreadsNeverExceedTheLimit) {
  ItemWindow window(8);
  std::atomic<int> at_store{0}, most{0}, done{0};
  std::mutex mutex;
  std::vector<std::function<void()>> completions;  // answered later, from other threads
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  std::thread store([&] {
    while (!stop || done < 4000) {
      std::vector<std::function<void()>> batch;
      {
        std::lock_guard lock(mutex);
        batch.swap(completions);
      }
      for (auto& c : batch) c();
      std::this_thread::yield();
    }
  });
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        window.submit([&] {
          const int now = ++at_store;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          std::lock_guard lock(mutex);
          completions.push_back([&] {
            --at_store;
            ++done;
            window.release();
          });
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  store.join();
  EXPECT_EQ(done, 4000);
  EXPECT_LE(most, 8);
  EXPECT_EQ(window.in_flight(), 0u);
}

}  // namespace
}  // namespace pacer::pacerd

namespace pacer::pacerd {
namespace {

// Issues 20 and 24: the new settings are read, checked and named when wrong.
// Issue 19: the identity grammar is the library's (http::Identity::parse), server.shadow and
// each policy's missing_identity are read and checked.
TEST(PacerdConfig, IdentityShadowAndMissingIdentity) {
  const Config c = parse_config(
      "[server]\nshadow = true\n[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n"
      "identity = [\"org+user\", \"header:X-Tenant\"]\nmissing_identity = \"shared\"\n",
      "p.toml");
  EXPECT_TRUE(c.shadow);
  // The library's one spelling of the in-process store (pacer/open_store.h), and "memory".
  for (const char* url : {"memory://", "memory"}) {
    const Config m =
        parse_config(std::string("[store]\nurl = \"") + url +
                         "\"\n[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n",
                     "p.toml");
    EXPECT_TRUE(m.memory_store()) << url;
  }
  EXPECT_NE(errors_of("[store]\nurl = \"memroy://\"\n[[policy]]\nname = \"a\"\nrates = "
                      "[{ limit = \"1/1s\" }]\n")
                .find("expected \"memory://\", redis://"),
            std::string::npos);
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].missing_identity, http::MissingIdentity::kShared);
  const std::string errors = errors_of(
      "[server]\nshadow = \"yes\"\n[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n"
      "identity = [\"client_ip\", \"cookie\", \"header:\"]\nmissing_identity = \"deny\"\n");
  EXPECT_NE(errors.find("server.shadow = \"yes\""), std::string::npos) << errors;
  EXPECT_NE(errors.find("invalid identity 'cookie'; expected client_ip, api_key, "
                        "header:<Header-Name>, user, org, attribute:<name>"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("invalid identity 'header:': the header name must be"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("policy[0].missing_identity = \"deny\": expected \"refuse\""),
            std::string::npos)
      << errors;
}

TEST(PacerdConfig, ReliabilityAndModuleSettings) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  const Config c = parse_config(
      "[server]\nbody_timeout = \"5s\"\nmin_body_rate = 100\nmax_connections_per_client = 8\n"
      "watch_settle = \"500ms\"\n[store]\nscript = \"module\"\n[api]\nbatch_in_flight = 64\n"
      "batch_in_flight_per_request = 16\n" +
          policy,
      "p.toml");
  EXPECT_EQ(c.body_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.min_body_rate, 100u);
  EXPECT_EQ(c.max_connections_per_client, 8u);
  EXPECT_EQ(c.watch_settle, std::chrono::milliseconds(500));
  EXPECT_EQ(c.store_script, redis::RedisScript::kModule);
  EXPECT_EQ(c.batch_in_flight, 64u);
  EXPECT_EQ(c.batch_in_flight_per_request, 16u);
  const Config defaults = parse_config(policy, "p.toml");
  EXPECT_EQ(defaults.store_script, redis::RedisScript::kAuto);
  ASSERT_EQ(defaults.restart_needed(c).size(), 6u);  // all but batch_in_flight_per_request

  const std::string errors = errors_of(
      "[server]\nbody_timeout = \"0s\"\nmin_body_rate = -1\n[store]\nscript = "
      "\"luajit\"\n[api]\nbatch_in_flight = 0\n" +
      policy);
  EXPECT_NE(errors.find("p.toml:2:16: server.body_timeout"), std::string::npos) << errors;
  EXPECT_NE(errors.find("server.min_body_rate = -1"), std::string::npos) << errors;
  EXPECT_NE(errors.find("store.script = \"luajit\": expected auto, lua or module"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("api.batch_in_flight = 0"), std::string::npos) << errors;
}

// [auth]: the status and body of a denial on /v1/auth, and of the store's failure.
TEST(PacerdConfig, AuthDenyStatusAndBody) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  const Config defaults = parse_config(policy, "p.toml");
  EXPECT_EQ(defaults.auth.deny_status, 403u);
  EXPECT_EQ(defaults.auth.unavailable_status, 403u);
  EXPECT_FALSE(defaults.auth.deny_body);
  const Config proxy = parse_config("[auth]\ndeny_status = 429\n" + policy, "p.toml");
  EXPECT_EQ(proxy.auth.deny_status, 429u);
  EXPECT_EQ(proxy.auth.unavailable_status, 503u);  // what a forward-auth proxy shows as it is
  const Config custom = parse_config(
      "[auth]\ndeny_status = 429\nunavailable_status = 403\ndeny_body = \"slow down\\n\"\n"
      "deny_content_type = \"text/plain; charset=utf-8\"\n" +
          policy,
      "p.toml");
  EXPECT_EQ(custom.auth.unavailable_status, 403u);
  EXPECT_EQ(custom.auth.deny_body, "slow down\n");
  EXPECT_EQ(custom.auth.deny_content_type, "text/plain; charset=utf-8");
  EXPECT_NE(custom.summary().find("auth denies     429 with a body of 10 bytes"), std::string::npos)
      << custom.summary();
  EXPECT_TRUE(defaults.restart_needed(custom).empty()) << "reloadable";

  const std::string errors = errors_of(
      "[auth]\ndeny_status = 500\nunavailable_status = 429\ndeny_body = 7\n"
      "deny_content_type = \"text plain\"\ncolour = \"red\"\n" +
      policy);
  EXPECT_NE(errors.find("p.toml:2:15: auth.deny_status = 500: expected 403 (nginx auth_request, "
                        "the default) or 429 (forward-auth proxies"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("auth.unavailable_status = 429: expected 403"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("auth.deny_body = 7: expected a string, got an integer"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("auth.deny_content_type = \"text plain\": expected a media type"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("auth.colour = \"red\": unknown key"), std::string::npos) << errors;
  for (const std::string bad : {"\"429\"", "429.0", "true", "-403", "[403]", "99999999999999"}) {
    EXPECT_NE(errors_of("[auth]\ndeny_status = " + bad + "\n" + policy).find("auth.deny_status = "),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(errors_of("[auth]\ndeny_body = \"" + std::string(4097, 'x') + "\"\n" + policy)
                .find("is 4097 bytes long; at most 4096 are allowed"),
            std::string::npos);
  EXPECT_NE(errors_of("[auth]\ndeny_content_type = \"text/plain\"\n" + policy)
                .find("only used with auth.deny_body"),
            std::string::npos);
  EXPECT_NE(errors_of("[auth]\ndeny_body = \"x\"\ndeny_content_type = \"text/plain\\r\\nX: y\"\n" +
                      policy)
                .find("expected a media type"),
            std::string::npos);
  EXPECT_NE(errors_of("auth = 429\n" + policy).find("auth = 429: expected a table"),
            std::string::npos);
}

TEST(PacerdConfig, LogFormat) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  EXPECT_EQ(parse_config(policy, "p.toml").log_format, log::Format::kLogfmt);
  const Config json = parse_config("[log]\nformat = \"json\"\n" + policy, "p.toml");
  EXPECT_EQ(json.log_format, log::Format::kJson);
  EXPECT_EQ(parse_config(policy, "p.toml").restart_needed(json).size(), 1u);
  EXPECT_NE(errors_of("[log]\nformat = \"xml\"\nlevel = \"debug\"\n" + policy)
                .find("log.format = \"xml\": expected logfmt or json"),
            std::string::npos);
  EXPECT_NE(errors_of("[log]\nformat = \"xml\"\nlevel = \"debug\"\n" + policy)
                .find("log.level = \"debug\": unknown key"),
            std::string::npos);
  EXPECT_NE(errors_of("[log]\nformat = 1\n" + policy).find("log.format = 1: expected a string"),
            std::string::npos);
}

// [store.tls] is checked when the file is read: what the Redis client would refuse at start is
// named with its line (tests/pacerd/redis_test.cc uses good files against a TLS Redis).
TEST(PacerdConfig, StoreTlsFilesAreCheckedAtLoad) {
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  const std::string dir = ::testing::TempDir();
  const std::string junk = dir + "pacerd-unit-junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  auto errors = [&](const std::string& url, const std::string& tls) {
    return errors_of("[store]\nurl = \"" + url + "\"\n[store.tls]\n" + tls + policy);
  };
  std::string e = errors("rediss://127.0.0.1:6380", "ca_file = \"/nonexistent/ca.pem\"\n");
  EXPECT_NE(e.find("p.toml:4:11: store.tls.ca_file = \"/nonexistent/ca.pem\": cannot read: No such "
                   "file or directory"),
            std::string::npos)
      << e;
  e = errors("rediss://127.0.0.1:6380", "ca_file = \"ca.pem\"\n");
  EXPECT_NE(e.find("store.tls.ca_file = \"ca.pem\": expected an absolute path"), std::string::npos)
      << e;
  e = errors("rediss://127.0.0.1:6380", "ca_file = \"" + junk + "\"\n");
  EXPECT_NE(e.find("store.tls.ca_file = \"" + junk + "\": not a PEM file of CA certificates"),
            std::string::npos)
      << e;
  e = errors("rediss://127.0.0.1:6380", "key_file = \"" + junk + "\"\n");
  EXPECT_NE(e.find("store.tls.key_file = \"" + junk + "\": needs store.tls.cert_file too"),
            std::string::npos)
      << e;
  e = errors("rediss://127.0.0.1:6380", "cert_file = \"" + junk + "\"\n");
  EXPECT_NE(e.find("needs store.tls.key_file too"), std::string::npos) << e;
  EXPECT_NE(e.find("not a PEM certificate"), std::string::npos) << e;
  e = errors("rediss://127.0.0.1:6380", "server_name = \"a b\"\nverify = false\nca_file = 42\n");
  EXPECT_NE(e.find("store.tls.server_name = \"a b\": expected a host name"), std::string::npos)
      << e;
  EXPECT_NE(e.find("store.tls.verify = false: unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("store.tls.ca_file = 42: expected a string, got an integer"), std::string::npos)
      << e;
  e = errors("redis://127.0.0.1:6379", "server_name = \"redis.internal\"\n");
  EXPECT_NE(e.find("p.toml:3:1: store.tls = {...}: only used with TLS URLs"), std::string::npos)
      << e;
  e = errors("memory://", "server_name = \"redis.internal\"\n");
  EXPECT_NE(e.find("store.tls = {...}: only used with TLS URLs"), std::string::npos) << e;
  const Config ok = parse_config(
      "[store]\nurl = \"rediss+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster\"\n"
      "[store.tls]\nserver_name = \"redis.internal\"\n" +
          policy,
      "p.toml");
  EXPECT_EQ(ok.tls.server_name, "redis.internal");
  EXPECT_NE(ok.summary().find("store tls       CA the system's; client certificate none; server "
                              "name redis.internal"),
            std::string::npos)
      << ok.summary();
  std::remove(junk.c_str());
}

}  // namespace
}  // namespace pacer::pacerd
