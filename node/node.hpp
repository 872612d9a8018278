// The rlnode daemon's wiring: one io_context, one tick timer, the server for
// inbound connections, one PeerLink per peer, and the cores that decide.
// The node owns all I/O; cores only take messages and ticks.
#pragma once

#include "config/config.hpp"
#include "election/failure_detector.hpp"
#include "node/server.hpp"
#include "transport/log.hpp"
#include "transport/peer_link.hpp"

#include <boost/asio.hpp>

#include <map>
#include <memory>

namespace rl::node {

class Node : public ServerHandler {
public:
    Node(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log);

    // Listens and dials peers; throws boost::system::system_error if the
    // node's address cannot be bound.
    void start();
    // Closes every socket and timer so that io_context::run() returns.
    void stop();

    void on_peer_message(NodeId from, Message&& m) override;
    void on_client_message(const std::shared_ptr<Connection>& session, Message&& m) override;

private:
    void schedule_tick();
    void on_tick();
    void send_heartbeats();
    void log_detector_events(const std::vector<election::DetectorEvent>& events);
    transport::StatusReply status(std::uint64_t request_id) const;

    boost::asio::io_context& io_;
    const config::Config& config_;
    NodeId self_;
    const config::NodeConfig& me_;
    Logger& log_;
    Server server_;
    std::map<NodeId, std::shared_ptr<transport::PeerLink>> links_;
    election::FailureDetector detector_;
    boost::asio::steady_timer tick_timer_;
    std::chrono::steady_clock::time_point next_tick_;
    std::uint64_t ticks_ = 0;
    std::uint64_t heartbeat_ticks_;
    bool stopped_ = false;
};

}  // namespace rl::node
