// pacer::beast::with_limits and its halves, called directly (no sockets): what the
// application's handler sees, and what the client gets back.
#include "pacer/beast/limit.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>

#include "pacer/memory_store.h"

namespace pacer::beast {
namespace {

namespace bhttp = boost::beast::http;
using std::chrono::seconds;

std::string field(const Response& response, std::string_view name) {
  const auto it = response.find(boost::beast::string_view(name.data(), name.size()));
  return it == response.end() ? "<absent>" : std::string(it->value());
}

struct Fixture {
  MemoryStore store;
  Limiter limiter{store};
  http::HttpLimiter limits{limiter, {.key_prefix = "t"}};
  ClientEndpoint client{.peer_address = "192.0.2.1", .peer_port = 1234};
  int calls = 0;
  Handler handler =
      with_limits(limits, [this](Request&& request, const ClientEndpoint& who, Send send) {
        ++calls;
        if (request.target() == "/throw") throw std::runtime_error("boom");
        Response response{bhttp::status::ok, request.version()};
        response.body() =
            std::string(request.target()) + " " + request.body() + " " + who.peer_address;
        send(std::move(response));
      });

  Fixture() {
    limits.add_route(
        "POST", "/orders",
        {.policy = Policy("orders", {Rate(2, seconds(60), 1)}), .body = http::BodyStyle::kNested});
    limits.add_route("GET", "/throw", {.policy = Policy("throw", {Rate(100, seconds(60))})});
  }

  // The answer, or nullopt when the Send was dropped unanswered.
  std::optional<Response> call(bhttp::verb verb, std::string target, unsigned version = 11) {
    Request request{verb, target, version};
    request.body() = "payload";
    std::optional<Response> answer;
    handler(std::move(request), client,
            [&answer](Response&& response) { answer = std::move(response); });
    return answer;
  }
};

TEST(WithLimits, AllowedRequestsReachTheHandlerAndGetHeaders) {
  Fixture f;
  auto response = f.call(bhttp::verb::post, "/orders");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result(), bhttp::status::ok);
  EXPECT_EQ(response->body(), "/orders payload 192.0.2.1");
  EXPECT_EQ(field(*response, "RateLimit-Limit"), "2");
  EXPECT_EQ(field(*response, "RateLimit-Remaining"), "1");
  EXPECT_EQ(field(*response, "RateLimit-Reset"), "30");
  // No limit on this route: the handler answers, and no headers are added.
  response = f.call(bhttp::verb::get, "/other");
  ASSERT_TRUE(response);
  EXPECT_EQ(field(*response, "RateLimit-Limit"), "<absent>");
  EXPECT_EQ(f.calls, 2);
}

TEST(WithLimits, RequestsOverTheLimitAreAnswered429WithoutTheHandler) {
  Fixture f;
  f.call(bhttp::verb::post, "/orders");
  f.call(bhttp::verb::post, "/orders");
  auto response = f.call(bhttp::verb::post, "/orders", 10);
  ASSERT_TRUE(response);
  EXPECT_EQ(f.calls, 2);
  EXPECT_EQ(response->result(), bhttp::status::too_many_requests);
  EXPECT_EQ(response->version(), 10U);
  EXPECT_EQ(field(*response, "Content-Type"), "application/json");
  EXPECT_EQ(response->body(), R"({"detail":{"detail":"rate_limited","retry_after_ms":30000}})");
  EXPECT_EQ(field(*response, "RateLimit-Remaining"), "0");
  EXPECT_EQ(field(*response, "Retry-After"), "30");
}

TEST(WithLimits, AHandlerThatThrowsLeavesItsSendUnanswered) {
  // The server answers 500 for a dropped Send (server.h); the limits must not answer instead.
  Fixture f;
  EXPECT_EQ(f.call(bhttp::verb::get, "/throw"), std::nullopt);
  EXPECT_EQ(f.calls, 1);
  EXPECT_TRUE(f.call(bhttp::verb::post, "/orders"));  // and the next request is served
}

TEST(VerdictResponse, StatusBodyAndHeaders) {
  http::Verdict verdict{.status = 503,
                        .headers = {{"Retry-After", "5"}},
                        .body = R"({"detail":"Service temporarily unavailable"})"};
  const Response response = verdict_response(verdict, 11);
  EXPECT_EQ(response.result(), bhttp::status::service_unavailable);
  EXPECT_EQ(field(response, "Retry-After"), "5");
  EXPECT_EQ(field(response, "Content-Type"), "application/json");
  EXPECT_EQ(response.body(), verdict.body);
  Response plain{bhttp::status::ok, 11};
  add_headers({{"RateLimit-Limit", "10"}, {"RateLimit-Remaining", "9"}}, plain);
  EXPECT_EQ(field(plain, "ratelimit-limit"), "10");
  EXPECT_EQ(field(plain, "RateLimit-Remaining"), "9");
}

}  // namespace
}  // namespace pacer::beast
