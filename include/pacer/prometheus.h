// pacer/prometheus.h — the one Prometheus text writer every front end exports through: the
// limiter's metrics, a store's own numbers (Store::counters), a server's counters, and labelled
// families (pacerd's per-policy series).
//
//   pacer::PrometheusText out("pacerd");
//   out.add(limiter.metrics().snapshot());
//   out.add(store);                         // <prefix>_store_connected and Store::counters()
//   out.counter("http_connections_shed_total", "Connections closed at the cap.", stats.shed);
//   out.counter("decisions_total", "Decisions by policy.", 7, {{"policy", "api"}});
//   response.body() = out.take();
//
// A family's HELP and TYPE lines are written before its first sample; write the samples of one
// family together (Prometheus wants them together). Label values are escaped.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "pacer/metrics.h"
#include "pacer/store.h"

namespace pacer {

class PrometheusText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // Every name is written `<prefix>_<name>`.
  explicit PrometheusText(std::string prefix = "pacer");

  void counter(std::string_view name, std::string_view help, double value, Labels labels = {});
  void gauge(std::string_view name, std::string_view help, double value, Labels labels = {});
  // A histogram from per-bucket (not cumulative) counts; `bounds_ns` are the upper bounds in
  // nanoseconds (written in seconds), the last count is the +Inf bucket.
  void histogram(std::string_view name, std::string_view help,
                 std::span<const std::int64_t> bounds_ns, std::span<const std::uint64_t> counts,
                 std::int64_t sum_ns, Labels labels = {});

  // The limiter's counters and check latency (requests_allowed_total, ...).
  void add(const MetricsSnapshot& metrics);
  // store_connected and the store's own numbers.
  void add(const Store& store);
  void add(std::span<const StoreStat> stats);

  const std::string& text() const { return text_; }
  std::string take() { return std::move(text_); }

  static constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::string_view suffix, Labels labels,
              std::string_view extra_label, std::string_view extra_value, double value);

  std::string prefix_;
  std::string text_;
  std::string last_family_;
};

}  // namespace pacer
