#include "pacer/prometheus.h"

#include <fmt/format.h>

#include <cmath>

namespace pacer {
namespace {

// Label values escape backslash, double quote and newline (the exposition format's rules).
void append_escaped(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, double value) {
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<std::int64_t>(value));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

}  // namespace

PrometheusText::PrometheusText(std::string prefix) : prefix_(std::move(prefix)) {}

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  if (name == last_family_) return;
  last_family_ = name;
  fmt::format_to(std::back_inserter(text_), "# HELP {0}_{1} {2}\n# TYPE {0}_{1} {3}\n", prefix_,
                 name, help, type);
}

void PrometheusText::sample(std::string_view name, std::string_view suffix, Labels labels,
                            std::string_view extra_label, std::string_view extra_value,
                            double value) {
  text_.append(prefix_).append("_").append(name).append(suffix);
  if (labels.size() != 0 || !extra_label.empty()) {
    text_ += '{';
    bool first = true;
    auto label = [&](std::string_view key, std::string_view v) {
      if (!first) text_ += ',';
      first = false;
      text_.append(key).append("=\"");
      append_escaped(text_, v);
      text_ += '"';
    };
    for (const auto& [key, v] : labels) label(key, v);
    if (!extra_label.empty()) label(extra_label, extra_value);
    text_ += '}';
  }
  text_ += ' ';
  append_value(text_, value);
  text_ += '\n';
}

void PrometheusText::counter(std::string_view name, std::string_view help, double value,
                             Labels labels) {
  family(name, "counter", help);
  sample(name, "", labels, {}, {}, value);
}

void PrometheusText::gauge(std::string_view name, std::string_view help, double value,
                           Labels labels) {
  family(name, "gauge", help);
  sample(name, "", labels, {}, {}, value);
}

void PrometheusText::histogram(std::string_view name, std::string_view help,
                               std::span<const std::int64_t> bounds_ns,
                               std::span<const std::uint64_t> counts, std::int64_t sum_ns,
                               Labels labels) {
  family(name, "histogram", help);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le = i < bounds_ns.size()
                               ? fmt::format("{}", static_cast<double>(bounds_ns[i]) / 1e9)
                               : std::string("+Inf");
    sample(name, "_bucket", labels, "le", le, static_cast<double>(cumulative));
  }
  sample(name, "_sum", labels, {}, {}, static_cast<double>(sum_ns) / 1e9);
  sample(name, "_count", labels, {}, {}, static_cast<double>(cumulative));
}

void PrometheusText::add(const MetricsSnapshot& m) {
  auto n = [](std::uint64_t v) { return static_cast<double>(v); };
  counter("requests_allowed_total", "Decisions that admitted the request.", n(m.allowed));
  counter("requests_denied_total", "Decisions that denied the request (429 or 503).", n(m.denied));
  counter("store_errors_total", "Store failures answered by the fail mode.", n(m.errors));
  counter("degraded_decisions_total", "Decisions made by the fail mode.", n(m.degraded));
  counter("hook_errors_total", "Hooks and asynchronous completion handlers that threw.",
          n(m.hook_errors));
  histogram("check_duration_seconds",
            fmt::format("Time from check to decision (in-process store: one decision in {} per "
                        "thread is timed).",
                        MetricsSnapshot::kInlineTimingSample),
            MetricsSnapshot::kBucketBounds, m.latency_buckets, m.latency_sum_ns);
}

void PrometheusText::add(const Store& store) {
  gauge("store_connected", "Whether the store is reachable.", store.connected() ? 1 : 0);
  add(store.counters());
}

void PrometheusText::add(std::span<const StoreStat> stats) {
  for (const StoreStat& s : stats) {
    if (s.gauge) {
      gauge(s.name, s.help, s.value);
    } else {
      counter(s.name, s.help, s.value);
    }
  }
}

}  // namespace pacer
