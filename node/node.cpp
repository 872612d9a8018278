#include "node/node.hpp"

#include <type_traits>

namespace rl::node {
namespace {

std::uint64_t ms_to_ticks(std::uint32_t ms, std::uint32_t tick_ms) {
    return std::max<std::uint64_t>(1, (ms + tick_ms - 1) / tick_ms);
}

}  // namespace

Node::Node(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log)
    : io_(io),
      config_(config),
      self_(self),
      me_(*config.node(self)),
      log_(log),
      server_(io, config, self, log, *this),
      detector_(config.shard_peers(self),
                ms_to_ticks(config.cluster().suspect_after_ms, config.cluster().tick_ms)),
      tick_timer_(io),
      heartbeat_ticks_(ms_to_ticks(config.cluster().heartbeat_ms, config.cluster().tick_ms)) {}

void Node::start() {
    server_.start();
    const auto& c = config_.cluster();
    const auto local = boost::asio::ip::make_address(me_.address.host);
    for (NodeId peer : config_.shard_peers(self_)) {
        const auto& addr = config_.node(peer)->address;
        transport::PeerLinkParams p{
            .self = self_,
            .peer = peer,
            .cluster_name = c.name,
            .local = transport::tcp::endpoint(local, 0),
            .remote = transport::tcp::endpoint(boost::asio::ip::make_address(addr.host), addr.port),
            .limits = {c.limits.frame_bytes_max, c.limits.peer_queue_frames_max},
            .reconnect_min_ms = c.limits.reconnect_min_ms,
            .reconnect_max_ms = c.limits.reconnect_max_ms,
            .seed = self_.value * 1000003 + peer.value,
        };
        auto link = std::make_shared<transport::PeerLink>(io_, std::move(p), log_);
        link->start();
        links_.emplace(peer, std::move(link));
    }
    log_.info("started").kv("shard", me_.shard).kv("peers", links_.size()).kv("election",
                                                                            config::to_string(c.election));
    next_tick_ = std::chrono::steady_clock::now();
    schedule_tick();
}

void Node::stop() {
    if (stopped_) return;
    stopped_ = true;
    tick_timer_.cancel();
    server_.stop();
    for (auto& [id, link] : links_) link->stop();
    log_.info("stopped");
}

// Ticks are scheduled against absolute deadlines so that a slow turn does
// not stretch every later timeout.
void Node::schedule_tick() {
    next_tick_ += std::chrono::milliseconds(config_.cluster().tick_ms);
    tick_timer_.expires_at(next_tick_);
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        on_tick();
        schedule_tick();
    });
}

void Node::on_tick() {
    ++ticks_;
    log_detector_events(detector_.tick());
    if (ticks_ % heartbeat_ticks_ == 0) send_heartbeats();
}

void Node::send_heartbeats() {
    const election::Heartbeat hb{Epoch{0}, kNoNode, LogIndex{0}};
    auto frame = transport::encode_frame(hb, config_.cluster().limits.frame_bytes_max);
    auto shared = std::make_shared<const transport::Bytes>(std::move(*frame));
    for (auto& [id, link] : links_) link->send_frame(shared);
}

void Node::log_detector_events(const std::vector<election::DetectorEvent>& events) {
    for (const auto& e : events) {
        if (e.kind == election::DetectorEvent::Kind::suspect) {
            log_.warn("suspect").kv("peer", e.peer);
        } else {
            log_.info("recover").kv("peer", e.peer);
        }
    }
}

void Node::on_peer_message(NodeId from, Message&& m) {
    log_detector_events(detector_.heard(from));
    (void)m;
}

transport::StatusReply Node::status(std::uint64_t request_id) const {
    transport::StatusReply r;
    r.request_id = request_id;
    r.node = self_;
    r.shard = me_.shard;
    r.role = transport::NodeRole::follower;
    for (const auto& h : detector_.health()) {
        r.peers.push_back({h.id, h.suspected, h.last_heard_ticks * config_.cluster().tick_ms});
    }
    return r;
}

void Node::on_client_message(const std::shared_ptr<Connection>& session, Message&& m) {
    std::visit(
        [&](auto&& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, transport::PingRequest>) {
                session->send(transport::PingReply{msg.request_id, kNoNode});
            } else if constexpr (std::is_same_v<T, transport::StatusRequest>) {
                session->send(status(msg.request_id));
            } else {
                session->send(transport::ErrorReply{0, "bad_request",
                                                    "message type " + std::to_string(T::kWireType) +
                                                        " is not a client request",
                                                    kNoNode});
            }
        },
        std::move(m));
}

}  // namespace rl::node
