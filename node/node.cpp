#include "node/node.hpp"

#include "config/overload.hpp"

#include <random>
#include <type_traits>

namespace rl::node {

Node::Node(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log)
    : io_(io),
      config_(config),
      self_(self),
      me_(*config.node(self)),
      log_(log),
      server_(io, config, self, log, *this),
      background_sync_(io),
      tick_timer_(io) {}

void Node::open_wal() {
    txn::Recovered rec;
    const auto dir = config_.node_dir(self_);
    // One fdatasync in 4 MiB of log writes a new file size; the others the
    // data alone (docs/design.md section 6.2).
    wal_.emplace(txn::Wal::open(dir, config_.cluster().fsync, txn::kNodeWalLimits, rec));
    if (rec.torn_bytes_dropped > 0) {
        log_.warn("wal_torn_tail").kv("file", rec.torn_file).kv("bytes", rec.torn_bytes_dropped).kv("reason",
                                                                                                  rec.torn_reason);
    }
    log_.info("wal_opened")
        .kv("dir", dir.string())
        .kv("epoch", rec.durable.epoch)
        .kv("promised", rec.durable.promised)
        .kv("snapshot", rec.snapshot ? rec.snapshot->last_index.value : 0)
        .kv("entries", rec.entries.size());
    txn::RecoveredState state{rec.durable, std::move(rec.snapshot), std::move(rec.entries)};
    // A fresh seed per start: election jitter, and forward ids that never
    // repeat across restarts.
    const std::uint64_t seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
    replica_ = std::make_unique<txn::Replica>(txn::replica_params(config_, self_, seed), std::move(state));
    shell_ = std::make_unique<txn::Shell>(*replica_, *wal_, config_.cluster().limits.wal_backlog_bytes_max, *this);
    tick_origin_ = std::chrono::steady_clock::now();
    early_ticks_logged_ = 0;
    ++shell_generation_;
}

void Node::start() {
    open_wal();
    server_.start();
    for (NodeId peer : config_.shard_peers(self_)) link(peer);
    const auto& c = config_.cluster();
    if (!background_sync_.unavailable().empty() && c.fsync == config::FsyncMode::always) {
        log_.warn("wal_sync_in_thread").kv("reason", background_sync_.unavailable());
    }
    log_.info("started").kv("shard", me_.shard).kv("peers", links_.size()).kv("election",
                                                                            config::to_string(c.election));
    schedule_flush();
}

void Node::stop() {
    if (stopped_) return;
    stopped_ = true;
    tick_timer_.cancel();
    server_.stop();
    for (auto& [id, l] : links_) l->stop();
    log_.info("stopped");
}

// Links are made on first use: shard peers at start, nodes of other shards
// when a request is forwarded there.
transport::PeerLink& Node::link(NodeId peer) {
    auto it = links_.find(peer);
    if (it != links_.end()) return *it->second;
    const auto& c = config_.cluster();
    const auto& addr = config_.node(peer)->address;
    // Posted: the link reports from inside its own handlers.
    const auto report = [this](void (txn::Shell::*to_shell)(NodeId)) {
        return [this, to_shell](NodeId who) {
            boost::asio::post(io_, [this, who, to_shell] {
                if (stopped_ || failed_) return;
                catch_up();
                ((*shell_).*to_shell)(who);
                schedule_flush();
            });
        };
    };
    transport::PeerLinkParams p{
        .self = self_,
        .peer = peer,
        .cluster_name = c.name,
        .local = transport::tcp::endpoint(boost::asio::ip::make_address(me_.address.host), 0),
        .remote = transport::tcp::endpoint(boost::asio::ip::make_address(addr.host), addr.port),
        .limits = {c.limits.frame_bytes_max, c.limits.peer_queue_frames_max, c.limits.peer_queue_bytes_max},
        .reconnect_ms_min = c.limits.reconnect_ms_min,
        .reconnect_ms_max = c.limits.reconnect_ms_max,
        .seed = self_.value * 1000003 + peer.value,
        .on_unreachable = report(&txn::Shell::peer_unreachable),
        // A crashed peer on a live host: suspected at once (docs/design.md section 5).
        .on_refused = report(&txn::Shell::peer_refused),
    };
    auto l = std::make_shared<transport::PeerLink>(io_, std::move(p), log_);
    // A turn that was already queued when stop() ran may still send: its
    // link must not start dialing, or the io_context never runs out of work.
    if (!stopped_) l->start();
    return *links_.emplace(peer, std::move(l)).first->second;
}

// A peer that dials us is up, so our link to it need not wait out its
// backoff (docs/design.md section 1). Only a link already made redials.
void Node::on_peer_accepted(NodeId peer) {
    if (failed_) return;
    if (auto it = links_.find(peer); it != links_.end()) it->second->redial_now();
}

std::uint64_t Node::ticks_now() const {
    return static_cast<std::uint64_t>((std::chrono::steady_clock::now() - tick_origin_) /
                                      std::chrono::milliseconds(config_.cluster().tick_ms));
}

void Node::catch_up() {
    shell_->advance_to(ticks_now());
    // The node slept through a tick that acted: a heartbeat or a timeout
    // went out late. The simulator rules this out; say so should it happen.
    const std::uint64_t early = shell_->stats().early_ticks;
    if (early > early_ticks_logged_) {
        log_.warn("tick_slept_through").kv("so_far", early);
        early_ticks_logged_ = early;
    }
}

// Called after every turn: what the turn did may move the next tick that
// acts (closer: a client waiting; further: a heartbeat answered), and the
// timer follows it either way, so the node never wakes for nothing. Ticks
// run against absolute deadlines, so a slow turn does not stretch later
// timeouts. An idle node wakes for heartbeats and suspicions only, not
// every tick_ms.
void Node::arm_tick() {
    if (stopped_) return;  // a turn queued before stop() must not leave a wait behind
    constexpr std::uint64_t kLongestSleepTicks = 1000;  // a bound, should a core report nothing due
    const std::uint64_t next = std::min(shell_->next_tick(), shell_->ticks() + kLongestSleepTicks);
    const auto at = tick_origin_ + std::chrono::milliseconds(config_.cluster().tick_ms) * next;
    if (tick_armed_ && tick_at_ == at) return;
    tick_armed_ = true;
    tick_at_ = at;
    tick_timer_.expires_at(at);  // cancels the wait armed before
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        tick_armed_ = false;
        schedule_flush();  // the flush delivers the ticks due, then re-arms
    });
}

// Group commit: every input of this turn lands in the replica first; one
// posted flush then persists all of it with a single WAL sync.
void Node::schedule_flush() {
    if (flush_scheduled_ || stopped_ || failed_) return;
    flush_scheduled_ = true;
    boost::asio::post(io_, [this] { flush(); });
}

void Node::flush() {
    flush_scheduled_ = false;
    if (failed_) return;  // a failed node's timers do nothing
    catch_up();
    shell_->flush();
    arm_tick();
}

// A full disk fails every turn: say so once a second, with a count.
void Node::wal_failed(const txn::WalIoError& e, const txn::ShellStats& stats) {
    const auto now = std::chrono::steady_clock::now();
    if (now - wal_error_logged_ < std::chrono::seconds(1)) return;
    wal_error_logged_ = now;
    log_.error("wal_io_error")
        .kv("error", e.what())
        .kv("errors_so_far", stats.wal_io_errors)
        .kv("sends_dropped_so_far", stats.dropped_sends)
        .kv("backlog_bytes", shell_->backlog_bytes());
}

// A leader's fdatasync runs in the background: its turn goes on serving
// clients meanwhile and finishes the sync when io_uring reports it. A
// follower has nothing else to do in the meantime, so it syncs on its own
// thread and spares the two context switches of a background sync (the
// kernel's worker, then the eventfd); measured on 2 cores, that is about a
// third more committed transfers per second (docs/design.md section 6.6).
std::optional<std::error_code> Node::start_sync(txn::StorageFile& file) {
    if (replica_->role() != election::RoleKind::leader) return file.sync_data();
    const std::uint64_t generation = shell_generation_;
    const bool started = background_sync_.start(file.native_handle(), [this, generation](std::error_code ec) {
        if (stopped_ || failed_ || generation != shell_generation_) return;
        catch_up();
        shell_->sync_done(ec);
        arm_tick();
    });
    if (started) return std::nullopt;
    return file.sync_data();
}

// ---- fault switches (docs/design.md section 6.8) ----

// As a crashed process: what it had in hand is never answered, and it
// keeps its disk. The replica is neither stepped nor ticked from now on.
void Node::fail_node() {
    failed_ = true;
    log_.warn("fault_failed").kv("dropped_requests", pending_.size());
    pending_.clear();
    batches_.clear();
    inflight_.clear();
}

// As a restart: the replica is rebuilt from the WAL (what a crash would
// keep), so the election's rejoin rules apply: it listens one suspect
// timeout before it may stand and does not depose a live leader.
std::optional<std::string> Node::recover_node() {
    shell_.reset();
    replica_.reset();
    wal_.reset();
    try {
        open_wal();
    } catch (const std::exception& e) {
        log_.error("fault_recover_failed").kv("error", e.what());
        return std::string("recover failed, the node stays failed: ") + e.what();
    }
    failed_ = false;
    log_.info("fault_recovered").kv("epoch", replica_->epoch()).kv("applied_index", replica_->applied_index());
    schedule_flush();
    return std::nullopt;
}

void Node::send(NodeId to, const election::ElectionMessage& m) {
    std::visit([&](const auto& msg) { link(to).send(transport::Message{msg}); }, m);
}

void Node::send(NodeId to, const txn::TxnMessage& m) {
    std::visit([&](const auto& msg) { link(to).send(transport::Message{msg}); }, m);
}

}  // namespace rl::node
