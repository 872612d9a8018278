// Accepts TCP connections, runs the Hello handshake and sorts each connection
// into a peer (inbound half of a peer pair: read-only) or a client session
// (requests in, replies out), each kind counted and bounded by its
// *_connections_max. Everything after the handshake goes to the
// ServerHandler; the server itself knows nothing of elections or ledgers.
#pragma once

#include "config/config.hpp"
#include "transport/connection.hpp"
#include "transport/log.hpp"

#include <boost/asio.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <set>

namespace rl::node {

using transport::Connection;
using transport::Message;
using transport::tcp;

struct ServerStats {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;                // bad hello, wrong cluster, too many clients or peers
    std::uint64_t peers_refused = 0;          // of those, past peer_connections_max
    std::uint64_t bad_frames = 0;             // connections closed for a malformed frame
    std::uint64_t client_frames_dropped = 0;  // replies refused by a full client queue
};

class ServerHandler {
public:
    virtual ~ServerHandler() = default;
    // A peer said Hello as `peer`: it is up, whatever our own link to it
    // believes.
    virtual void on_peer_accepted(NodeId peer) = 0;
    // Any message from a peer that said Hello as `from`.
    virtual void on_peer_message(NodeId from, Message&& m) = 0;
    // A request from a client; reply through `session` (it may be closed by
    // the time a reply is ready: then send() just returns false).
    virtual void on_client_message(const std::shared_ptr<Connection>& session, Message&& m) = 0;
};

class Server {
public:
    Server(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log,
           ServerHandler& handler);

    // Binds and listens on the node's configured address; throws
    // boost::system::system_error when it cannot.
    void start();
    void stop();
    const ServerStats& stats() const { return stats_; }

private:
    struct Session;
    void accept_next();
    void on_accept(tcp::socket socket);
    void on_message(Session& s, Message&& m);
    void on_hello(Session& s, Message&& m);
    void accept_peer(Session& s, NodeId peer);
    void accept_client(Session& s);
    void on_queue_full(const Session& s, const transport::QueueFull& full);
    void on_closed(const std::shared_ptr<Session>& s, const std::string& reason, const std::string& detail);
    void refuse(Session& s, const std::string& reason);
    transport::ConnectionLimits limits() const;

    boost::asio::io_context& io_;
    const config::Config& config_;
    NodeId self_;
    Logger& log_;
    ServerHandler& handler_;
    tcp::acceptor acceptor_;
    std::set<std::shared_ptr<Session>> sessions_;
    std::size_t clients_ = 0;  // sessions that said Hello as a client
    std::size_t peers_ = 0;    // and as a peer
    bool stopped_ = false;
    ServerStats stats_;
};

}  // namespace rl::node
