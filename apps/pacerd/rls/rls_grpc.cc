// pacerd's gRPC listener for Envoy's rate limit service (rls_grpc.h; docs/API.md, "Envoy rate
// limit service"). Glue: protobuf in, rls::decide, protobuf out.
#include "rls_grpc.h"

#include <absl/synchronization/mutex.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "envoy/service/ratelimit/v3/rls.grpc.pb.h"
#include "pacer/http/response.h"
#include "rls_decide.h"

namespace pacer::pacerd::rls {
namespace {

namespace pb = envoy::service::ratelimit::v3;

constexpr const char* kServiceName = "envoy.service.ratelimit.v3.RateLimitService";

RlsRequest from_proto(const pb::RateLimitRequest& in) {
  RlsRequest out;
  out.domain = in.domain();
  out.hits_addend = in.hits_addend();
  out.descriptors.reserve(static_cast<std::size_t>(in.descriptors_size()));
  for (const auto& d : in.descriptors()) {
    RlsDescriptor descriptor;
    descriptor.entries.reserve(static_cast<std::size_t>(d.entries_size()));
    for (const auto& e : d.entries()) descriptor.entries.emplace_back(e.key(), e.value());
    if (d.has_limit()) {
      const int unit = d.limit().unit();
      descriptor.limit = RlsDescriptor::Override{
          d.limit().requests_per_unit(),
          unit >= 1 && unit <= 6 ? static_cast<Unit>(unit) : Unit::kUnknown};
    }
    out.descriptors.push_back(std::move(descriptor));
  }
  return out;
}

void set_duration(google::protobuf::Duration* out, std::chrono::nanoseconds d) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(d);
  out->set_seconds(seconds.count());
  out->set_nanos(static_cast<std::int32_t>((d - seconds).count()));
}

// The descriptor the headers speak for: the over-limit one with the longest wait, else the
// one with the fewest remaining (as pacer::Decision picks among a policy's rates).
const RlsStatus* deciding(const RlsAnswer& answer) {
  auto better = [](const RlsStatus& s, const RlsStatus& best) {
    const bool over = s.code == Code::kOverLimit;
    const bool best_over = best.code == Code::kOverLimit;
    if (over != best_over) return over;
    return over ? s.retry_after > best.retry_after : s.limit_remaining < best.limit_remaining;
  };
  const RlsStatus* best = nullptr;
  for (const auto& s : answer.statuses) {
    if (s.decision && s.policy && (best == nullptr || better(s, *best))) best = &s;
  }
  return best;
}

void add_header(pb::RateLimitResponse* out, std::string_view name, std::string_view value) {
  auto* h = out->add_response_headers_to_add();
  h->set_key(std::string(name));
  h->set_value(std::string(value));
}

}  // namespace

struct RlsServer::Impl final : pb::RateLimitService::CallbackService {
  RlsServerOptions options;
  std::function<RlsSnapshot()> snapshot;
  std::mutex lifecycle;  // start, set_serving and shutdown may come from different threads
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::atomic<std::uint64_t> requests{0}, invalid{0}, over_limit{0}, unavailable{0};

  grpc::ServerUnaryReactor* ShouldRateLimit(grpc::CallbackServerContext* context,
                                            const pb::RateLimitRequest* request,
                                            pb::RateLimitResponse* response) override {
    auto* reactor = context->DefaultReactor();
    const auto started = std::chrono::steady_clock::now();
    requests.fetch_add(1, std::memory_order_relaxed);
    RlsSnapshot now = snapshot();
    RlsMetrics* metrics = now.metrics;
    auto answer_now = [&](grpc::Status status) {
      if (metrics != nullptr) metrics->observe(std::chrono::steady_clock::now() - started);
      reactor->Finish(std::move(status));
    };
    try {
      auto parsed = std::make_shared<RlsRequest>(from_proto(*request));
      if (std::string error = validate(*parsed); !error.empty()) {
        invalid.fetch_add(1, std::memory_order_relaxed);
        answer_now(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error));
        return reactor;
      }
      if (now.limiter == nullptr || now.config == nullptr) {
        answer_now(grpc::Status(grpc::StatusCode::UNAVAILABLE, "pacerd is not serving"));
        return reactor;
      }
      decide(*now.limiter, *now.config, now.key_prefix, *parsed, std::move(now.keep),
             [this, reactor, response, parsed, metrics, started](const RlsAnswer& answer) noexcept {
               if (metrics != nullptr) {
                 try {
                   metrics->count(parsed->domain, *parsed, answer);
                 } catch (...) {  // counting never costs the answer
                 }
                 metrics->observe(std::chrono::steady_clock::now() - started);
               }
               finish(reactor, response, answer);
             });
    } catch (const std::exception& e) {
      answer_now(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
    }
    return reactor;
  }

  void finish(grpc::ServerUnaryReactor* reactor, pb::RateLimitResponse* response,
              const RlsAnswer& answer) noexcept {
    try {
      if (answer.unavailable) {
        unavailable.fetch_add(1, std::memory_order_relaxed);
        if (options.unavailable == UnavailableAnswer::kUnavailableStatus) {
          reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "the store is unavailable and the fail mode is closed"));
          return;
        }
      }
      if (answer.overall == Code::kOverLimit) over_limit.fetch_add(1, std::memory_order_relaxed);
      response->set_overall_code(answer.overall == Code::kOverLimit
                                     ? pb::RateLimitResponse::OVER_LIMIT
                                     : pb::RateLimitResponse::OK);
      for (const auto& s : answer.statuses) {
        auto* out = response->add_statuses();
        out->set_code(s.code == Code::kOverLimit ? pb::RateLimitResponse::OVER_LIMIT
                                                 : pb::RateLimitResponse::OK);
        if (s.current_limit) {
          auto* limit = out->mutable_current_limit();
          limit->set_requests_per_unit(s.current_limit->requests_per_unit);
          limit->set_unit(
              static_cast<pb::RateLimitResponse::RateLimit::Unit>(s.current_limit->unit));
          limit->set_name(s.current_limit->name);
        }
        out->set_limit_remaining(s.limit_remaining);
        if (s.current_limit)
          set_duration(out->mutable_duration_until_reset(), s.duration_until_reset);
      }
      add_headers(answer, response);
      reactor->Finish(grpc::Status::OK);
    } catch (const std::exception& e) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
    }
  }

  void add_headers(const RlsAnswer& answer, pb::RateLimitResponse* response) const {
    const RlsStatus* s = deciding(answer);
    if (s == nullptr) return;
    if (options.ratelimit_headers) {
      http::HeaderList list;
      http::append_headers(*s->policy, *s->decision, http::HeaderOptions{}, list);
      for (const auto& [name, value] : list) add_header(response, name, value);
    }
    if (options.x_ratelimit_headers && s->current_limit) {
      add_header(response, "X-RateLimit-Limit",
                 std::to_string(s->current_limit->requests_per_unit));
      add_header(response, "X-RateLimit-Remaining", std::to_string(s->limit_remaining));
      add_header(response, "X-RateLimit-Reset",
                 std::to_string(http::ceil_seconds(s->duration_until_reset)));
    }
  }
};

RlsServer::RlsServer(RlsServerOptions options, std::function<RlsSnapshot()> snapshot)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->snapshot = std::move(snapshot);
}

RlsServer::~RlsServer() { shutdown(std::chrono::milliseconds(0)); }

void RlsServer::start() {
  // Debian's abseil is built without NDEBUG, so every absl::Mutex that gRPC takes records the
  // order of locks in a global graph, to report deadlocks: 5-7% of pacerd's CPU under gRPC load
  // (docs/PERFORMANCE.md, "pacerd over gRPC"). Pacer takes no absl::Mutex of its own.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.address, grpc::InsecureServerCredentials(), &impl_->port);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             impl_->options.max_concurrent_streams);
  builder.SetMaxReceiveMessageSize(impl_->options.max_message_bytes);
  // gRPC sets SO_REUSEPORT unless told not to: a second pacerd on the same port would then share
  // its traffic silently instead of failing to start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(impl_.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    throw std::runtime_error(
        fmt::format("grpc.listen = \"{}\": cannot listen there (in use, or not a local "
                    "address)",
                    impl_->options.address));
  }
  set_serving(false);  // until the store says it is ready
}

int RlsServer::port() const { return impl_->port; }

void RlsServer::set_serving(bool serving) {
  std::lock_guard lock(impl_->lifecycle);
  if (!impl_->server) return;
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

void RlsServer::shutdown(std::chrono::milliseconds grace) {
  std::unique_ptr<grpc::Server> server;
  {
    std::lock_guard lock(impl_->lifecycle);
    server = std::move(impl_->server);
  }
  if (!server) return;  // never started, or stopped already
  server->Shutdown(std::chrono::system_clock::now() + grace);
  server->Wait();
}

RlsServerStats RlsServer::stats() const {
  return {impl_->requests.load(), impl_->invalid.load(), impl_->over_limit.load(),
          impl_->unavailable.load()};
}

}  // namespace pacer::pacerd::rls
