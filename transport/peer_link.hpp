// The outbound half of a peer pair: this node dials the peer from its own
// configured address (so iptables rules on addresses cut exactly that pair),
// says Hello, then streams frames. It redials with exponential backoff and
// jitter forever, or at once when told the peer is back (redial_now); the
// first redial after a connection that was up drops goes out at once, so a
// crashed peer's refusal is seen within a round trip. While
// it dials, the newest few messages wait (so the first message to a node it
// has never talked to is not lost); beyond that, while down after a failure,
// and past the connection's queue bounds, messages are dropped and counted:
// everything sent to peers is periodic or retried by the core that sent it.
#pragma once

#include "transport/connection.hpp"
#include "transport/log.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>

namespace rl::transport {

struct PeerLinkParams {
    NodeId self;
    NodeId peer;
    std::string cluster_name;
    tcp::endpoint local;   // bound before connect (port 0)
    tcp::endpoint remote;
    ConnectionLimits limits;
    std::uint32_t reconnect_ms_min = 20;
    std::uint32_t reconnect_ms_max = 1000;
    std::uint64_t seed = 0;
    // Called when a dial fails (refused, unreachable) or an established
    // connection drops: the node's core sends what waited on this peer
    // elsewhere at once (docs/design.md section 6.5). May be empty.
    std::function<void(NodeId)> on_unreachable;
    // Called when a redial after an established connection dropped is
    // refused (ECONNREFUSED): the peer's process is gone while its host is
    // up, so the node suspects it at once (docs/design.md section 5, "Fast
    // crash detection"). A dial refused before the link was ever up (a peer
    // still starting) does not count. May be empty.
    std::function<void(NodeId)> on_refused;
};

inline constexpr std::size_t kPeerLinkWaitingMax = 64;            // frames held while dialing
inline constexpr std::size_t kPeerLinkWaitingBytesMax = 1 << 20;  // and their bytes

struct PeerLinkStats {
    std::uint64_t connects = 0;
    std::uint64_t dial_failures = 0;  // dials that failed, each followed by a backoff
    std::uint64_t dropped = 0;        // messages not sent: link down or queue full
    std::uint64_t queue_full = 0;     // of those, refused by a full connection queue
    std::uint64_t redials = 0;        // backoffs cut short by redial_now
    std::uint64_t refused_after_drop = 0;  // redials after a drop that the peer's host refused
};

class PeerLink : public std::enable_shared_from_this<PeerLink> {
public:
    PeerLink(boost::asio::io_context& io, PeerLinkParams params, Logger& log);

    void start();
    void stop();
    // The peer is evidently up (it just dialed us): if this link is down
    // and waiting out its backoff, dial now. True if it did.
    bool redial_now();
    // Queues for the peer; false (and counted) when down or full.
    bool send(const Message& m);
    bool send_frame(std::shared_ptr<const Bytes> frame);
    bool connected() const { return conn_ && conn_->open(); }
    const PeerLinkStats& stats() const { return stats_; }
    NodeId peer() const { return params_.peer; }

private:
    void dial();
    void on_connected(tcp::socket socket);
    void on_lost(const std::string& reason, const std::string& detail);
    void on_queue_full(const QueueFull& full);
    void schedule_redial();

    boost::asio::io_context& io_;
    PeerLinkParams params_;
    Logger& log_;
    boost::asio::steady_timer timer_;
    std::mt19937_64 rng_;
    std::shared_ptr<Connection> conn_;
    std::shared_ptr<tcp::socket> dialing_;
    std::deque<std::shared_ptr<const Bytes>> waiting_;  // queued before the connection is up
    std::size_t waiting_bytes_ = 0;
    std::uint32_t failures_ = 0;
    bool redial_pending_ = false;          // timer_ is waiting out a backoff
    std::uint64_t redial_generation_ = 0;  // a timer wait of an older generation does nothing
    bool stopped_ = false;
    bool was_up_ = false;
    bool dropped_ = false;  // the connection that was up dropped, and no dial has succeeded since
    std::chrono::steady_clock::time_point up_since_;
    PeerLinkStats stats_;
};

}  // namespace rl::transport
