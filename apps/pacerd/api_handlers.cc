// pacerd's JSON API: POST /v1/check, /v1/peek and /v1/reset, single items and batches
// (docs/DESIGN.md §8). Keys and answers come from each policy's http::Rule.

#include <nlohmann/json.hpp>

#include "item_window.h"
#include "log.h"
#include "pacer/beast/limit.h"
#include "pacer/text.h"
#include "runtime.h"

namespace pacer::pacerd {

using nlohmann::json;

namespace {

// /v1/check spends, /v1/peek asks what a check would answer (docs/DESIGN.md §2).
void ask(const Limiter& limiter, bool peek, const Policy& policy, std::string_view key,
         std::int64_t cost, Limiter::DecisionHandler done) {
  if (peek) {
    limiter.peek(policy, key, cost, std::move(done));
  } else {
    limiter.check(policy, key, cost, std::move(done));
  }
}

}  // namespace

void Service::check(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
                    beast::Send send, bool peek) {
  const unsigned version = request.version();
  auto parsed =
      parse_api_request(request.body(), peek ? ApiCall::kPeek : ApiCall::kCheck, runtime->limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    send(respond(bhttp::status::bad_request, version, error_body("invalid_request", *error)));
    return;
  }
  ApiRequest& api = std::get<ApiRequest>(parsed);
  const std::size_t n = api.items.size();
  std::vector<const RuntimePolicy*> policies(n);
  for (std::size_t i = 0; i < n; ++i) {
    policies[i] = runtime->find(api.items[i].policy);
    if (policies[i] == nullptr) {
      std::string names;
      for (const auto& [name, p] : runtime->policies)
        names.append(names.empty() ? "" : ", ").append(name);
      send(error_response(
          bhttp::status::bad_request, version, "invalid_request", item_field(api, i, "policy"),
          "unknown policy '" + printable(api.items[i].policy) + "'; configured: " + names));
      return;
    }
  }
  // Only real decisions count in the metrics: a peek, or a cost of 0, takes nothing.
  auto decides = [peek](std::int64_t cost) { return !peek && cost > 0; };

  if (!api.batch) {
    const RuntimePolicy* p = policies[0];
    const std::string key = p->rule.key(api.items[0].key);
    const auto start = Clock::now();
    std::string log_key = p->config.shadow ? key : std::string();
    const bool record = decides(api.items[0].cost);
    // `runtime` rides along: the policy it owns must outlive the completion.
    const Limiter& limiter = runtime->limiter;
    ask(limiter, peek, p->config.policy, key, api.items[0].cost,
        [runtime = std::move(runtime), p, record, start, version, log_key = std::move(log_key),
         send = std::move(send)](const Decision& d) mutable {
          guarded(send, version, [&] {
            const bool shadow = p->config.shadow;
            if (record) {
              p->stats->record(d, shadow, Clock::now() - start, p->config.policy.name(), log_key);
            }
            std::string body;
            append_decision_json(body, p->config.policy.name(), p->rule.told(d), shadow);
            auto res = respond(bhttp::status::ok, version, std::move(body));
            // A shadow policy is not enforced: no RateLimit-* that could
            // run to 0 reaches a client (docs/DESIGN.md §8).
            if (d.outcome != Outcome::kUnavailable) {
              http::HeaderList headers;
              p->rule.headers(d, headers);  // none for a shadow policy
              beast::add_headers(headers, res);
            }
            send(std::move(res));
          });
        });
    return;
  }

  // A batch: items go to the store through the process's window (item_window.h), at most
  // batch_in_flight_per_request of them at a time; answered when the last one completes.
  struct Batch : std::enable_shared_from_this<Batch> {
    std::shared_ptr<const Runtime> runtime;
    std::shared_ptr<ItemWindow> window;
    std::vector<const RuntimePolicy*> policies;
    std::vector<ApiItem> items;
    std::vector<Decision> decisions;
    std::vector<std::string> keys;  // for the log of shadow denials
    std::vector<bool> record;       // a real decision (cost > 0), counted in the metrics
    std::atomic<std::size_t> pending{0};
    std::atomic<std::size_t> next{0};  // the next item to put in the window
    beast::Send send;
    unsigned version = 11;
    bool peek = false;
    Clock::time_point start;

    void submit_next() {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= items.size()) return;
      window->submit([self = shared_from_this(), i] { self->run(i); });
    }

    void run(std::size_t i) {
      const RuntimePolicy* p = policies[i];
      try {
        const std::string key = p->rule.key(items[i].key);
        if (p->config.shadow) keys[i] = key;
        ask(runtime->limiter, peek, p->config.policy, key, items[i].cost,
            [self = shared_from_this(), i](const Decision& d) {
              self->window->release();
              self->complete(i, d);
            });
      } catch (const std::exception& e) {
        // Validated before; should it happen anyway, the item is answered as unavailable.
        log::error("check_failed", {{"policy", p->config.policy.name()}, {"error", e.what()}});
        Decision d;
        d.outcome = Outcome::kUnavailable;
        d.degraded = true;
        window->release();
        complete(i, d);
      }
    }

    void complete(std::size_t i, const Decision& d) {
      decisions[i] = d;
      const RuntimePolicy* policy = policies[i];
      if (record[i]) {
        policy->stats->record(d, policy->config.shadow, Clock::now() - start,
                              policy->config.policy.name(), keys[i]);
      }
      submit_next();
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) finish();
    }

    void finish() {
      guarded(send, version, [&] {
        std::string body = "[";
        body.reserve(decisions.size() * 180);
        for (std::size_t i = 0; i < decisions.size(); ++i) {
          if (i != 0) body += ',';
          append_decision_json(body, policies[i]->config.policy.name(),
                               policies[i]->rule.told(decisions[i]), policies[i]->config.shadow);
        }
        body += ']';
        send(respond(bhttp::status::ok, version, std::move(body)));
      });
    }
  };
  auto batch = std::make_shared<Batch>();
  const std::size_t first = std::min(n, runtime->config.batch_in_flight_per_request);
  batch->runtime = std::move(runtime);
  batch->window = batch_window_;
  batch->policies = std::move(policies);
  batch->items = std::move(api.items);
  batch->decisions.resize(n);
  batch->keys.resize(n);
  batch->record.resize(n);
  for (std::size_t i = 0; i < n; ++i) batch->record[i] = decides(batch->items[i].cost);
  batch->pending = n;
  batch->send = std::move(send);
  batch->version = version;
  batch->peek = peek;
  batch->start = Clock::now();
  for (std::size_t i = 0; i < first; ++i) batch->submit_next();
}

void Service::reset(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
                    beast::Send send) {
  const unsigned version = request.version();
  auto parsed = parse_api_request(request.body(), ApiCall::kReset, runtime->limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    send(respond(bhttp::status::bad_request, version, error_body("invalid_request", *error)));
    return;
  }
  ApiRequest& api = std::get<ApiRequest>(parsed);
  const std::size_t n = api.items.size();
  struct Resets {
    std::shared_ptr<const Runtime> runtime;
    std::vector<std::string> policies;
    std::vector<std::error_code> errors;
    std::atomic<std::size_t> pending{0};
    beast::Send send;
    unsigned version = 11;
    bool batch = false;
  };
  auto resets = std::make_shared<Resets>();
  resets->runtime = std::move(runtime);
  const Runtime& rt = *resets->runtime;  // alive while `resets` is, to the end of this call
  resets->errors.resize(n);
  resets->pending = n;
  resets->send = std::move(send);
  resets->version = version;
  resets->batch = api.batch;
  std::vector<const RuntimePolicy*> policies(n);
  for (std::size_t i = 0; i < n; ++i) {
    policies[i] = rt.find(api.items[i].policy);
    if (policies[i] == nullptr) {
      resets->send(error_response(bhttp::status::bad_request, version, "invalid_request",
                                  item_field(api, i, "policy"),
                                  "unknown policy '" + printable(api.items[i].policy) + "'"));
      return;
    }
    resets->policies.push_back(api.items[i].policy);
  }
  auto finish = [](Resets& r) {
    guarded(r.send, r.version, [&] {
      json out = json::array();
      bool failed = false;
      for (std::size_t i = 0; i < r.errors.size(); ++i) {
        json item = {{"reset", !r.errors[i]}, {"policy", r.policies[i]}};
        if (r.errors[i]) {
          item["error"] = r.errors[i].message();
          failed = true;
        }
        out.push_back(std::move(item));
      }
      const auto status =
          failed && !r.batch ? bhttp::status::service_unavailable : bhttp::status::ok;
      r.send(respond(status, r.version, (r.batch ? out : out[0]).dump()));
    });
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = policies[i]->rule.key(api.items[i].key);
    rt.limiter.reset(policies[i]->config.policy, key, [resets, i, finish](std::error_code ec) {
      resets->errors[i] = ec;
      if (resets->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) finish(*resets);
    });
  }
}

}  // namespace pacer::pacerd
