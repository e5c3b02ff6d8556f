// pacer._pacer — the C++ engine behind the Python package `pacer`: the bindings only.
//
// Python holds glue only (ASGI middleware, FastAPI dependency, the seed's classes); everything
// that decides something is in C++: durations, client addresses through trusted proxies
// (request_view.h), key hashing, storage keys, GCRA in the store, fail modes (engine.h), header
// values and bodies (policy.h). Redis decisions reach asyncio through a Bridge (bridge.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asgi_entry.h"
#include "bridge.h"
#include "engine.h"
#include "fast_path.h"
#include "log_queue.h"
#include "pacer/http/identity.h"
#include "pacer/http/response.h"
#include "pacer/http/rule.h"
#include "pacer/rate.h"
#include "pacer/redis/url.h"
#include "pacer/version.h"
#include "policy.h"
#include "request_view.h"
#include "store_await.h"

namespace py = pybind11;

PYBIND11_MODULE(_pacer, m) {
  using namespace pacer::python;
  namespace http = pacer::http;
  m.doc() = "Pacer's C++ engine; use the `pacer` package, not this module.";
  m.attr("__version__") = std::string(pacer::kVersion);  // pacer/version.h: the one version

  // By value: pybind11 takes a void (*)(std::exception_ptr).
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def(
      "parse_duration_ns",
      [](std::string_view text) { return pacer::parse_duration(text).count(); },
      "Nanoseconds of '500ms', '1s', '1.5m', ...; ValueError naming anything else.");
  m.def(
      "hash_identity", [](std::string_view value) { return http::hash_identity(value).substr(2); },
      "The first 128 bits of SHA-256(value) in hex (32 characters).");
  m.def("storage_key", &http::storage_key, py::arg("prefix"), py::arg("policy"), py::arg("scope"),
        py::arg("identity"));
  m.def(
      "check_redis_url", [](std::string_view url) { pacer::redis::parse_redis_url(url); },
      "ValueError naming a Redis URL the store would refuse (password masked).");
  m.def(
      "parse_redis_url",
      [](std::string_view url) {
        const pacer::redis::RedisUrl parsed = pacer::redis::parse_redis_url(url);
        py::dict out;
        out["tls"] = parsed.tls;
        out["cluster"] = parsed.cluster;
        out["sentinel"] = parsed.sentinel;
        out["hosts"] = parsed.hosts;
        out["username"] = parsed.username;
        out["password"] = parsed.password;
        out["db"] = parsed.db;
        out["master_name"] = parsed.master_name;
        out["sentinel_username"] = parsed.sentinel_username;
        out["sentinel_password"] = parsed.sentinel_password;
        return out;
      },
      "The engine's reading of a Redis URL (for limiter.storage.redis); ValueError as "
      "check_redis_url.");
  m.def(
      "mask_redis_url", [](std::string_view url) { return pacer::redis::mask_redis_url(url); },
      "The URL with its passwords shown as ***, for messages.");
  m.def("check_key_prefix", &check_key_prefix);
  m.attr("UNAVAILABLE_BODY") = py::bytes(http::unavailable_body());
  m.attr("IDENTITY_MISSING_BODY") = py::bytes(http::identity_missing_body());
  m.attr("UNAVAILABLE_RETRY_AFTER_S") = http::kUnavailableRetryAfter.count();

  py::enum_<HeaderFlag>(m, "HeaderFlag", "Which headers a check renders; combine with |.")
      .value("NONE", HeaderFlag::kNone)
      .value("EXPOSE", HeaderFlag::kExpose, "RateLimit-* and Retry-After")
      .value("X_RATELIMIT_RESET", HeaderFlag::kXRateLimitReset)
      .value("X_RATELIMIT_POLICY", HeaderFlag::kXRateLimitPolicy)
      .def("__or__", [](HeaderFlag a, HeaderFlag b) { return a | b; });

  py::enum_<ScopeKind>(m, "ScopeKind", "The scope part of a Rule's keys.")
      .value("PATH", ScopeKind::kPath, "the path given")
      .value("METHOD_PATH", ScopeKind::kMethodPath, "\"METHOD:path\"")
      .value("GLOBAL", ScopeKind::kGlobal, "\"global\"");
  py::register_exception<IdentityMissingError>(m, "IdentityMissing", PyExc_Exception);

  py::class_<NativePolicy>(m, "Policy")
      .def(py::init(&NativePolicy::make), py::arg("name"), py::arg("rates"), py::arg("description"),
           py::arg("shadow") = false)
      .def_property_readonly("name", [](const NativePolicy& p) { return p.policy.name(); })
      .def("emission_interval_ns",
           [](const NativePolicy& p, std::size_t i) {
             return p.policy.rates()[i].emission_interval().count();
           })
      .def(
          "headers",
          [](const NativePolicy& p, bool allowed, std::int64_t retry_after_ms,
             std::int64_t reset_ms, std::int64_t remaining, std::size_t index, bool expose,
             bool legacy, bool policy_header) {
            return named_headers(
                p, decision_from_fields(p, allowed, retry_after_ms, reset_ms, remaining, index),
                {expose, legacy, policy_header});
          },
          "The seed's add_headers for a RateLimitResult's fields, as (name, value) pairs.");

  py::class_<Verdict>(m, "Verdict")
      .def_property_readonly("outcome", &Verdict::outcome)
      .def_property_readonly("allowed", [](const Verdict& v) { return v.decision.allowed(); })
      .def_property_readonly("limit", [](const Verdict& v) { return v.decision.limit; })
      .def_property_readonly("remaining", [](const Verdict& v) { return v.decision.remaining; })
      .def_property_readonly(
          "retry_after_ms",
          [](const Verdict& v) { return http::ceil_milliseconds(v.decision.retry_after); })
      .def_property_readonly(
          "reset_ms",
          [](const Verdict& v) { return http::ceil_milliseconds(v.decision.reset_after); })
      .def_property_readonly("rate_index", [](const Verdict& v) { return v.decision.rate_index; })
      .def_property_readonly("headers",
                             [](const Verdict& v) { return v.headers ? v.headers : py::none(); })
      .def_property_readonly("degraded", [](const Verdict& v) { return v.decision.degraded; })
      .def_property_readonly("error",
                             [](const Verdict& v) -> std::optional<std::string> {
                               if (!v.decision.degraded) return std::nullopt;
                               return v.error.empty() ? "store unavailable" : v.error;
                             })
      .def("asgi_headers",
           [](const Verdict& v, const NativePolicy& p, bool expose, bool legacy,
              bool policy_header) {
             return asgi_headers(p, v.decision, {expose, legacy, policy_header});
           })
      .def("body", &Verdict::body, py::arg("nested") = false);

  // HeaderSend, Gate and NativeCallable: the per-request callables, on the C API (fast_path.h).
  add_fast_path(m);
  // LimiterMiddleware's __call__ and the state it reads, on the C API (asgi_entry.h).
  add_asgi_entry(m);
  // The awaitable of a middleware request the store decides later, on the C API (store_await.h).
  add_store_await(m);

  py::class_<Bridge>(m, "Bridge")
      .def(py::init<const py::object&>(), py::arg("loop"))
      .def_property_readonly("fd", &Bridge::fd)
      .def("drain", &Bridge::drain);

  py::class_<Engine>(m, "Engine")
      .def(py::init([](std::optional<std::string> url, std::string fail_mode, std::string prefix,
                       std::int64_t connect_timeout_ms, std::int64_t command_timeout_ms,
                       std::string tls_ca_file, std::string tls_cert_file, std::string tls_key_file,
                       bool tls_verify, std::string tls_server_name, std::string io) {
             return std::make_unique<Engine>(
                 EngineOptions{std::move(url),
                               std::move(fail_mode),
                               std::move(prefix),
                               connect_timeout_ms,
                               command_timeout_ms,
                               {std::move(tls_ca_file), std::move(tls_cert_file),
                                std::move(tls_key_file), tls_verify, std::move(tls_server_name)},
                               std::move(io)});
           }),
           py::arg("url"), py::arg("fail_mode"), py::arg("prefix"), py::arg("connect_timeout_ms"),
           py::arg("command_timeout_ms"), py::arg("tls_ca_file") = "",
           py::arg("tls_cert_file") = "", py::arg("tls_key_file") = "",
           py::arg("tls_verify") = true, py::arg("tls_server_name") = "", py::arg("io") = "thread")
      .def_property_readonly("completes_inline", &Engine::completes_inline)
      .def_property_readonly("io_mode", &Engine::io_mode)
      .def_property_readonly("prefix", &Engine::prefix)
      .def(
          "check",
          [](Engine& e, const CompiledRule& rule, const py::object& request, std::string_view route,
             const py::handle& bridge, py::object future, std::optional<HeaderFlag> headers) {
            return e.check(rule, request, route, bridge_or_null(bridge), std::move(future),
                           headers);
          },
          py::arg("rule"), py::arg("request"), py::arg("route"), py::arg("bridge"),
          py::arg("future"), py::arg("headers") = py::none())
      .def(
          "submit",
          [](Engine& e, const NativePolicy& p, const std::string& key, std::int64_t cost,
             const py::handle& bridge, py::object future) {
            return e.submit(p, key, cost, bridge_or_null(bridge), std::move(future), std::nullopt);
          },
          py::arg("policy"), py::arg("key"), py::arg("cost"), py::arg("bridge"), py::arg("future"))
      .def(
          "admit",
          [](Engine& e, const CompiledRule& rule, const py::object& request, std::string_view route,
             HeaderFlag headers, const py::handle& bridge, py::object future, py::object send) {
            return e.admit(rule, request, route, headers, bridge_or_null(bridge), std::move(future),
                           std::move(send));
          },
          py::arg("rule"), py::arg("request"), py::arg("route"), py::arg("headers"),
          py::arg("bridge"), py::arg("future"), py::arg("send"))
      .def("check_blocking", &Engine::check_blocking, py::arg("rule"), py::arg("scope"),
           py::arg("identity"), py::arg("cost"), py::arg("peek") = false)
      .def("reset", &Engine::reset, py::arg("rule"), py::arg("scope"), py::arg("identity"))
      .def("validate", &Engine::validate)
      .def("connected", &Engine::connected)
      .def("wait_connected", &Engine::wait_connected)
      .def("last_error", &Engine::last_error)
      .def("metrics", &Engine::metrics)
      .def("prometheus", &Engine::prometheus, py::arg("prefix") = "pacer")
      .def("shutdown", &Engine::shutdown);

  py::class_<CompiledRule>(m, "Rule")
      .def(py::init<NativePolicy, const std::string&, ScopeKind, const py::object&,
                    std::string_view>(),
           py::arg("policy"), py::arg("prefix"), py::arg("scope_kind"), py::arg("selector"),
           py::arg("missing_identity"))
      .def("key",
           py::overload_cast<std::string_view, std::string_view>(&CompiledRule::key, py::const_),
           py::arg("scope"), py::arg("identity"), "The storage key of a scope and an identity.")
      .def(
          "request_key",
          [](const CompiledRule& r, const py::object& request, std::string_view route) {
            return r.key(request, route);
          },
          py::arg("request"), py::arg("route"),
          "The storage key of a request (an ASGI scope or a request object); when it has no "
          "identity and the policy refuses such requests, IdentityMissing (None for a shadow "
          "policy, which skips it).");
  m.def("select", &select_identity, py::arg("selector"), py::arg("request"),
        "What the built-in selector answers for a request object.");
  m.attr("DEFAULT_TRUSTED_PROXIES") = std::string(kDefaultTrustedProxies);

  py::class_<ClientIp>(m, "ClientIp")
      .def(py::init<const std::string&, std::vector<std::string>, int>(), py::arg("trusted"),
           py::arg("headers"), py::arg("ipv6_prefix") = 128)
      .def("resolve", &ClientIp::resolve)
      .def_property_readonly("trusted", &ClientIp::trusted);

  m.def("_release_orphans", &release_orphans);

  // The library's log lines, for python/pacer/_log.py (log_queue.h).
  py::enum_<pacer::LogLevel>(m, "LogLevel")
      .value("TRACE", pacer::LogLevel::kTrace)
      .value("DEBUG", pacer::LogLevel::kDebug)
      .value("INFO", pacer::LogLevel::kInfo)
      .value("WARNING", pacer::LogLevel::kWarn)
      .value("ERROR", pacer::LogLevel::kError)
      .value("CRITICAL", pacer::LogLevel::kCritical);
  py::class_<LogQueue, std::shared_ptr<LogQueue>>(m, "LogQueue")
      .def(
          "wait",
          [](LogQueue& queue, std::int64_t timeout_ms) -> py::object {
            bool stopped = false;
            std::vector<LogQueue::Line> lines;
            // Not py::gil_scoped_release: a daemon thread that takes the GIL back while the
            // interpreter exits is ended inside PyEval_RestoreThread by forced unwinding, which
            // must not pass through a destructor (noexcept: std::terminate).
            PyThreadState* state = PyEval_SaveThread();
            try {
              lines = queue.wait(std::chrono::milliseconds(timeout_ms), stopped);
            } catch (...) {
              PyEval_RestoreThread(state);
              throw;
            }
            PyEval_RestoreThread(state);
            if (stopped) return py::none();
            py::list out;
            for (auto& line : lines) out.append(py::make_tuple(line.level, line.message));
            return out;
          },
          py::arg("timeout_ms"),
          "Waits without the GIL for the library's log lines: [(LogLevel, message)], or None "
          "once stopped and empty.")
      .def("stop", &LogQueue::stop);
  m.def("_install_log_queue", &install_log_queue,
        "Sends the library's log lines to a new LogQueue (and no longer to the previous one).");
  m.def("_remove_log_queue", &remove_log_queue, "The library's log lines go to stderr again.");
}
