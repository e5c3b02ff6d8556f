// pacer/prometheus.h: the one Prometheus writer (families once, labels escaped, histograms
// cumulative, a store's numbers).
#include "pacer/prometheus.h"

#include <gtest/gtest.h>

#include "pacer/memory_store.h"
#include "pacer/policy_metrics.h"

namespace pacer {
namespace {

TEST(PrometheusText, FamiliesOnceLabelsEscapedValuesExact) {
  PrometheusText out("svc");
  out.counter("decisions_total", "Decisions.", 3, {{"policy", "a"}, {"result", "allowed"}});
  out.counter("decisions_total", "Decisions.", 4, {{"policy", "q\"\\\n"}, {"result", "denied"}});
  out.gauge("ratio", "A ratio.", 0.25);
  EXPECT_EQ(out.text(),
            "# HELP svc_decisions_total Decisions.\n# TYPE svc_decisions_total counter\n"
            "svc_decisions_total{policy=\"a\",result=\"allowed\"} 3\n"
            "svc_decisions_total{policy=\"q\\\"\\\\\\n\",result=\"denied\"} 4\n"
            "# HELP svc_ratio A ratio.\n# TYPE svc_ratio gauge\nsvc_ratio 0.25\n");
}

TEST(PrometheusText, HistogramsAreCumulativeWithSumAndCount) {
  PrometheusText out("p");
  const std::int64_t bounds[] = {1'000'000, 10'000'000};
  const std::uint64_t counts[] = {2, 3, 1};
  out.histogram("d_seconds", "Durations.", bounds, counts, 25'000'000, {{"policy", "a"}});
  EXPECT_EQ(out.text(),
            "# HELP p_d_seconds Durations.\n# TYPE p_d_seconds histogram\n"
            "p_d_seconds_bucket{policy=\"a\",le=\"0.001\"} 2\n"
            "p_d_seconds_bucket{policy=\"a\",le=\"0.01\"} 5\n"
            "p_d_seconds_bucket{policy=\"a\",le=\"+Inf\"} 6\n"
            "p_d_seconds_sum{policy=\"a\"} 0.025\np_d_seconds_count{policy=\"a\"} 6\n");
}

TEST(PrometheusText, AStoreReportsItsOwnNumbersWithoutBeingNamed) {
  MemoryStore store;
  const Policy policy("p", {Rate(1, std::chrono::seconds(1))});
  store.check_now(policy, "k", 1);
  PrometheusText out;
  out.add(static_cast<const Store&>(store));
  const std::string& text = out.text();
  EXPECT_NE(text.find("pacer_store_connected 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("pacer_memory_keys 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE pacer_memory_evictions_total counter\n"), std::string::npos);
}

}  // namespace
}  // namespace pacer

namespace pacer {
namespace {

TEST(PolicyMetrics, CountsByResultAndWritesLabelledFamilies) {
  PolicyMetrics api;
  Decision allowed;
  allowed.outcome = Outcome::kAllowed;
  Decision denied;
  denied.outcome = Outcome::kDenied;
  Decision degraded = allowed;
  degraded.degraded = true;
  api.record(allowed, false, std::chrono::microseconds(3));
  api.record(denied, false, std::chrono::microseconds(30));
  api.record(denied, true, std::chrono::milliseconds(20));
  api.record(degraded, false, std::chrono::microseconds(1));
  const PolicyMetrics::Snapshot s = api.snapshot();
  EXPECT_EQ(s.allowed, 2u);
  EXPECT_EQ(s.denied, 1u);
  EXPECT_EQ(s.shadow_denied, 1u);
  EXPECT_EQ(s.store_errors, 1u);
  PrometheusText out("d");
  const std::pair<std::string_view, PolicyMetrics::Snapshot> policies[] = {{"api", s}};
  PolicyMetrics::write(out, policies);
  const std::string& text = out.text();
  EXPECT_NE(text.find("d_decisions_total{policy=\"api\",result=\"shadow_denied\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("d_store_errors_total{policy=\"api\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("d_decision_duration_seconds_bucket{policy=\"api\",le=\"+Inf\"} 4\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace pacer
