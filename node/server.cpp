#include "node/server.hpp"

#include "transport/frame.hpp"

namespace rl::node {

using transport::Hello;
using transport::Refuse;
using transport::Role;

// One accepted connection. Its kind is decided once, by the Hello; the
// connection keeps one set of handlers for life and they route by kind.
struct Server::Session {
    enum class Kind { handshaking, peer, client, refused };
    std::shared_ptr<Connection> conn;
    boost::asio::steady_timer deadline;
    Kind kind = Kind::handshaking;
    NodeId peer;
    std::string remote;
    Session(std::shared_ptr<Connection> c, boost::asio::io_context& io)
        : conn(std::move(c)), deadline(io), remote(conn->remote()) {}
};

Server::Server(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log,
               ServerHandler& handler)
    : io_(io), config_(config), self_(self), log_(log), handler_(handler), acceptor_(io) {}

// Only client sessions are written to in bulk (an inbound peer connection
// carries nothing back but a Refuse), so every accepted connection gets the
// client queue bounds.
transport::ConnectionLimits Server::limits() const {
    const auto& l = config_.cluster().limits;
    return {l.frame_bytes_max, l.peer_queue_frames_max, l.client_queue_bytes_max};
}

void Server::start() {
    const auto& addr = config_.node(self_)->address;
    tcp::endpoint ep(boost::asio::ip::make_address(addr.host), addr.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    log_.info("listening").kv("address", addr.to_string());
    accept_next();
}

void Server::stop() {
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& s : std::set(sessions_)) s->conn->close("closed");
}

void Server::accept_next() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
        if (stopped_) return;
        if (!ec) {
            on_accept(std::move(socket));
        } else {
            log_.warn("accept_failed").kv("error", ec.message());
        }
        accept_next();
    });
}

void Server::on_accept(tcp::socket socket) {
    ++stats_.accepted;
    auto session = std::make_shared<Session>(std::make_shared<Connection>(std::move(socket), limits()), io_);
    sessions_.insert(session);
    std::weak_ptr<Session> weak = session;
    // A connection that never says Hello must not hold a slot forever.
    session->deadline.expires_after(std::chrono::milliseconds(config_.cluster().limits.handshake_timeout_ms));
    session->deadline.async_wait([weak](const boost::system::error_code& ec) {
        auto s = weak.lock();
        if (ec || !s || s->kind != Session::Kind::handshaking) return;
        s->conn->close("handshake_timeout", "no hello in time");
    });
    session->conn->start(Connection::Handlers{
        .on_message =
            [this, weak](Message&& m) {
                if (auto s = weak.lock()) on_message(*s, std::move(m));
            },
        .on_close =
            [this, weak](const std::string& reason, const std::string& detail) {
                if (auto s = weak.lock()) on_closed(s, reason, detail);
            },
        .on_queue_full =
            [this, weak](const transport::QueueFull& full) {
                if (auto s = weak.lock()) on_queue_full(*s, full);
            },
    });
}

void Server::on_message(Session& s, Message&& m) {
    switch (s.kind) {
        case Session::Kind::handshaking: return on_hello(s, std::move(m));
        case Session::Kind::peer: return handler_.on_peer_message(s.peer, std::move(m));
        case Session::Kind::client: return handler_.on_client_message(s.conn, std::move(m));
        case Session::Kind::refused: return;  // Already told why; the close is on its way.
    }
}

void Server::on_hello(Session& s, Message&& m) {
    const auto* hello = std::get_if<Hello>(&m);
    if (hello == nullptr) return refuse(s, "first frame must be hello");
    if (hello->version != transport::kProtocolVersion) {
        return refuse(s, "protocol version " + std::to_string(hello->version) + " not supported, want " +
                             std::to_string(transport::kProtocolVersion));
    }
    const bool is_client = hello->role == Role::client;
    if (hello->cluster_name != config_.cluster().name && !(is_client && hello->cluster_name.empty())) {
        return refuse(s, "cluster \"" + hello->cluster_name + "\" is not \"" + config_.cluster().name + "\"");
    }
    if (hello->role == Role::peer) {
        if (config_.node(hello->node_id) == nullptr || hello->node_id == self_) {
            return refuse(s, "node " + std::to_string(hello->node_id.value) + " is not a peer in this cluster");
        }
        return accept_peer(s, hello->node_id);
    }
    if (!is_client) return refuse(s, "unknown role");
    accept_client(s);
}

// Inbound peer connections are bounded like client ones (docs/design.md
// section 3): a node that dials again and again, or anyone who knows the
// cluster's name, cannot pile up sessions. Refusing closes only this one.
void Server::accept_peer(Session& s, NodeId peer) {
    const auto max = config_.cluster().limits.peer_connections_max;
    if (peers_ >= max) {
        ++stats_.peers_refused;
        return refuse(s, "too many peer connections (" + std::to_string(max) + ")");
    }
    s.kind = Session::Kind::peer;
    s.peer = peer;
    ++peers_;
    s.deadline.cancel();
    log_.info("peer_accepted").kv("peer", s.peer).kv("remote", s.remote).kv("peers", peers_);
    handler_.on_peer_accepted(peer);
}

void Server::accept_client(Session& s) {
    if (clients_ >= config_.cluster().limits.client_connections_max) return refuse(s, "too many clients");
    s.kind = Session::Kind::client;
    ++clients_;
    s.deadline.cancel();
    s.conn->send(Hello{Role::peer, self_, config_.cluster().name, transport::kProtocolVersion});
}

// A client that does not read its replies fills its queue; what does not
// fit is dropped (the client times out on it), counted, and logged once per
// episode.
void Server::on_queue_full(const Session& s, const transport::QueueFull& full) {
    ++stats_.client_frames_dropped;
    if (!full.first) return;
    auto line = log_.warn("client_queue_full");
    full.describe(line.kv("remote", s.remote));
}

void Server::refuse(Session& s, const std::string& reason) {
    ++stats_.refused;
    s.kind = Session::Kind::refused;
    log_.warn("connection_refused").kv("remote", s.remote).kv("reason", reason);
    s.conn->send(Refuse{reason});
    s.conn->close_after_flush("refused", reason);
}

void Server::on_closed(const std::shared_ptr<Session>& s, const std::string& reason, const std::string& detail) {
    if (s->kind == Session::Kind::client) --clients_;
    if (s->kind == Session::Kind::peer) {
        --peers_;
        if (!stopped_) log_.info("peer_closed").kv("peer", s->peer).kv("reason", reason).kv("peers", peers_);
    }
    s->deadline.cancel();
    sessions_.erase(s);
    if (reason == "eof" || reason == "closed" || reason == "refused") return;
    if (reason != "io_error" && reason != "handshake_timeout") ++stats_.bad_frames;
    const std::string who = s->kind == Session::Kind::peer ? "node-" + std::to_string(s->peer.value) : s->remote;
    log_.warn("connection_closed").kv("remote", who).kv("reason", reason).kv("detail", detail);
}

}  // namespace rl::node
