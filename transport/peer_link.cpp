#include "transport/peer_link.hpp"

#include "config/random.hpp"

#include <algorithm>

namespace rl::transport {

PeerLink::PeerLink(boost::asio::io_context& io, PeerLinkParams params, Logger& log)
    : io_(io), params_(std::move(params)), log_(log), timer_(io), rng_(params_.seed) {}

void PeerLink::start() { dial(); }

void PeerLink::stop() {
    stopped_ = true;
    redial_pending_ = false;
    timer_.cancel();
    if (dialing_) {
        boost::system::error_code ignored;
        dialing_->close(ignored);
    }
    if (conn_) conn_->close("closed");
}

void PeerLink::dial() {
    if (stopped_) return;
    auto socket = std::make_shared<tcp::socket>(io_);
    boost::system::error_code ec;
    socket->open(params_.remote.protocol(), ec);
    if (!ec) socket->set_option(tcp::socket::reuse_address(true), ec);
    if (!ec) socket->bind(params_.local, ec);
    if (ec) {
        log_.warn("peer_bind_failed").kv("peer", params_.peer).kv("local", params_.local).kv("error", ec.message());
        ++stats_.dial_failures;
        schedule_redial();
        return;
    }
    dialing_ = socket;
    socket->async_connect(params_.remote, [self = shared_from_this(), socket](const boost::system::error_code& e) {
        self->dialing_.reset();
        if (self->stopped_) return;
        if (e) {
            ++self->stats_.dial_failures;
            if (e == boost::asio::error::connection_refused && self->dropped_) {
                ++self->stats_.refused_after_drop;
                if (self->params_.on_refused) self->params_.on_refused(self->params_.peer);
            }
            self->on_lost("connect_failed", e.message());
            return;
        }
        self->on_connected(std::move(*socket));
    });
}

void PeerLink::on_connected(tcp::socket socket) {
    conn_ = std::make_shared<Connection>(std::move(socket), params_.limits);
    std::weak_ptr<PeerLink> weak = weak_from_this();
    conn_->start(Connection::Handlers{
        .on_message =
            [weak](Message&& m) {
                // The peer speaks on this connection only to refuse us.
                auto self = weak.lock();
                if (!self) return;
                if (auto* refuse = std::get_if<Refuse>(&m)) {
                    self->log_.warn("peer_refused").kv("peer", self->params_.peer).kv("reason", refuse->reason);
                }
            },
        .on_close = [weak](const std::string& reason,
                           const std::string& detail) {
            if (auto self = weak.lock()) self->on_lost(reason, detail);
        },
        .on_queue_full =
            [weak](const QueueFull& full) {
                if (auto self = weak.lock()) self->on_queue_full(full);
            }});
    conn_->send(Hello{Role::peer, params_.self, params_.cluster_name, kProtocolVersion});
    for (auto& frame : waiting_) {
        if (!conn_->send_frame(std::move(frame))) ++stats_.dropped;
    }
    waiting_.clear();
    waiting_bytes_ = 0;
    ++stats_.connects;
    failures_ = 0;
    was_up_ = true;
    dropped_ = false;
    up_since_ = std::chrono::steady_clock::now();
    log_.info("peer_connected").kv("peer", params_.peer).kv("remote", params_.remote);
}

void PeerLink::on_lost(const std::string& reason, const std::string& detail) {
    if (stopped_) return;
    bool redial_at_once = false;
    if (was_up_) {
        log_.info("peer_disconnected").kv("peer", params_.peer).kv("reason", reason).kv("detail", detail);
        was_up_ = false;
        dropped_ = true;
        // A connection that stayed up a while dropped: dial again at once,
        // so a crashed process's refusal is seen now (docs/design.md section
        // 5, "Fast crash detection"). One that drops as soon as it is up
        // backs off as before, so a peer that keeps closing on us is not
        // dialed in a tight loop.
        redial_at_once =
            std::chrono::steady_clock::now() - up_since_ >= std::chrono::milliseconds(params_.reconnect_ms_min);
    } else if (failures_ == 0) {
        // The first failed dial of a streak: what waited on this peer goes
        // elsewhere now, and the log says why.
        log_.info("peer_unreachable").kv("peer", params_.peer).kv("reason", reason).kv("detail", detail);
    }
    if (params_.on_unreachable) params_.on_unreachable(params_.peer);
    if (redial_at_once) {
        // Posted: this runs inside the connection's own handlers.
        boost::asio::post(io_, [self = shared_from_this()] {
            if (!self->stopped_ && !self->connected() && !self->dialing_ && !self->redial_pending_) self->dial();
        });
        return;
    }
    schedule_redial();
}

// Exponential backoff with full jitter in [delay/2, delay]: peers that lost
// the same node do not redial it in lockstep.
void PeerLink::schedule_redial() {
    if (stopped_) return;
    const std::uint64_t shift = std::min<std::uint32_t>(failures_, 16);
    const std::uint64_t ceiling =
        std::min<std::uint64_t>(params_.reconnect_ms_max, std::uint64_t{params_.reconnect_ms_min} << shift);
    const std::uint64_t jitter = uniform(rng_, ceiling / 2, ceiling);
    ++failures_;
    redial_pending_ = true;
    const std::uint64_t generation = ++redial_generation_;
    timer_.expires_after(std::chrono::milliseconds(jitter));
    timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
        // A wait that already expired cannot be cancelled: the generation
        // tells it that redial_now dialed in its place.
        if (ec || generation != self->redial_generation_) return;
        self->redial_pending_ = false;
        self->dial();
    });
}

// A peer that dials us has restarted or healed (docs/design.md section 1):
// waiting out a backoff of up to reconnect_ms_max would leave our half of
// the pair down that long after it is back. Only a link waiting on its
// timer redials: one that is up or already dialing has nothing to gain.
bool PeerLink::redial_now() {
    if (stopped_ || !redial_pending_) return false;
    redial_pending_ = false;
    ++redial_generation_;
    timer_.cancel();
    ++stats_.redials;
    log_.info("peer_redial").kv("peer", params_.peer).kv("reason", "peer_dialed_us");
    dial();
    return true;
}

void PeerLink::on_queue_full(const QueueFull& full) {
    ++stats_.queue_full;
    if (!full.first) return;
    auto line = log_.warn("peer_queue_full");
    full.describe(line.kv("peer", params_.peer));
}

bool PeerLink::send(const Message& m) {
    auto frame = encode_frame(m, params_.limits.frame_bytes_max);
    if (!frame) {
        ++stats_.dropped;
        return false;
    }
    return send_frame(std::make_shared<const Bytes>(std::move(*frame)));
}

bool PeerLink::send_frame(std::shared_ptr<const Bytes> frame) {
    if (connected()) {
        if (conn_->send_frame(std::move(frame))) return true;
        ++stats_.dropped;
        return false;
    }
    // Not up: keep the newest few for when it is, drop the oldest.
    waiting_bytes_ += frame->size();
    waiting_.push_back(std::move(frame));
    while (waiting_.size() > kPeerLinkWaitingMax || waiting_bytes_ > kPeerLinkWaitingBytesMax) {
        waiting_bytes_ -= waiting_.front()->size();
        waiting_.pop_front();
        ++stats_.dropped;
    }
    return true;
}

}  // namespace rl::transport
