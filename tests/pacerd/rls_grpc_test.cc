// The gRPC listener of Envoy's rate limit service (apps/pacerd/rls/rls_grpc.h; docs/API.md,
// "Envoy rate limit service") driven by a real gRPC client over loopback: per-descriptor
// statuses, headers, a store that answers later or fails, and bad requests that never hurt the
// next one.
#include "rls/rls_grpc.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "../redis/redis_server.h"
#include "../support/held_store.h"
#include "envoy/service/ratelimit/v3/rls.grpc.pb.h"
#include "pacer/memory_store.h"
#include "pacer/open_store.h"

namespace pacer::pacerd::rls {
namespace {

namespace pb = envoy::service::ratelimit::v3;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"(domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3, name: per_address}
  - key: tenant
    rate_limit: {unit: hour, requests_per_unit: 100}
)";

struct Harness {
  explicit Harness(Store& store, RlsServerOptions options = {}, LimiterOptions limiter_options = {})
      : limiter(store, limiter_options),
        config(std::make_shared<RlsConfig>(
            RlsConfig::load(std::vector<SourceFile>{{"edge.yaml", kConfig}}))),
        server(with_any_port(std::move(options)), [this] {
          return RlsSnapshot{&limiter, config.get(), "pacerd", config};
        }) {
    server.start();
    server.set_serving(true);
    stub = pb::RateLimitService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials()));
  }
  static RlsServerOptions with_any_port(RlsServerOptions o) {
    o.address = "127.0.0.1:0";
    return o;
  }
  grpc::Status call(const pb::RateLimitRequest& request, pb::RateLimitResponse& response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    return stub->ShouldRateLimit(&context, request, &response);
  }

  Limiter limiter;
  std::shared_ptr<RlsConfig> config;
  RlsServer server;
  std::unique_ptr<pb::RateLimitService::Stub> stub;
};

pb::RateLimitRequest request(std::string key, std::string value, std::uint32_t hits = 0) {
  pb::RateLimitRequest r;
  r.set_domain("edge");
  r.set_hits_addend(hits);
  auto* e = r.add_descriptors()->add_entries();
  e->set_key(std::move(key));
  e->set_value(std::move(value));
  return r;
}

std::string header(const pb::RateLimitResponse& r, std::string_view name) {
  for (const auto& h : r.response_headers_to_add()) {
    if (h.key() == name) return h.value();
  }
  return "";
}

// Three calls within the per-address limit, then one over it: the same answers on every store.
void expect_each_descriptor_answered(Store& store) {
  RlsServerOptions options;
  options.ratelimit_headers = true;
  Harness h(store, options);
  auto r = request("remote_address", "10.0.0.1");
  auto* t = r.add_descriptors()->add_entries();
  t->set_key("tenant");
  t->set_value("acme");
  for (int i = 0; i < 3; ++i) {
    pb::RateLimitResponse response;
    ASSERT_TRUE(h.call(r, response).ok());
    EXPECT_EQ(response.overall_code(), pb::RateLimitResponse::OK);
    ASSERT_EQ(response.statuses_size(), 2);
    const auto& first = response.statuses(0);
    EXPECT_EQ(first.current_limit().requests_per_unit(), 3u);
    EXPECT_EQ(first.current_limit().unit(), pb::RateLimitResponse::RateLimit::MINUTE);
    EXPECT_EQ(first.current_limit().name(), "per_address");
    EXPECT_EQ(first.limit_remaining(), static_cast<std::uint32_t>(2 - i));
    EXPECT_EQ(response.statuses(1).current_limit().unit(), pb::RateLimitResponse::RateLimit::HOUR);
    EXPECT_EQ(header(response, "RateLimit-Limit"), "3");
  }
  pb::RateLimitResponse over;
  ASSERT_TRUE(h.call(r, over).ok());
  EXPECT_EQ(over.overall_code(), pb::RateLimitResponse::OVER_LIMIT);
  EXPECT_EQ(over.statuses(0).code(), pb::RateLimitResponse::OVER_LIMIT);
  EXPECT_EQ(over.statuses(1).code(), pb::RateLimitResponse::OK);
  EXPECT_GT(over.statuses(0).duration_until_reset().seconds(), 0);
  EXPECT_EQ(header(over, "Retry-After"), "20");  // one per 20 s refills it
  EXPECT_EQ(header(over, "RateLimit-Remaining"), "0");
  EXPECT_EQ(h.server.stats().over_limit, 1u);
  // Each descriptor is decided on its own: a call over one limit still counts on the others, as
  // envoyproxy/ratelimit does (docs/API.md, "Envoy rate limit service").
  EXPECT_EQ(over.statuses(1).limit_remaining(), 96u);
}

TEST(RlsGrpc, EachDescriptorIsAnsweredWithItsLimitAndTheRequestIsOverWhenOneIs) {
  MemoryStore store;
  expect_each_descriptor_answered(store);
}

TEST(RlsGrpc, OnRedisEachDescriptorIsAnsweredTheSame) {
  if (!redis::testing::RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  redis::testing::RedisServer redis;
  auto store = open_store(redis.url());
  expect_each_descriptor_answered(*store);
}

TEST(RlsGrpc, EnvoyproxyRatelimitsHeaderNamesOnRequest) {
  MemoryStore store;
  RlsServerOptions options;
  options.x_ratelimit_headers = true;
  Harness h(store, options);
  pb::RateLimitResponse response;
  ASSERT_TRUE(h.call(request("remote_address", "x"), response).ok());
  EXPECT_EQ(header(response, "X-RateLimit-Limit"), "3");
  EXPECT_EQ(header(response, "X-RateLimit-Remaining"), "2");
  EXPECT_EQ(header(response, "RateLimit-Limit"), "");
}

TEST(RlsGrpc, AStoreThatAnswersLaterIsWaitedForAndAFailureFollowsTheFailMode) {
  testing::HeldStore store;
  store.io_thread_ = false;
  LimiterOptions closed;
  closed.fail_mode = FailMode::kClosed;
  Harness h(store, {}, closed);
  auto pending = std::async(std::launch::async, [&] {
    pb::RateLimitResponse response;
    const auto status = h.call(request("remote_address", "late"), response);
    return std::make_pair(status.error_code(), response.overall_code());
  });
  while (store.held() == 0) std::this_thread::sleep_for(1ms);
  store.answer_all();
  const auto [code, overall] = pending.get();
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(overall, pb::RateLimitResponse::OK);

  auto failing = std::async(std::launch::async, [&] {
    pb::RateLimitResponse response;
    return h.call(request("remote_address", "down"), response);
  });
  while (store.held() == 0) std::this_thread::sleep_for(1ms);
  store.answer_all(make_error_code(std::errc::connection_refused));
  const auto status = failing.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(h.server.stats().unavailable, 1u);
}

TEST(RlsGrpc, ACallPastItsDeadlineEndsAndTheStoresLateAnswerHurtsNothing) {
  testing::HeldStore store;
  Harness h(store);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 200ms);
  pb::RateLimitResponse response;
  const auto status =
      h.stub->ShouldRateLimit(&context, request("remote_address", "slow"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(store.answer_all(), 1u);  // the check completes after its call ended
  auto next = std::async(std::launch::async, [&] {
    pb::RateLimitResponse r;
    return h.call(request("remote_address", "next"), r).error_code();
  });
  while (store.held() == 0) std::this_thread::sleep_for(1ms);
  store.answer_all();
  EXPECT_EQ(next.get(), grpc::StatusCode::OK);
}

TEST(RlsGrpc, BadRequestsAreRefusedNamingTheFieldAndTheNextIsAnswered) {
  MemoryStore store;
  Harness h(store);
  pb::RateLimitResponse response;
  pb::RateLimitRequest empty;
  auto status = h.call(empty, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "domain: must not be empty");
  auto no_key = request("", "v");
  status = h.call(no_key, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto huge = request("remote_address", std::string(2 << 20, 'x'));
  status = h.call(huge, response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::RateLimitResponse fine;
  ASSERT_TRUE(h.call(request("remote_address", "ok"), fine).ok());
  EXPECT_EQ(fine.overall_code(), pb::RateLimitResponse::OK);
  EXPECT_EQ(h.server.stats().invalid, 2u);
}

TEST(RlsGrpc, AnAddressInUseIsAClearError) {
  MemoryStore store;
  Harness first(store);
  RlsServerOptions options;
  options.address = "127.0.0.1:" + std::to_string(first.server.port());
  RlsServer second(options, [] { return RlsSnapshot{}; });
  try {
    second.start();
    FAIL() << "started twice on one port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(options.address), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pacer::pacerd::rls
