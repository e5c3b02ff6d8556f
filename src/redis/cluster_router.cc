#include "cluster_router.h"

#include <algorithm>

namespace pacer::redis::internal {

ClusterRouter::ClusterRouter(const std::vector<std::pair<std::string, std::uint16_t>>& seeds,
                             Options options)
    : options_(options) {
  for (const auto& [host, port] : seeds) {
    const NodeId node = find_or_add(host, port);
    if (std::find(seeds_.begin(), seeds_.end(), node) == seeds_.end()) seeds_.push_back(node);
  }
}

ClusterRouter::NodeId ClusterRouter::find_or_add(std::string_view host, std::uint16_t port) {
  const auto [it, added] =
      index_.try_emplace(endpoint_name(host, port), static_cast<NodeId>(nodes_.size()));
  if (added) nodes_.push_back({std::string(host), port});
  return it->second;
}

bool ClusterRouter::is_master(NodeId node) const {
  return std::find(masters_.begin(), masters_.end(), node) != masters_.end();
}

ClusterRouter::Step ClusterRouter::on_reply(const Reply& reply, NodeId from) {
  if (reply.type != Reply::Type::kError) return {};
  if (auto redirect = parse_redirect(reply, endpoint(from).host)) {
    const NodeId target = find_or_add(redirect->host, redirect->port);
    if (redirect->kind == Redirect::Kind::kAsk) return {Step::Kind::kResendAsking, target};
    // The slot has moved for good. Route it there now; the rest of the map is asked for once
    // per change: the other commands redirected for the same move find the route fixed already.
    if (!slots_.empty() && slots_[redirect->slot] != target) {
      slots_[redirect->slot] = target;
      if (!is_master(target)) masters_.push_back(target);
      want_refresh();
    }  // (without a map yet, one is wanted anyway: next_refresh())
    return {Step::Kind::kResend, target};
  }
  // A slot being migrated with keys on both sides (multi-key commands), or a cluster that has
  // lost a master and not yet promoted its replica: the command did not run.
  if (reply.is_error_prefix("TRYAGAIN")) return {Step::Kind::kRetryLater, kNoNode};
  if (reply.is_error_prefix("CLUSTERDOWN")) {
    want_refresh();
    return {Step::Kind::kRetryLater, kNoNode};
  }
  return {};
}

std::optional<ClusterRouter::Clock::time_point> ClusterRouter::next_refresh() const {
  if (in_flight_) return std::nullopt;
  if (stale_ || slots_.empty() || failure_delay_ != Clock::duration::zero())
    return std::max(last_start_ + options_.min_refresh_gap, last_end_ + failure_delay_);
  return last_end_ + (degraded_ ? options_.degraded_refresh_interval : options_.refresh_interval);
}

std::vector<ClusterRouter::NodeId> ClusterRouter::refresh_candidates() const {
  std::vector<NodeId> order = masters_;
  for (NodeId node = 0; node < static_cast<NodeId>(nodes_.size()); ++node)
    if (!is_master(node)) order.push_back(node);
  return order;
}

void ClusterRouter::refresh_started(Clock::time_point now) {
  in_flight_ = true;
  stale_ = false;  // what asks for a refresh from now on asks for the next one
  last_start_ = now;
  ++refreshes_;
}

void ClusterRouter::refresh_failed(Clock::time_point now) {
  in_flight_ = false;
  last_end_ = now;
  failure_delay_ = failure_delay_ == Clock::duration::zero()
                       ? options_.failed_refresh_delay
                       : std::min<Clock::duration>(2 * failure_delay_, options_.refresh_interval);
}

ClusterRouter::Applied ClusterRouter::refresh_finished(const Reply& reply, NodeId asked,
                                                       Clock::time_point now) {
  Applied applied;
  const SlotMapResult result = parse_cluster_slots(reply, endpoint(asked).host);
  if (!result.error.empty()) {
    refresh_failed(now);
    applied.error = result.error;
    return applied;
  }
  in_flight_ = false;
  last_end_ = now;
  failure_delay_ = Clock::duration::zero();

  std::vector<NodeId> map(kSlotCount, kNoNode);
  std::vector<NodeId> masters;
  for (const SlotRange& range : result.ranges) {
    const NodeId node = find_or_add(range.host, range.port);
    std::fill(map.begin() + range.first, map.begin() + range.last + 1, node);
    if (std::find(masters.begin(), masters.end(), node) == masters.end()) masters.push_back(node);
  }
  applied.changed = map != slots_;
  slots_ = std::move(map);
  masters_ = std::move(masters);
  for (NodeId node = 0; node < static_cast<NodeId>(nodes_.size()); ++node)
    if (!is_master(node)) applied.retired.push_back(node);
  return applied;
}

}  // namespace pacer::redis::internal
