#include "node/node.hpp"

#include "config/overload.hpp"

#include <random>
#include <type_traits>

namespace rl::node {
namespace {

std::uint64_t ms_to_ticks(std::uint64_t ms, std::uint32_t tick_ms) {
    return std::max<std::uint64_t>(1, (ms + tick_ms - 1) / tick_ms);
}

template <class T, class V>
constexpr bool in = transport::is_alternative_v<T, V>;

}  // namespace

Node::Node(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log)
    : io_(io),
      config_(config),
      self_(self),
      me_(*config.node(self)),
      log_(log),
      server_(io, config, self, log, *this),
      tick_timer_(io) {}

txn::ReplicaParams Node::replica_params() const {
    const auto& c = config_.cluster();
    const auto ticks = [&](std::uint64_t ms) { return ms_to_ticks(ms, c.tick_ms); };
    txn::ReplicaParams p;
    p.election.self = self_;
    p.election.members = config_.shard(me_.shard)->nodes;
    p.election.algorithm = c.election;
    p.election.timing = {ticks(c.heartbeat_ms), ticks(c.suspect_after_ms), ticks(c.election_timeout_ms)};
    p.election.seed = std::random_device{}();  // jitter only: nodes must not retry in lockstep
    p.log.heartbeat_ticks = ticks(c.heartbeat_ms);
    // A batch of entries must fit in one frame: a transfer entry encodes
    // to well under 128 bytes.
    p.log.append_entries_max = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(c.limits.frame_bytes_max / 128, 1, 1024));
    p.log.retransmit_ticks = ticks(c.suspect_after_ms);
    p.log.adopt_timeout_ticks = 2 * ticks(c.election_timeout_ms);
    // A client hears back well within its own (default 5 s) timeout, and
    // can retry through a failover.
    p.op_timeout_ticks = ticks(std::max<std::uint64_t>(1000, 2 * (c.suspect_after_ms + c.election_timeout_ms)));
    p.pending_ops_max = std::size_t{c.limits.client_connections_max} * c.limits.client_inflight_max;
    p.snapshot_after_entries = c.limits.snapshot_after_entries;
    p.forward_id_base = (std::uint64_t{std::random_device{}()} << 32) | 1;
    p.dedup = txn::DedupLimits{c.limits.dedup_window, c.limits.dedup_clients_max};
    return p;
}

void Node::open_wal() {
    txn::Recovered rec;
    const auto dir = config_.node_dir(self_);
    wal_.emplace(txn::Wal::open(dir, config_.cluster().fsync, txn::WalLimits{}, rec));
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
    replica_ = std::make_unique<txn::Replica>(replica_params(), *config_.shard(me_.shard),
                                              config_.cluster().initial_balance, std::move(state));
}

void Node::start() {
    open_wal();
    server_.start();
    for (NodeId peer : config_.shard_peers(self_)) link(peer);
    const auto& c = config_.cluster();
    log_.info("started").kv("shard", me_.shard).kv("peers", links_.size()).kv("election",
                                                                            config::to_string(c.election));
    next_tick_ = std::chrono::steady_clock::now();
    schedule_tick();
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
    transport::PeerLinkParams p{
        .self = self_,
        .peer = peer,
        .cluster_name = c.name,
        .local = transport::tcp::endpoint(boost::asio::ip::make_address(me_.address.host), 0),
        .remote = transport::tcp::endpoint(boost::asio::ip::make_address(addr.host), addr.port),
        .limits = {c.limits.frame_bytes_max, c.limits.peer_queue_frames_max},
        .reconnect_ms_min = c.limits.reconnect_ms_min,
        .reconnect_ms_max = c.limits.reconnect_ms_max,
        .seed = self_.value * 1000003 + peer.value,
    };
    auto l = std::make_shared<transport::PeerLink>(io_, std::move(p), log_);
    l->start();
    return *links_.emplace(peer, std::move(l)).first->second;
}

// Ticks run against absolute deadlines so a slow turn does not stretch
// every later timeout.
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
    replica_->tick();
    schedule_flush();
}

// Group commit: every input of this turn lands in the replica first; one
// posted flush then persists all of it with a single WAL sync.
void Node::schedule_flush() {
    if (flush_scheduled_ || stopped_) return;
    flush_scheduled_ = true;
    boost::asio::post(io_, [this] { flush(); });
}

void Node::flush() {
    flush_scheduled_ = false;
    // persisted() can commit, and committing can answer or send more: a few
    // rounds drain it; anything left waits for the next turn.
    for (int round = 0; round < 4; ++round) {
        auto out = replica_->take_output();
        const bool durable = persist(out);
        if (durable) {
            replica_->persisted(wal_->last_index());
            send_all(out);
        } else {
            stats_.dropped_sends += out.election_messages.size() + out.txn_messages.size();
        }
        deliver_replies(out);
        log_events(out);
        if (out.election_messages.empty() && out.txn_messages.empty() && out.replies.empty() && durable) break;
    }
}

// Persist before send (docs/design.md section 9, habit 1): a promise, an acknowledgement or
// a commit never leaves before what it vouches for is on disk. The WAL
// operations wait in order in backlog_ until each succeeds, so a disk error
// halfway (an install whose snapshot could not be written, say) is retried
// from exactly where it stopped, never skipped.
bool Node::persist(txn::ReplicaOutput& out) {
    if (out.durable) backlog_.emplace_back(*out.durable);
    if (out.truncate_after) backlog_.emplace_back(TruncateOp{*out.truncate_after});
    if (out.install) backlog_.emplace_back(InstallOp{std::move(*out.install)});
    for (auto& e : out.appended) backlog_.emplace_back(std::move(e));
    if (out.compact) backlog_.emplace_back(CompactOp{std::move(*out.compact)});
    try {
        while (!backlog_.empty()) {
            apply_to_wal(backlog_.front());
            backlog_.pop_front();
        }
        if (wal_->dirty()) wal_->sync();
        return true;
    } catch (const txn::WalIoError& e) {
        // A full disk fails every turn: say so once a second, with a count.
        ++stats_.wal_io_errors;
        const auto now = std::chrono::steady_clock::now();
        if (now - wal_error_logged_ >= std::chrono::seconds(1)) {
            wal_error_logged_ = now;
            log_.error("wal_io_error")
                .kv("error", e.what())
                .kv("errors_so_far", stats_.wal_io_errors)
                .kv("sends_dropped_so_far", stats_.dropped_sends);
        }
        return false;
    }
}

void Node::apply_to_wal(const WalOp& op) {
    std::visit(Overload{
                   [&](const election::Durable& d) { wal_->save_durable(d); },
                   [&](const TruncateOp& t) { wal_->truncate_after(t.after); },
                   [&](const InstallOp& i) { wal_->install_snapshot(i.snapshot); },
                   [&](const txn::LogEntry& e) { wal_->append(e); },
                   [&](const CompactOp& c) {
                       wal_->compact(c.snapshot);
                       log_.info("wal_compacted").kv("through", c.snapshot.last_index);
                   },
               },
               op);
}

void Node::send_all(txn::ReplicaOutput& out) {
    for (auto& m : out.election_messages) {
        std::visit([&](auto& msg) { link(m.to).send(transport::Message{std::move(msg)}); }, m.msg);
    }
    for (auto& m : out.txn_messages) {
        std::visit([&](auto& msg) { link(m.to).send(transport::Message{std::move(msg)}); }, m.msg);
    }
}

}  // namespace rl::node
