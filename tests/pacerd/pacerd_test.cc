// pacerd as a process on the in-process store: every endpoint and its errors, configuration
// errors, hot reload under traffic, shadow policies, the admin listener and SIGTERM.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include "logfmt.h"
#include "pacerd_process.h"

namespace pacer::testing {
namespace {

TEST(Pacerd, CheckConfigPrintsASummaryOrNamesEveryProblem) {
  ScratchDir dir;
  const auto good = (dir.path() / "good.toml").string();
  // The file of issue #8, unchanged.
  std::ofstream(good) << R"([server]
listen = "127.0.0.1:9090"

[store]
url = "memory"          # or redis://, rediss://, redis+cluster:// as in the library
fail_mode = "open"      # open | closed | local

[[policy]]
name = "api"
rates = [{ limit = "10/1m", burst = 5 }]
identity = "header:X-API-Key"     # used by the auth endpoint; /v1/check gets the key in JSON

[[policy]]
name = "login"
rates = [{ limit = "5/1m" }, { limit = "20/1h" }]
identity = "client_ip"
shadow = true
)";
  auto [rc, out] = run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(good));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("api            10/1m (burst=5); identity header:X-API-Key"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("shadow"), std::string::npos) << out;

  const auto bad = (dir.path() / "bad.toml").string();
  std::ofstream(bad) << R"([server]
listen = "127.0.0.1:99999"
trusted_proxies = ["10.0.0.0/33"]
[store]
url = "redis://:secret@127.0.0.1:notaport"
fail_mode = "sideways"
timeout = "-5ms"
[[policy]]
name = "api"
rates = [{ limit = "10/1x", burst = 5 }, { limit = "0/1m" }]
identity = "cookie:x"
colour = "blue"
[[policy]]
name = "api"
rates = [{ limit = "5/1m", burst = -1 }]
[[policy]]
name = "bad name!"
rates = [{ limit = "5/1m" }]
)";
  std::tie(rc, out) = run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(bad));
  EXPECT_EQ(rc, 2) << out;
  for (const std::string expected : {
           "bad.toml:2:10: server.listen = \"127.0.0.1:99999\"",
           "bad.toml:3:20: server.trusted_proxies[0] = \"10.0.0.0/33\"",
           "bad.toml:5:7: store.url: invalid Redis URL",
           "bad.toml:6:13: store.fail_mode = \"sideways\"",
           "bad.toml:7:11: store.timeout = \"-5ms\"",
           "bad.toml:10:20: policy[0].rates[0].limit = \"10/1x\"",
           "bad.toml:10:52: policy[0].rates[1].limit = \"0/1m\"",
           "bad.toml:11:12: policy[0].identity = \"cookie:x\"",
           "bad.toml:12:1: policy[0].colour = \"blue\": unknown key",
           "bad.toml:14:8: policy[1].name = \"api\": duplicate policy name",
           "bad.toml:15:36: policy[1].rates[0].burst = -1",
           "bad.toml:17:8: policy[2].name = \"bad name!\"",
       })
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\nnot in:\n" << out;
  EXPECT_EQ(out.find("secret"), std::string::npos) << "password printed: " << out;

  const auto broken = (dir.path() / "broken.toml").string();
  std::ofstream(broken) << "[server]\nlisten = \"127.0.0.1:1\n";
  std::tie(rc, out) =
      run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(broken));
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("broken.toml:2:"), std::string::npos) << out;
  std::tie(rc, out) = run_command(std::string(PACERD_PATH) + " --check-config /nonexistent.toml");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("/nonexistent.toml: cannot open"), std::string::npos) << out;
}

TEST(Pacerd, TheShippedExampleConfigsAreValid) {
  for (const char* file : {"/apps/pacerd/pacerd.example.toml", "/examples/nginx/pacerd.toml"}) {
    const auto [rc, out] = run_command(std::string(PACERD_PATH) + " --check-config " +
                                       shell_quote(std::string(PACER_SOURCE_DIR) + file));
    EXPECT_EQ(rc, 0) << file << ": " << out;
  }
}

TEST(Pacerd, ABadConfigStopsTheStartNamingTheProblem) {
  Pacerd pacerd(
      "[server]\nlisten = \"127.0.0.1:0\"\n[[policy]]\nname = \"x\"\nrates = [{ limit = "
      "\"ten/1m\" }]\n");
  ASSERT_TRUE(pacerd.process().exited(10s));
  EXPECT_EQ(pacerd.process().exit_code(), 2);
  EXPECT_NE(pacerd.log().find("pacerd.toml:5:20: policy[0].rates[0].limit = \"ten/1m\""),
            std::string::npos)
      << pacerd.log();
}

TEST(Pacerd, CheckAnswersEveryDecisionWithHeadersAndTheCallerDecides) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  // 10/1h with burst 5: six at once, then denied with a retry time of ~360 s (less the time
  // the six took).
  for (int i = 0; i < 6; ++i) {
    const auto r = post(client, "/v1/check", R"({"policy":"api","key":"user:1"})");
    ASSERT_EQ(r.status, 200) << r.raw.body();
    EXPECT_EQ(r.body["allowed"], true);
    EXPECT_EQ(r.body["outcome"], "allowed");
    EXPECT_EQ(r.body["limit"], 10);
    EXPECT_EQ(r.body["remaining"], 5 - i);
    EXPECT_EQ(r.body["retry_after_ms"], 0);
    EXPECT_EQ(std::string(r.raw["RateLimit-Remaining"]), std::to_string(5 - i));
    EXPECT_EQ(std::string(r.raw["RateLimit-Limit"]), "10");
  }
  const auto denied = post(client, "/v1/check", R"({"policy":"api","key":"user:1"})");
  ASSERT_EQ(denied.status, 200);
  EXPECT_EQ(denied.body["allowed"], false);
  EXPECT_EQ(denied.body["outcome"], "denied");
  EXPECT_EQ(denied.body["remaining"], 0);
  const int retry_ms = denied.body["retry_after_ms"].get<int>();
  EXPECT_GT(retry_ms, 300'000);
  EXPECT_LE(retry_ms, 360'000);
  EXPECT_GT(denied.body["reset_after_ms"].get<int>(), 30000);
  // Whole seconds, rounded up.
  EXPECT_EQ(std::string(denied.raw["Retry-After"]), std::to_string((retry_ms + 999) / 1000));
  EXPECT_EQ(std::string(denied.raw["RateLimit-Remaining"]), "0");
  // Another key is untouched; a weighted cost counts as many; one that can never pass says so.
  auto r = post(client, "/v1/check", check_body("api", "user:2", 4));
  EXPECT_EQ(r.body["remaining"], 2);
  r = post(client, "/v1/check", check_body("api", "user:3", 7));
  EXPECT_EQ(r.body["outcome"], "exceeds_capacity");
  EXPECT_TRUE(r.body["retry_after_ms"].is_null());
  // Cost 0 is a peek.
  r = post(client, "/v1/check", check_body("api", "user:2", 0));
  EXPECT_EQ(r.body["allowed"], true);
  EXPECT_EQ(r.body["remaining"], 2);
}

TEST(Pacerd, ABatchIsAnsweredItemByItemInOrder) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  json batch = json::array();
  for (int i = 0; i < 8; ++i) batch.push_back({{"policy", "api"}, {"key", "b"}});
  batch.push_back({{"policy", "api"}, {"key", "other"}, {"cost", 2}});
  batch.push_back({{"policy", "login"}, {"key", "b"}});
  const auto r = post(client, "/v1/check", batch.dump());
  ASSERT_EQ(r.status, 200) << r.raw.body();
  ASSERT_TRUE(r.body.is_array());
  ASSERT_EQ(r.body.size(), 10u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.body[i]["allowed"], true) << i;
  EXPECT_EQ(r.body[6]["allowed"], false);
  EXPECT_EQ(r.body[7]["outcome"], "denied");
  EXPECT_EQ(r.body[8]["remaining"], 4);
  EXPECT_EQ(r.body[9]["policy"], "login");
  EXPECT_EQ(r.body[9]["shadow"], true);

  // Bounded: 1000 items pass, 1001 are refused.
  json big = json::array();
  for (int i = 0; i < 1000; ++i) big.push_back({{"policy", "api"}, {"key", std::to_string(i)}});
  EXPECT_EQ(post(client, "/v1/check", big.dump()).status, 200);
  big.push_back({{"policy", "api"}, {"key", "x"}});
  const auto too_big = post(client, "/v1/check", big.dump());
  EXPECT_EQ(too_big.status, 400);
  EXPECT_NE(too_big.body["message"].get<std::string>().find("1001"), std::string::npos);
  // A bad item anywhere refuses the whole batch, naming it.
  const auto bad = post(client, "/v1/check",
                        R"([{"policy":"api","key":"a"},{"policy":"api","key":"a","cost":-2}])");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["field"], "[1].cost");
  const auto unknown =
      post(client, "/v1/check", R"([{"policy":"api","key":"a"},{"policy":"nope","key":"a"}])");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.body["field"], "[1].policy");
}

struct BadRequest {
  std::string body;
  std::string field;
  std::string in_message;
};

TEST(Pacerd, BadRequestsAre400NamingTheFieldAndNeverHurtTheNext) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  std::string deep(10000, '[');
  std::string deep_object = "{\"policy\":" + std::string(5000, '[') + "}";
  const std::vector<BadRequest> cases{
      {"", "", "not valid JSON"},
      {"{", "", "not valid JSON"},
      {"{\"policy\":\"api\",\"key\":\"a\"", "", "not valid JSON"},
      {"not json", "", "not valid JSON"},
      {deep, "", "nested deeper"},
      {deep_object, "", "nested deeper"},
      {"\"api\"", "", "expected an object"},
      {"42", "", "expected an object"},
      {"[]", "", "empty batch"},
      {"[1]", "[0]", "expected an object"},
      {R"({"key":"a"})", "policy", "missing"},
      {R"({"policy":"api"})", "key", "missing"},
      {R"({"policy":"nope","key":"a"})", "policy", "unknown policy 'nope'"},
      {R"({"policy":"","key":"a"})", "policy", "non-empty string"},
      {R"({"policy":7,"key":"a"})", "policy", "non-empty string"},
      {R"({"policy":"api","key":""})", "key", "must not be empty"},
      {R"({"policy":"api","key":["a"]})", "key", "must be a string"},
      {R"({"policy":"api","key":null})", "key", "must be a string"},
      {"{\"policy\":\"api\",\"key\":\"" + std::string(1025, 'k') + "\"}", "key", "1025 bytes"},
      {R"({"policy":"api","key":"a","cost":-1})", "cost", "got -1"},
      {R"({"policy":"api","key":"a","cost":1.5})", "cost", "whole number"},
      {R"({"policy":"api","key":"a","cost":"1"})", "cost", "whole number"},
      {R"({"policy":"api","key":"a","cost":1e300})", "cost", "whole number"},
      {R"({"policy":"api","key":"a","cost":99999999999999999999})", "cost", "whole number"},
      {R"({"policy":"api","key":"a","cost":2000000000})", "cost", "from 0 to"},
      {R"({"policy":"api","key":"a","cots":1})", "cots", "unknown field"},
      {"{\"policy\":\"api\",\"key\":\"\xff\xfe\"}", "", "not valid JSON"},
      {"{\"policy\":\"api\",\"key\":\"caf\xc3\"}", "", "not valid JSON"},
      {"{\"policy\":\"api\",\"key\":\"a\",\"\xc3\x28\":1}", "", "not valid JSON"},
      {R"({"policy":"api","key":"\ud800"})", "", "not valid JSON"},
  };
  for (const auto& bad : cases) {
    const auto r = post(client, "/v1/check", bad.body);
    EXPECT_EQ(r.status, 400) << bad.body.substr(0, 80);
    ASSERT_TRUE(r.body.is_object()) << r.raw.body();
    EXPECT_EQ(r.body["error"], "invalid_request");
    EXPECT_EQ(r.body["field"], bad.field) << bad.body.substr(0, 80) << " -> " << r.raw.body();
    EXPECT_NE(r.body["message"].get<std::string>().find(bad.in_message), std::string::npos)
        << bad.body.substr(0, 80) << " -> " << r.raw.body();
    // The same connection goes on.
    const auto good = post(client, "/v1/check", R"({"policy":"api","key":"after-bad"})");
    ASSERT_EQ(good.status, 200) << "after " << bad.body.substr(0, 80);
    EXPECT_EQ(good.body["policy"], "api");
  }
  // Keys with braces, control characters or any length up to the bound are fine (hashed).
  for (const std::string& key :
       std::vector<std::string>{"{x}", "a\u0001b", std::string(1024, 'z'), "ключ"}) {
    const auto r = post(client, "/v1/check", json{{"policy", "api"}, {"key", key}}.dump());
    EXPECT_EQ(r.status, 200) << r.raw.body();
    EXPECT_EQ(r.body["remaining"], 5);
  }
  // Wrong methods and paths.
  auto r = get(client, "/v1/check");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(std::string(r.raw["Allow"]), "POST");
  EXPECT_EQ(get(client, "/v2/check").status, 404);
  EXPECT_EQ(post(client, "/v1/policies", "{}").status, 405);
  // A body beyond the limit: 413, and the server is still there for the next connection.
  HttpClient huge(pacerd.port());
  const auto too_large =
      huge.send(bhttp::verb::post, "/v1/check", {}, std::string(2 * 1024 * 1024, ' '));
  EXPECT_EQ(too_large.result_int(), 413);
  HttpClient after(pacerd.port());
  EXPECT_EQ(post(after, "/v1/check", R"({"policy":"api","key":"z"})").status, 200);
}

// Random bodies (bytes, and JSON-ish fragments glued at random), each followed by a good
// request on the same connection: every one is answered 200 or 400, the next one 200.
TEST(Pacerd, RandomBodiesNeverHurtTheNextRequest) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  const unsigned seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 random(seed);
  const std::vector<std::string> pieces{"{",          "}",
                                        "[",          "]",
                                        ",",          ":",
                                        "\"policy\"", "\"key\"",
                                        "\"cost\"",   "\"api\"",
                                        "\"login\"",  "1",
                                        "-1",         "1e999",
                                        "0.5",        "null",
                                        "true",       "\"\\u0000\"",
                                        "\"\xff\"",   "\"\\ud800\"",
                                        " ",          "\"" + std::string(300, 'x') + "\""};
  HttpClient client(pacerd.port());
  for (int i = 0; i < 1500; ++i) {
    std::string body;
    const int n = std::uniform_int_distribution<int>(0, 24)(random);
    for (int k = 0; k < n; ++k) {
      if (random() % 3 == 0)
        body += static_cast<char>(random() % 256);
      else
        body += pieces[random() % pieces.size()];
    }
    const auto path = (i % 3 == 0) ? "/v1/check" : (i % 3 == 1) ? "/v1/peek" : "/v1/reset";
    const auto bad = client.send(bhttp::verb::post, path, {}, body);
    ASSERT_TRUE(bad.result_int() == 200 || bad.result_int() == 400)
        << bad.result_int() << " for "
        << json(body).dump(-1, ' ', true, json::error_handler_t::replace);
    EXPECT_TRUE(json::accept(bad.body())) << bad.body();
    const auto good = post(client, "/v1/check", R"({"policy":"login","key":"fine"})");
    ASSERT_EQ(good.status, 200) << "after "
                                << json(body).dump(-1, ' ', true, json::error_handler_t::replace);
  }
  EXPECT_EQ(pacerd.log().find("internal_error"), std::string::npos) << pacerd.log();
}

TEST(Pacerd, PeekResetPoliciesConfigHealthReadyAndMetrics) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  for (int i = 0; i < 3; ++i) post(client, "/v1/check", R"({"policy":"api","key":"p"})");
  auto peek = post(client, "/v1/peek", R"({"policy":"api","key":"p","cost":0})");
  ASSERT_EQ(peek.status, 200) << peek.raw.body();
  EXPECT_EQ(peek.body["remaining"], 3);
  peek = post(client, "/v1/peek", R"({"policy":"api","key":"p"})");  // cost 1, as a check
  EXPECT_EQ(peek.body["remaining"], 2);
  peek = post(client, "/v1/peek", R"({"policy":"api","key":"p"})");
  EXPECT_EQ(peek.body["remaining"], 2);  // a peek consumes nothing
  EXPECT_EQ(post(client, "/v1/reset", R"({"policy":"api","key":"p","cost":1})").body["field"],
            "cost");
  const auto reset = post(client, "/v1/reset", R"({"policy":"api","key":"p"})");
  ASSERT_EQ(reset.status, 200) << reset.raw.body();
  EXPECT_EQ(reset.body["reset"], true);
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"api","key":"p","cost":0})").body["remaining"],
            6);
  EXPECT_EQ(post(client, "/v1/reset", R"({"policy":"nope","key":"p"})").body["field"], "policy");
  const auto resets =
      post(client, "/v1/reset", R"([{"policy":"api","key":"p"},{"policy":"login","key":"q"}])");
  EXPECT_EQ(resets.body.size(), 2u);

  const auto policies = get(client, "/v1/policies");
  ASSERT_EQ(policies.status, 200);
  ASSERT_EQ(policies.body["policies"].size(), 2u);
  EXPECT_EQ(policies.body["policies"][0]["name"], "api");
  EXPECT_EQ(policies.body["policies"][0]["rates"][0]["limit"], "10/1h");
  EXPECT_EQ(policies.body["policies"][0]["rates"][0]["burst"], 5);
  EXPECT_EQ(policies.body["policies"][1]["shadow"], true);
  EXPECT_EQ(policies.body["policies"][1]["rates"].size(), 2u);

  const auto config = get(client, "/v1/config");
  ASSERT_EQ(config.status, 200);
  EXPECT_EQ(config.body["version"], 1);
  EXPECT_TRUE(config.body["last_reload_error"].is_null());
  EXPECT_EQ(config.body["store"]["url"], "memory");
  EXPECT_EQ(config.body["store"]["fail_mode"], "open");

  EXPECT_EQ(get(client, "/health").status, 200);
  const auto ready = get(client, "/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body["status"], "ready");

  const auto m = client.get("/metrics");
  ASSERT_EQ(m.result_int(), 200);
  const std::string text = m.body();
  EXPECT_EQ(metric(text, "pacerd_decisions_total{policy=\"api\",result=\"allowed\"}"), 3) << text;
  EXPECT_EQ(metric(text, "pacerd_decisions_total{policy=\"api\",result=\"denied\"}"), 0);
  EXPECT_EQ(metric(text, "pacerd_decision_duration_seconds_count{policy=\"api\"}"), 3);
  EXPECT_GT(metric(text, "pacerd_decision_duration_seconds_sum{policy=\"api\"}"), 0);
  EXPECT_EQ(metric(text, "pacerd_decision_duration_seconds_bucket{policy=\"api\",le=\"+Inf\"}"), 3);
  EXPECT_EQ(metric(text, "pacerd_store_errors_total{policy=\"api\"}"), 0);
  EXPECT_EQ(metric(text, "pacerd_config_version"), 1);
  EXPECT_EQ(metric(text, "pacerd_store_connected"), 1);
}

// A missing identity: 401 by default (nothing spent), or one shared bucket when the policy says
// missing_identity = "shared" (docs/DESIGN.md §7).
TEST(Pacerd, MissingIdentityIsRefusedOrShared) {
  Pacerd pacerd(pacerd_config() +
                "\n[[policy]]\nname = \"tenant\"\nrates = [{ limit = \"2/1h\", burst = 1 }]\n"
                "identity = \"header:X-Tenant\"\nmissing_identity = \"shared\"\n");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  const auto refused = client.get("/v1/auth/api");
  EXPECT_EQ(refused.result_int(), 401);
  EXPECT_EQ(std::string(refused["X-Pacer-Outcome"]), "identity_missing");
  EXPECT_EQ(client.get("/v1/auth/tenant").result_int(), 204);
  EXPECT_EQ(client.get("/v1/auth/tenant").result_int(), 204);
  EXPECT_EQ(client.get("/v1/auth/tenant").result_int(), 403);  // the one anonymous bucket
  EXPECT_EQ(client.get("/v1/auth/tenant", {{"X-Tenant", "t1"}}).result_int(), 204);
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"tenant","key":"anonymous","cost":0})")
                .body["remaining"],
            0);
}

// Issue 19: a peek on an exhausted key used to answer allowed with retry_after_ms 0.
TEST(Pacerd, PeekAnswersWhatTheNextCheckAnswers) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  expect_peek_is_the_next_check(client, "peek-contract");
}

TEST(Pacerd, AuthEndpointAllowsWith204AndDeniesWith403AndHeaders) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  for (int i = 0; i < 6; ++i) {
    const auto r = client.get("/v1/auth/api", {{"X-API-Key", "secret-1"}});
    ASSERT_EQ(r.result_int(), 204) << i;
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), std::to_string(5 - i));
  }
  const auto denied = client.get("/v1/auth/api", {{"X-API-Key", "secret-1"}});
  EXPECT_EQ(denied.result_int(), 403);
  EXPECT_GT(std::stoi(std::string(denied["Retry-After"])), 300);
  EXPECT_LE(std::stoi(std::string(denied["Retry-After"])), 360);
  EXPECT_EQ(std::string(denied["RateLimit-Remaining"]), "0");
  EXPECT_EQ(std::string(denied["X-Pacer-Outcome"]), "denied");
  // For a proxy that writes its own 429 body: the retry in milliseconds, as in that body.
  const int retry_ms = std::stoi(std::string(denied["X-Pacer-Retry-After-Ms"]));
  EXPECT_EQ(json::parse(denied.body())["retry_after_ms"], retry_ms);
  EXPECT_EQ((retry_ms + 999) / 1000, std::stoi(std::string(denied["Retry-After"])));
  EXPECT_EQ(client.get("/v1/auth/api", {{"X-API-Key", "secret-2"}}).result_int(), 204);
  // No identity: 401; an unknown policy: 404.
  const auto missing = client.get("/v1/auth/api");
  EXPECT_EQ(missing.result_int(), 401);
  EXPECT_EQ(std::string(missing["X-Pacer-Outcome"]), "identity_missing");
  EXPECT_EQ(client.get("/v1/auth/nope", {{"X-API-Key", "k"}}).result_int(), 404);
  // A trusted proxy (loopback) speaks for the client: the forwarded address is the identity,
  // and the same key on /v1/check or /v1/peek ("ip:<address>") is the same bucket.
  EXPECT_EQ(client.get("/v1/auth/login", {{"X-Forwarded-For", "203.0.113.9"}}).result_int(), 204);
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"login","key":"ip:203.0.113.9","cost":0})")
                .body["remaining"],
            0);
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"login","key":"ip:127.0.0.1","cost":0})")
                .body["remaining"],
            1);
}

TEST(Pacerd, ShadowPoliciesCountAndLogButAlwaysAllow) {
  Pacerd pacerd(pacerd_config() +
                "\n[[policy]]\nname = \"tenant\"\nrates = [{ limit = \"1/1m\" }]\n"
                "identity = \"header:X-Tenant\"\nshadow = true\n");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  // Issue 19: no answer shows the would-be denial: allowed, outcome allowed, no retry, and no
  // RateLimit-* or Retry-After header (peeks and batches alike).
  auto no_denial_signal = [](const JsonReply& r, int i) {
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body["allowed"], true) << i;
    EXPECT_EQ(r.body["shadow"], true);
    EXPECT_EQ(r.body["outcome"], "allowed") << i;
    EXPECT_EQ(r.body["retry_after_ms"], 0) << i;
    for (const char* header : {"Retry-After", "RateLimit-Remaining", "RateLimit-Limit"})
      EXPECT_EQ(r.raw.count(header), 0u) << header;
  };
  for (int i = 0; i < 8; ++i) {
    no_denial_signal(post(client, "/v1/check", R"({"policy":"login","key":"s"})"), i);
    no_denial_signal(post(client, "/v1/peek", R"({"policy":"login","key":"s"})"), i);
  }
  const auto batch = post(client, "/v1/check", R"([{"policy":"login","key":"s"}])");
  EXPECT_EQ(batch.body[0]["outcome"], "allowed") << batch.raw;
  // 5/1h without burst: one at once, then one every 12 min; only the checks are counted.
  const int would_deny = 7 + 1;
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(client.get("/v1/auth/login", {{"X-Forwarded-For", "198.51.100.1"}}).result_int(),
              204);
  const std::string text = client.get("/metrics").body();
  EXPECT_EQ(metric(text, "pacerd_decisions_total{policy=\"login\",result=\"shadow_denied\"}"),
            would_deny + 2)
      << text;
  EXPECT_EQ(metric(text, "pacerd_decisions_total{policy=\"login\",result=\"denied\"}"), 0);
  EXPECT_NE(pacerd.log().find("event=shadow_deny policy=login"), std::string::npos) << pacerd.log();
  // A shadow policy lets through even what it cannot count.
  const auto no_tenant = client.get("/v1/auth/tenant");
  EXPECT_EQ(no_tenant.result_int(), 204);
  EXPECT_EQ(std::string(no_tenant["X-Pacer-Outcome"]), "identity_missing");
  EXPECT_EQ(client.get("/v1/auth/tenant", {{"X-Tenant", "t"}}).result_int(), 204);
  const auto second = client.get("/v1/auth/tenant", {{"X-Tenant", "t"}});
  EXPECT_EQ(second.result_int(), 204);
  // Issue 19: a shadow policy never shows a would-be denial to the client (nginx passes these
  // headers on): the outcome says allowed and no RateLimit-* can read 0.
  EXPECT_EQ(std::string(second["X-Pacer-Outcome"]), "allowed");
  EXPECT_EQ(second.count("RateLimit-Remaining"), 0u);
}

TEST(Pacerd, AHeaderIdentityIsLoggedHashedNeverInClear) {
  // Shadow denials are the decisions pacerd logs with their key.
  Pacerd pacerd(pacerd_config() +
                "\n[[policy]]\nname = \"keyed\"\nrates = [{ limit = \"1/1h\" }]\n"
                "identity = \"header:X-API-Key\"\nshadow = true\n");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  for (int i = 0; i < 2; ++i) {
    const auto r = client.get("/v1/auth/keyed", {{"X-API-Key", "secret-in-header-1"}});
    EXPECT_EQ(r.result_int(), 204);
    EXPECT_EQ(std::string(r["X-Pacer-Outcome"]), "allowed");  // the log tells, not the client
  }
  std::string line;
  for (int i = 0; i < 200 && line.empty(); ++i) {
    const std::string log = pacerd.log();
    if (const auto at = log.find("event=shadow_deny policy=keyed"); at != std::string::npos)
      line = log.substr(at, log.find('\n', at) - at);
    else
      std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(line.empty()) << pacerd.log();
  // The key as stored: <prefix>:{<policy>:<rates digest>:hdr:h:<SHA-256, hex>}.
  EXPECT_NE(line.find("key=pacerd:{keyed:r"), std::string::npos) << line;
  EXPECT_NE(line.find(":hdr:h:"), std::string::npos) << line;
  EXPECT_EQ(pacerd.log().find("secret-in-header-1"), std::string::npos) << pacerd.log();
}

TEST(Pacerd, AnAdminListenerTakesTheAdminEndpoints) {
  Pacerd pacerd(pacerd_config("memory", "open", "[admin]\nlisten = \"127.0.0.1:0\"\n"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  ASSERT_NE(pacerd.admin_port(), 0) << pacerd.log();
  HttpClient main(pacerd.port());
  HttpClient admin(pacerd.admin_port());
  EXPECT_EQ(post(main, "/v1/check", R"({"policy":"api","key":"a"})").status, 200);
  for (const char* path : {"/metrics", "/v1/config"}) {
    EXPECT_EQ(main.get(path).result_int(), 404) << path;
    EXPECT_EQ(admin.get(path).result_int(), 200) << path;
  }
  EXPECT_EQ(post(main, "/v1/reset", R"({"policy":"api","key":"a"})").status, 404);
  EXPECT_EQ(post(admin, "/v1/reset", R"({"policy":"api","key":"a"})").status, 200);
  EXPECT_EQ(main.get("/health").result_int(), 200);
  EXPECT_EQ(admin.get("/ready").result_int(), 200);
}

// Traffic on two connections while the configuration is reloaded over and over: every
// request is answered 200.
class Traffic {
 public:
  explicit Traffic(std::uint16_t port) {
    for (int t = 0; t < 2; ++t)
      threads_.emplace_back([this, port, t] {
        HttpClient client(port);
        for (int i = 0; !stop_; ++i) {
          try {
            const auto r = post(client, "/v1/check",
                                check_body("api", "traffic-" + std::to_string(t * 1000000 + i)));
            (r.status == 200 ? ok_ : failed_)++;
          } catch (const std::exception&) {
            failed_++;
            return;
          }
        }
      });
  }
  ~Traffic() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

bool wait_version(HttpClient& client, int version, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (get(client, "/v1/config").body["version"] == version) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// The refused reload's message from /v1/config, once there is one (empty after 5 s).
std::string wait_reload_error(HttpClient& client) {
  for (int i = 0; i < 250; ++i) {
    const auto config = get(client, "/v1/config");
    if (config.body["last_reload_error"].is_string())
      return config.body["last_reload_error"].get<std::string>();
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

TEST(Pacerd, ReloadSwapsValidConfigsKeepsCountsAndRefusesInvalidOnesUnderTraffic) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  Traffic traffic(pacerd.port());
  // Use 3 of 6 on "api".
  for (int i = 0; i < 3; ++i) post(client, "/v1/check", R"({"policy":"api","key":"kept"})");
  for (int i = 0; i < 2; ++i) post(client, "/v1/check", R"({"policy":"login","key":"kept"})");

  // 1. A valid change (a new policy; api and login unchanged) by SIGHUP: counts survive.
  const std::string extra_policy =
      "\n[[policy]]\nname = \"search\"\nrates = [{ limit = \"2/1s\" }]\n";
  pacerd.write_config(pacerd_config() + extra_policy);
  pacerd.hup();
  ASSERT_TRUE(wait_version(client, 2)) << pacerd.log();
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"api","key":"kept","cost":0})").body["remaining"],
            3);
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"search","key":"s"})").status, 200);
  EXPECT_NE(pacerd.log().find("api=kept"), std::string::npos) << pacerd.log();
  EXPECT_NE(pacerd.log().find("search=added"), std::string::npos) << pacerd.log();

  // 2. An invalid file: the running config stays, and /v1/config says why (file, line, key).
  pacerd.write_config(pacerd_config() +
                      "\n[[policy]]\nname = \"broken\"\nrates = [{ limit = "
                      "\"2/1fortnight\" }]\n");
  pacerd.hup();
  std::string error = wait_reload_error(client);
  EXPECT_NE(error.find("pacerd.toml:22:20: policy[2].rates[0].limit = \"2/1fortnight\""),
            std::string::npos)
      << error;
  EXPECT_EQ(get(client, "/v1/config").body["version"], 2);
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"search","key":"s2"})").status, 200);
  EXPECT_NE(pacerd.log().find("event=config_reload_failed"), std::string::npos);
  const std::string m = client.get("/metrics").body();
  EXPECT_EQ(metric(m, "pacerd_config_last_reload_ok"), 0);
  EXPECT_EQ(metric(m, "pacerd_config_reloads_total{result=\"error\"}"), 1);

  // 3. api's rates change (burst 5 -> 2): its old state is not misread, it starts afresh;
  //    login's rates stay: its counts stay. Picked up from the file alone (no signal).
  std::string changed = pacerd_config();
  changed.replace(changed.find("burst = 5"), 9, "burst = 2");
  pacerd.write_config(changed);
  ASSERT_TRUE(wait_version(client, 3, 5s)) << pacerd.log();
  EXPECT_TRUE(get(client, "/v1/config").body["last_reload_error"].is_null());
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"api","key":"kept","cost":0})").body["remaining"],
            3);
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"api","key":"kept"})").body["remaining"], 2);
  EXPECT_EQ(
      post(client, "/v1/peek", R"({"policy":"login","key":"kept","cost":0})").body["remaining"], 0);
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"search","key":"s"})").body["field"], "policy");
  EXPECT_NE(pacerd.log().find("api=rates_changed_counts_reset"), std::string::npos);
  EXPECT_NE(pacerd.log().find("search=removed"), std::string::npos);

  // 4. Settings that need a restart are refused, naming them.
  std::string moved = changed;
  moved.replace(moved.find("127.0.0.1:0"), 11, "127.0.0.1:1");
  pacerd.write_config(moved);
  pacerd.hup();
  error = wait_reload_error(client);
  EXPECT_NE(error.find("pacerd.toml:2:10: server.listen (127.0.0.1:0 -> 127.0.0.1:1)"),
            std::string::npos)
      << error;
  EXPECT_EQ(get(client, "/v1/config").body["version"], 3);

  traffic.stop();
  EXPECT_GT(traffic.ok(), 50);
  EXPECT_EQ(traffic.failed(), 0);
}

// Reads what the server sends until it closes the connection (or 5 s pass).
std::string read_until_closed(boost::asio::ip::tcp::socket& socket) {
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string text;
  std::array<char, 4096> buffer;
  boost::system::error_code ec;
  while (!ec) {
    const std::size_t n = socket.read_some(boost::asio::buffer(buffer), ec);
    text.append(buffer.data(), n);
  }
  return ec == boost::asio::error::eof ? text : text + "\n(not closed: " + ec.message() + ")";
}

TEST(Pacerd, SigtermAnswersTheRequestInFlightClosesIdleConnectionsAndExitsZero) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                pacerd.port());
  boost::asio::io_context io;
  // An idle keep-alive connection (one request answered), and one with half a request sent:
  // the in-process store answers at once, so a request is in flight only while it arrives.
  boost::asio::ip::tcp::socket idle(io), busy(io);
  idle.connect(endpoint);
  busy.connect(endpoint);
  boost::asio::write(idle,
                     boost::asio::buffer(std::string("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")));
  std::array<char, 4096> buffer;
  ASSERT_GT(idle.read_some(boost::asio::buffer(buffer)), 0u);
  const std::string body = R"({"policy":"api","key":"draining"})";
  const std::string head =
      "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  boost::asio::write(busy, boost::asio::buffer(head + body.substr(0, 10)));
  // The server has to have read those bytes (nothing shows it outside); a miss fails the test,
  // it cannot make it pass.
  std::this_thread::sleep_for(300ms);

  ASSERT_TRUE(pacerd.process().signal(SIGTERM));
  // The listener closes: no new connection.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    try {
      HttpClient late(pacerd.port());
      std::this_thread::sleep_for(10ms);
    } catch (const std::exception&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused) << pacerd.log();
  // The idle connection is closed without an answer; the busy one gets its answer, and then
  // the server closes it too.
  EXPECT_EQ(read_until_closed(idle), "");
  boost::asio::write(busy, boost::asio::buffer(body.substr(10)));
  const std::string answer = read_until_closed(busy);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Connection: close\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("allowed":true)"), std::string::npos) << answer;

  ASSERT_TRUE(pacerd.process().exited(10s));
  EXPECT_EQ(pacerd.process().exit_code(), 0) << pacerd.log();
  EXPECT_NE(pacerd.log().find("event=stopping signal=SIGTERM"), std::string::npos) << pacerd.log();
  EXPECT_NE(pacerd.log().find("event=stopped"), std::string::npos) << pacerd.log();
}

}  // namespace
}  // namespace pacer::testing

namespace pacer::testing {
namespace {

// /v1/auth/{a},{b} (issue 20 item 5): identities first (401 before anything is spent), then the
// server.shadow = true (issue 19): every policy is a shadow policy, reloadable; nothing is
// enforced and no answer shows a would-be denial.
TEST(Pacerd, ServerShadowMakesEveryPolicyAShadowPolicy) {
  std::string config = pacerd_config();
  config.replace(config.find("threads = 2\n"), 12, "threads = 2\nshadow = true\n");
  Pacerd pacerd(config);
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  for (int i = 0; i < 8; ++i) {
    const auto r = post(client, "/v1/check", R"({"policy":"api","key":"s"})");
    EXPECT_EQ(r.body["allowed"], true) << i;
    EXPECT_EQ(r.body["outcome"], "allowed") << i;
    EXPECT_EQ(r.raw.count("RateLimit-Remaining"), 0u);
  }
  EXPECT_EQ(get(client, "/v1/policies").body["policies"][0]["shadow"], true);
  const std::string text = client.get("/metrics").body();
  EXPECT_EQ(metric(text, "pacerd_decisions_total{policy=\"api\",result=\"shadow_denied\"}"), 2)
      << text;
  // Switched off by a reload: the same bucket enforces again.
  pacerd.write_config(pacerd_config());
  pacerd.hup();
  ASSERT_TRUE(wait_version(client, 2)) << pacerd.log();
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"api","key":"s"})").body["allowed"], false);
}

// policies in order; the first denial answers and names its policy; bad lists are refused.
TEST(Pacerd, AuthChainsAskEveryPolicyInOrder) {
  Pacerd pacerd(pacerd_config() +
                "\n[[policy]]\nname = \"perip\"\nrates = [{ limit = \"3/1h\", burst = 2 }]\n"
                "identity = \"client_ip\"\n");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  auto remaining = [&](const std::string& policy, const std::string& key) {
    const auto r =
        post(client, "/v1/peek", json{{"policy", policy}, {"key", key}, {"cost", 0}}.dump());
    EXPECT_TRUE(r.body["remaining"].is_number_integer()) << r.raw;
    return r.body.value("remaining", -1);
  };
  // No API key: 401, and the per-address policy asked first spent nothing.
  EXPECT_EQ(client.get("/v1/auth/perip,api").result_int(), 401);
  EXPECT_EQ(remaining("perip", "ip:127.0.0.1"), 3);
  // Rotating keys: "perip" (3 at once) stops them whatever the key.
  int passed = 0;
  for (int i = 0; i < 6; ++i) {
    const auto r = client.get("/v1/auth/perip,api", {{"X-API-Key", "k" + std::to_string(i)}});
    if (r.result_int() == 204) {
      ++passed;
    } else {
      EXPECT_EQ(r.result_int(), 403);
      EXPECT_EQ(std::string(r["X-Pacer-Policy"]), "perip");
      EXPECT_EQ(std::string(r["X-Pacer-Outcome"]), "denied");
    }
  }
  EXPECT_EQ(passed, 3);
  for (const char* bad : {"/v1/auth/perip,nope", "/v1/auth/perip,perip", "/v1/auth/perip,",
                          "/v1/auth/a,b,c,d,e,f,g,h,i"}) {
    const auto r = client.get(bad, {{"X-API-Key", "k"}});
    EXPECT_TRUE(r.result_int() == 404 || r.result_int() == 400) << bad << " " << r.result_int();
    EXPECT_NE(r.body().find("policy"), std::string::npos) << r.body();
  }
  // The next good request is answered as ever.
  EXPECT_EQ(client.get("/v1/auth/api", {{"X-API-Key", "fresh"}}).result_int(), 204);
}

// --config fails as --check-config does: exit 2, every problem named with file:line:column on
// stderr, and one valid log line (event=start_failed) carrying the same text escaped.
TEST(Pacerd, ConfigErrorsAtStartExit2NamingFileLineAndColumn) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"[server]\nlisten = \"127.0.0.1:0\n", {"pacerd.toml:2:"}},  // not TOML: no closing quote
      {"[server]\nlisten = \"127.0.0.1:0\"\nthreads = -1\n[store]\nfail_mode = \"ajar\"\n"
       "[[policy]]\nname = \"x\"\nrates = [{ limit = \"1/1s\" }]\n",
       {"pacerd.toml:3:11: server.threads = -1: expected a whole number from 0 to 256\n",
        "pacerd.toml:5:13: store.fail_mode = \"ajar\": expected open, closed or local"}},
      {"[auth]\ndeny_status = 418\n[[policy]]\nname = \"x\"\nrates = [{ limit = \"1/1s\" }]\n",
       {"pacerd.toml:2:15: auth.deny_status = 418: expected 403"}},
  };
  for (const auto& [text, expected] : cases) {
    Pacerd pacerd(text);
    ASSERT_TRUE(pacerd.process().exited(10s)) << text;
    EXPECT_EQ(pacerd.process().exit_code(), 2) << pacerd.log();
    bool logged = false;
    for (const auto& line : lines_of(pacerd.log())) {
      const auto fields = parse_logfmt(line);
      if (fields && value_of(*fields, "event") == "start_failed") {
        logged = true;
        for (const auto& e : expected)
          EXPECT_NE(value_of(*fields, "error").find(e), std::string::npos) << line;
      }
    }
    EXPECT_TRUE(logged) << pacerd.log();
    for (const auto& e : expected)  // on stderr as --check-config says it
      EXPECT_NE(pacerd.log().find(e), std::string::npos) << pacerd.log();
  }
  // A file that is not there.
  const auto [rc, out] =
      run_command(std::string(PACERD_PATH) + " --config /nonexistent/pacerd.toml 2>&1");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("/nonexistent/pacerd.toml: cannot open: No such file or directory"),
            std::string::npos)
      << out;
  // --check-config on the same mistakes says the same, exit 2.
  ScratchDir dir;
  const auto bad = (dir.path() / "bad.toml").string();
  std::ofstream(bad) << cases[2].first;
  const auto [check_rc, check_out] =
      run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(bad) + " 2>&1");
  EXPECT_EQ(check_rc, 2);
  EXPECT_NE(check_out.find("bad.toml:2:15: auth.deny_status = 418"), std::string::npos)
      << check_out;
}

// Waits until `text` occurs `count` times in the log.
bool wait_log(const Pacerd& pacerd, const std::string& text, int count,
              std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const std::string log = pacerd.log();
    int seen = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++seen;
    if (seen >= count) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// Every line of the log is one logfmt line with ts, level and event first.
void expect_valid_logfmt(const std::string& log) {
  for (const auto& line : lines_of(log)) {
    const auto fields = parse_logfmt(line);
    ASSERT_TRUE(fields) << "not logfmt: " << line;
    ASSERT_GE(fields->size(), 3u) << line;
    EXPECT_EQ((*fields)[0].first, "ts") << line;
    EXPECT_EQ((*fields)[1].first, "level") << line;
    EXPECT_EQ((*fields)[2].first, "event") << line;
  }
}

TEST(Pacerd, EverySighupIsLoggedChangedOrNot) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_unchanged trigger=SIGHUP result=unchanged", 1))
      << pacerd.log();
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_unchanged trigger=SIGHUP result=unchanged", 2))
      << pacerd.log();
  pacerd.write_config(pacerd_config() + "\n[[policy]]\nname = \"x\"\nrates = \"lots\"\n");
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_reload_failed trigger=SIGHUP result=rejected ", 1))
      << pacerd.log();
  pacerd.hup();
  ASSERT_TRUE(
      wait_log(pacerd, "event=config_reload_failed trigger=SIGHUP result=rejected_again", 1))
      << pacerd.log();
  pacerd.write_config(pacerd_config() +
                      "\n[[policy]]\nname = \"x\"\nrates = [{ limit = \"1/1s\" }]\n");
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_reloaded trigger=SIGHUP result=applied version=2", 1))
      << pacerd.log();
  expect_valid_logfmt(pacerd.log());
}

// What clients send ends up in log lines (shadow denials name the key, an unknown auth policy its
// name, a refused reload its file's text): none of it breaks a line or forges a key.
TEST(Pacerd, HostileValuesNeverBreakALogLine) {
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  const std::string forged = "k\" level=error event=forged\nts=0 level=error event=forged \\";
  for (int i = 0; i < 8; ++i) post(client, "/v1/check", check_body("login", forged));
  EXPECT_EQ(client.get("/v1/auth/x%22%20event=forged").result_int(), 404);
  pacerd.write_config(pacerd_config() + "\n[[policy]]\nname = \"a\\\"\\nb\"\nrates = 1\n");
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_reload_failed", 1)) << pacerd.log();
  ASSERT_TRUE(wait_log(pacerd, "event=shadow_deny", 1)) << pacerd.log();
  // The next request is answered as ever.
  EXPECT_EQ(post(client, "/v1/check", check_body("api", "next")).status, 200);
  const std::string log = pacerd.log();
  expect_valid_logfmt(log);
  for (const auto& line : lines_of(log)) {
    const auto fields = parse_logfmt(line);
    ASSERT_TRUE(fields);
    EXPECT_NE(value_of(*fields, "event"), "forged") << line;
    EXPECT_NE(value_of(*fields, "level"), "error ") << line;
  }
}

TEST(Pacerd, JsonLogsAreOneObjectPerLine) {
  ScratchDir dir;
  for (const bool from_file : {false, true}) {
    Pacerd pacerd(
        pacerd_config("memory", "open", from_file ? "[log]\nformat = \"json\"\n" : ""),
        from_file ? std::vector<std::string>{} : std::vector<std::string>{"--log-format", "json"});
    ASSERT_TRUE(pacerd.start()) << pacerd.log();
    HttpClient client(pacerd.port());
    for (int i = 0; i < 8; ++i) post(client, "/v1/check", check_body("login", "a\"b\nc"));
    pacerd.hup();
    ASSERT_TRUE(wait_log(pacerd, "\"event\":\"config_unchanged\"", 1)) << pacerd.log();
    ASSERT_TRUE(wait_log(pacerd, "\"event\":\"shadow_deny\"", 1)) << pacerd.log();
    std::vector<std::string> events;
    for (const auto& line : lines_of(pacerd.log())) {
      const auto object = json::parse(line, nullptr, false);
      ASSERT_TRUE(object.is_object()) << "not JSON: " << line;
      events.push_back(object.value("event", ""));
      if (object["event"] == "started") {
        EXPECT_TRUE(object["threads"].is_number()) << line;
        EXPECT_EQ(object["level"], "info");
      }
      // (A key with a quote or a newline is stored, and logged, as its hash: docs/DESIGN.md §4.)
      if (object["event"] == "shadow_deny") {
        EXPECT_EQ(object["key"].get<std::string>().find("pacerd:{login:"), 0u) << line;
      }
    }
    EXPECT_NE(std::find(events.begin(), events.end(), "started"), events.end()) << pacerd.log();
  }
  const auto [rc, out] =
      run_command(std::string(PACERD_PATH) + " --log-format xml --config x 2>&1");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("xml"), std::string::npos) << out;
}

// [auth] deny_status: 403 for nginx (the default, AuthEndpointAllowsWith204AndDeniesWith403...),
// 429 for forward-auth proxies, with a body of one's own; reloadable. The store's failure stays
// apart: 503 (or 403) with X-Pacer-Outcome: unavailable.
TEST(Pacerd, AuthDenyStatusAndBodyAreConfigurableAndReloadable) {
  const std::string auth =
      "[auth]\ndeny_status = 429\ndeny_body = \"{\\\"error\\\":\\\"too many requests\\\"}\"\n";
  Pacerd pacerd(pacerd_config() + auth);
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(client.get("/v1/auth/api", {{"X-API-Key", "k"}}).result_int(), 204) << i;
  auto denied = client.get("/v1/auth/api", {{"X-API-Key", "k"}});
  EXPECT_EQ(denied.result_int(), 429);
  EXPECT_EQ(denied.body(), R"({"error":"too many requests"})");
  EXPECT_EQ(std::string(denied[bhttp::field::content_type]), "application/json");
  EXPECT_EQ(std::string(denied["X-Pacer-Outcome"]), "denied");
  EXPECT_EQ(std::string(denied["RateLimit-Remaining"]), "0");
  EXPECT_GT(std::stoi(std::string(denied["Retry-After"])), 300);
  EXPECT_FALSE(std::string(denied["X-Pacer-Retry-After-Ms"]).empty());
  // A bad request in between hurts nothing.
  EXPECT_EQ(client.get("/v1/auth/api,api", {{"X-API-Key", "k"}}).result_int(), 400);
  EXPECT_EQ(client.get("/v1/auth/api", {{"X-API-Key", "other"}}).result_int(), 204);

  // Back to nginx's 403 and the JSON body, by reload.
  pacerd.write_config(pacerd_config());
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_reloaded", 1)) << pacerd.log();
  denied = client.get("/v1/auth/api", {{"X-API-Key", "k"}});
  EXPECT_EQ(denied.result_int(), 403);
  EXPECT_EQ(json::parse(denied.body())["detail"], "rate_limited");

  // A refused value keeps the running answers, naming the value and what is accepted.
  pacerd.write_config(pacerd_config() + "[auth]\ndeny_status = 503\n");
  pacerd.hup();
  ASSERT_TRUE(wait_log(pacerd, "event=config_reload_failed", 1)) << pacerd.log();
  EXPECT_NE(get(client, "/v1/config")
                .body["last_reload_error"]
                .get<std::string>()
                .find("auth.deny_status = 503: expected 403 (nginx auth_request, the default) or "
                      "429"),
            std::string::npos);
  EXPECT_EQ(client.get("/v1/auth/api", {{"X-API-Key", "k"}}).result_int(), 403);
}

TEST(Pacerd, AuthUnavailableStaysDistinctFromADenial) {
  // Nothing listens on port 1: every decision fails, and fail mode closed refuses.
  for (const auto& [auth, status] : std::vector<std::pair<std::string, int>>{
           {"", 403},
           {"[auth]\ndeny_status = 429\n", 503},
           {"[auth]\ndeny_status = 429\nunavailable_status = 403\n", 403}}) {
    Pacerd pacerd(pacerd_config("redis://127.0.0.1:1", "closed", "timeout = \"20ms\"\n") + auth);
    ASSERT_TRUE(pacerd.start()) << pacerd.log();
    HttpClient client(pacerd.port());
    const auto r = client.get("/v1/auth/api", {{"X-API-Key", "k"}});
    EXPECT_EQ(r.result_int(), status) << auth;
    EXPECT_EQ(std::string(r["X-Pacer-Outcome"]), "unavailable") << auth;
    EXPECT_EQ(json::parse(r.body())["detail"], "Service temporarily unavailable") << auth;
    EXPECT_EQ(std::string(r["Retry-After"]), "5");
  }
}

}  // namespace
}  // namespace pacer::testing
