#include "request_flow.h"

#include <algorithm>
#include <memory>

#include "cluster.h"
#include "pacer/error.h"
#include "resp.h"

namespace pacer::redis::internal {

RequestFlow::RequestFlow(const std::vector<std::pair<std::string, std::uint16_t>>& seeds,
                         Options options, const Links& links)
    : options_(options), links_(links), router_(seeds, options.router) {}

void RequestFlow::start() {
  if (stopped_ || !options_.cluster) return;
  // The seeds; CLUSTER SLOTS from the first one up names the masters.
  for (const NodeId seed : router_.seeds()) push({.kind = Action::Kind::kConnect, .node = seed});
}

// ---- requests ------------------------------------------------------------------------------

std::uint32_t RequestFlow::acquire() {
  std::uint32_t index = 0;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
    requests_[index].command.clear();
  } else {
    index = static_cast<std::uint32_t>(requests_.size());
    requests_.emplace_back();
  }
  Request& request = requests_[index];
  request.redirects = 0;
  request.target = kNoNode;
  request.asking = false;
  request.wake = kNever;
  return index;
}

void RequestFlow::submit(std::span<const std::string_view> args, std::uint16_t slot,
                         ReplyHandler&& handler, std::optional<Clock::time_point> deadline,
                         Clock::time_point now) {
  const std::uint32_t index = acquire();
  append_command(requests_[index].command, args);
  start_request(index, slot, std::move(handler), deadline, now);
}

void RequestFlow::submit_encoded(std::string&& command, std::uint16_t slot, ReplyHandler&& handler,
                                 std::optional<Clock::time_point> deadline, Clock::time_point now) {
  const std::uint32_t index = acquire();
  requests_[index].command = std::move(command);
  start_request(index, slot, std::move(handler), deadline, now);
}

void RequestFlow::start_request(std::uint32_t index, std::uint16_t slot, ReplyHandler&& handler,
                                std::optional<Clock::time_point> deadline, Clock::time_point now) {
  Request& request = requests_[index];
  request.handler = std::move(handler);
  request.slot = slot;
  request.deadline = deadline.value_or(now + options_.command_timeout);
  // Inside execute(): every failure is answered later.
  if (stopped_) return complete(index, Errc::kStoreUnavailable, Reply{}, true);
  route(index, kNoNode, false, now);
}

void RequestFlow::complete(std::uint32_t index, std::error_code ec, Reply&& reply, bool later) {
  Request& request = requests_[index];
  push({.kind = Action::Kind::kComplete,
        .later = later,
        .handler = std::move(request.handler),
        .error = ec,
        .reply = std::move(reply)});
  request.handler = nullptr;
  request.state = State::kFree;
  ++request.generation;
  if (request.command.capacity() > 4096) std::string().swap(request.command);
  free_.push_back(index);
}

// Sends the request to `target` (kNoNode: the node that serves its slot; standalone: node 0),
// or holds it until that node or the slot map is there. Every failure here is known not to have
// run the command, and is answered later (this may be inside execute()).
void RequestFlow::route(std::uint32_t index, NodeId target, bool asking, Clock::time_point now) {
  Request& request = requests_[index];
  if (now >= request.deadline) return complete(index, Errc::kTimeout, Reply{}, true);
  const NodeId node =
      target != kNoNode ? target : (options_.cluster ? router_.node_for(request.slot) : 0);
  if (node == kNoNode) {
    // No slot map yet: worth waiting for while one is on its way, not when it cannot come.
    if (map_on_its_way()) return hold(index, kNoNode, false, kNever);
    return complete(index, Errc::kStoreUnavailable, Reply{}, true);
  }
  switch (links_.link(node)) {
    case Link::kNone:
      // Standalone the connection is made by the client, never here.
      if (stopped_ || !options_.cluster)
        return complete(index, Errc::kStoreUnavailable, Reply{}, true);
      // A node never connected (a MOVED target, a new master): its first attempt starts now.
      push({.kind = Action::Kind::kConnect, .node = node});
      return hold(index, node, asking, kNever);
    case Link::kConnecting:
      return hold(index, node, asking, kNever);
    case Link::kDown:
      // A node that was up and went down is not worth waiting for: fail fast, the slot map will
      // move on without it.
      return complete(index, Errc::kStoreUnavailable, Reply{}, true);
    case Link::kUp:
      break;
  }
  request.state = State::kSent;
  push({.kind = Action::Kind::kSend,
        .node = node,
        .ticket = {index, ++request.generation},
        .asking = asking,
        .deadline = request.deadline});
}

void RequestFlow::hold(std::uint32_t index, NodeId target, bool asking, Clock::time_point wake) {
  Request& request = requests_[index];
  request.state = State::kHeld;
  request.target = target;
  request.asking = asking;
  request.wake = wake;
  held_.push_back(index);
}

RequestFlow::Request* RequestFlow::sent(Ticket ticket) {
  if (ticket.index >= requests_.size()) return nullptr;
  Request& request = requests_[ticket.index];
  if (request.state != State::kSent || request.generation != ticket.generation) return nullptr;
  return &request;
}

void RequestFlow::on_send_failed(Ticket ticket, std::error_code ec) {
  if (sent(ticket) != nullptr) complete(ticket.index, ec, Reply{}, true);
}

void RequestFlow::on_reply(Ticket ticket, NodeId node, std::error_code ec, Reply&& reply,
                           Clock::time_point now) {
  Request* request = sent(ticket);
  if (request == nullptr) return;  // answered already
  // A failure (timeout, connection lost after the write) leaves the outcome unknown: never
  // resent. Only a reply that says the command did not run is.
  if (ec || stopped_ || reply.type != Reply::Type::kError)
    return complete(ticket.index, ec, std::move(reply), false);
  const ClusterRouter::Step step = router_.on_reply(reply, node);
  using Kind = ClusterRouter::Step::Kind;
  switch (step.kind) {
    case Kind::kDeliver:
      return complete(ticket.index, ec, std::move(reply), false);
    case Kind::kResend:
    case Kind::kResendAsking:
      if (++request->redirects > options_.max_redirects)
        return complete(ticket.index, ec, std::move(reply), false);
      route(ticket.index, step.node, step.kind == Kind::kResendAsking, now);
      break;
    case Kind::kRetryLater:
      hold(ticket.index, kNoNode, false, now + router_.options().retry_delay);
      break;
  }
  maybe_refresh(now);
}

bool RequestFlow::map_on_its_way() const {
  if (router_.refresh_in_flight()) return true;
  for (NodeId node = 0; node < static_cast<NodeId>(router_.node_count()); ++node)
    if (links_.link(node) == Link::kConnecting) return true;
  return false;
}

void RequestFlow::release_held(Clock::time_point now, bool event) {
  if (held_.empty()) return;
  std::vector<std::uint32_t> batch;
  batch.swap(held_);
  for (const std::uint32_t index : batch) {
    Request& request = requests_[index];
    if (now >= request.deadline) {
      complete(index, Errc::kTimeout, Reply{}, false);
    } else if (request.wake <= now || (event && request.wake == kNever)) {
      route(index, request.target, request.asking, now);  // may hold it again
    } else {
      held_.push_back(index);
    }
  }
}

void RequestFlow::fail_held() {
  for (const std::uint32_t index : std::exchange(held_, {}))
    complete(index, Errc::kStoreUnavailable, Reply{}, false);
}

// ---- connections, the timer, the slot map ---------------------------------------------------

void RequestFlow::on_node_up(Clock::time_point now) {
  if (options_.cluster) {
    refresh_needs_connection_ = false;
    maybe_refresh(now);  // first: requests waiting for the map see it on its way
  }
  // Requests waiting for this node, or for a first slot map this node can now give.
  release_held(now, true);
}

void RequestFlow::on_node_down(NodeId node, Clock::time_point now) {
  if (!options_.cluster || !router_.is_master(node)) return;
  // A failover may move its slots.
  router_.want_refresh();
  maybe_refresh(now);
}

void RequestFlow::on_tick(Clock::time_point now) {
  release_held(now, false);
  maybe_refresh(now);
}

RequestFlow::Clock::time_point RequestFlow::next_wake() const {
  Clock::time_point next = kNever;
  if (options_.cluster && !refresh_needs_connection_) {
    if (auto refresh = router_.next_refresh()) next = *refresh;
  }
  for (const std::uint32_t index : held_)
    next = std::min({next, requests_[index].wake, requests_[index].deadline});
  return next;
}

bool RequestFlow::update_connected() {
  if (stopped_) return false;
  if (!options_.cluster) return links_.link(0) == Link::kUp;
  const bool masters_up =
      std::all_of(router_.masters().begin(), router_.masters().end(),
                  [this](NodeId master) { return links_.link(master) == Link::kUp; });
  router_.set_degraded(!masters_up);
  return router_.has_map() && !router_.masters().empty() && masters_up;
}

void RequestFlow::maybe_refresh(Clock::time_point now) {
  if (!options_.cluster || stopped_) return;
  const auto due = router_.next_refresh();
  if (!due || *due > now) return;
  NodeId chosen = kNoNode;
  for (const NodeId candidate : router_.refresh_candidates()) {
    if (links_.link(candidate) == Link::kUp) {
      chosen = candidate;
      break;
    }
  }
  if (chosen == kNoNode) {
    // Nobody to ask: (re)connect to the seeds; the first to come up is asked (on_node_up), and
    // until then the timer does not keep asking.
    refresh_needs_connection_ = true;
    for (const NodeId seed : router_.seeds()) push({.kind = Action::Kind::kConnect, .node = seed});
    return;
  }
  refresh_needs_connection_ = false;
  router_.refresh_started(now);
  push({.kind = Action::Kind::kAskSlots, .node = chosen});
}

std::string RequestFlow::on_slots(NodeId asked, std::error_code ec, const Reply& reply,
                                  Clock::time_point now) {
  const auto& endpoint = router_.endpoint(asked);
  const std::string who = endpoint_name(endpoint.host, endpoint.port);
  if (ec) {
    router_.refresh_failed(now);
    return who + ": CLUSTER SLOTS failed: " + ec.message();
  }
  const ClusterRouter::Applied applied = router_.refresh_finished(reply, asked, now);
  if (!applied.error.empty()) return who + ": CLUSTER SLOTS failed: " + applied.error;
  for (const NodeId master : router_.masters())
    push({.kind = Action::Kind::kConnect, .node = master});
  release_held(now, true);
  // After the held requests: one sent to a retired node (an ASK target) goes out on its
  // connection before that connection drains.
  for (const NodeId node : applied.retired) {
    push({.kind = Action::Kind::kRetire,
          .node = node,
          .deadline = now + 2 * options_.command_timeout});
  }
  return {};
}

std::optional<RequestFlow::Action> RequestFlow::next_action() {
  if (actions_.empty()) return std::nullopt;
  std::optional<Action> action(std::move(actions_.front()));
  actions_.pop_front();
  return action;
}

std::vector<ReplyHandler> gather_replies(std::size_t parts, AllRepliesHandler&& handler) {
  struct Gather {
    AllRepliesHandler handler;
    std::vector<Reply> replies;
    std::size_t remaining;
    std::error_code error;
  };
  // Every part runs exactly once (on the I/O thread); the last one answers.
  auto gather =
      std::make_shared<Gather>(Gather{std::move(handler), std::vector<Reply>(parts), parts, {}});
  std::vector<ReplyHandler> handlers;
  handlers.reserve(parts);
  for (std::size_t i = 0; i < parts; ++i) {
    handlers.emplace_back([gather, i](std::error_code ec, Reply&& reply) {
      if (ec) {
        if (!gather->error) gather->error = ec;
      } else {
        gather->replies[i] = std::move(reply);
      }
      if (--gather->remaining == 0) {
        gather->handler(gather->error, std::move(gather->replies));  // the caller's guard catches
      }
    });
  }
  return handlers;
}

}  // namespace pacer::redis::internal
