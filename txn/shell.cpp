#include "txn/shell.hpp"

#include "config/check.hpp"
#include "config/overload.hpp"

#include <algorithm>
#include <utility>

namespace rl::txn {
namespace {

// A node that applied nothing for this long compacts its log early
// (Replica::compact_when_idle).
constexpr std::uint64_t kIdleCompactMs = 1000;

std::uint64_t ms_to_ticks(std::uint64_t ms, std::uint32_t tick_ms) {
    return std::max<std::uint64_t>(1, (ms + tick_ms - 1) / tick_ms);
}

}  // namespace

ReplicaParams replica_params(const config::Config& config, NodeId self, std::uint64_t seed) {
    const auto& c = config.cluster();
    const auto& shard = *config.shard(config.node(self)->shard);
    const auto ticks = [&](std::uint64_t ms) { return ms_to_ticks(ms, c.tick_ms); };
    ReplicaParams p;
    p.election.self = self;
    p.election.members = shard.nodes;
    p.election.algorithm = c.election;
    p.election.timing = {ticks(c.heartbeat_ms), ticks(c.suspect_after_ms), ticks(c.election_timeout_ms)};
    p.election.seed = seed;  // jitter only: nodes must not retry in lockstep
    p.log.heartbeat_ticks = ticks(c.heartbeat_ms);
    // A batch of entries must fit in one frame.
    p.log.append_entries_max =
        static_cast<std::uint32_t>(std::clamp<std::uint64_t>(c.limits.frame_bytes_max / kEntryBytes, 1, 1024));
    p.log.retransmit_ticks = ticks(c.suspect_after_ms);
    p.log.adopt_timeout_ticks = 2 * ticks(c.election_timeout_ms);
    // A client hears back well within its own (default 5 s) timeout, and
    // can retry through a failover.
    p.pending.timeout_ticks = ticks(std::max<std::uint64_t>(1000, 2 * (c.suspect_after_ms + c.election_timeout_ms)));
    p.pending.ops_max = std::size_t{c.limits.client_connections_max} * c.limits.client_inflight_max;
    p.snapshot_after_entries = c.limits.snapshot_after_entries;
    p.snapshot_after_bytes = c.limits.snapshot_after_bytes;
    p.idle_compact_ticks = ticks(kIdleCompactMs);
    // Forward ids must not repeat across restarts (see PendingOps).
    p.forward_id_base = (seed << 32) | 1;
    p.genesis = ShardState::genesis_of(shard, c);
    for (const auto& [id, s] : config.shards()) {
        p.shards[id] = s.nodes;
        for (const auto& r : s.items) p.routes.emplace_back(r, id);
    }
    // Two-phase commit: a lost request is resent after about one heartbeat
    // round trip, backing off to the suspect timeout; a participant asks on
    // its own after a failover's worth of time (docs/design.md section 6.7).
    p.cross_retry_ticks = std::max<std::uint64_t>(2, ticks(c.heartbeat_ms));
    p.cross_retry_ticks_max = std::max(p.cross_retry_ticks, ticks(c.suspect_after_ms));
    p.cross_query_after_ticks = ticks(c.suspect_after_ms + c.election_timeout_ms);
    p.tick_ms = c.tick_ms;
    p.fault_injection = c.fault_injection;
    return p;
}

Shell::Shell(Replica& replica, Wal& wal, std::uint64_t wal_backlog_bytes_max, ShellHost& host)
    : replica_(replica), wal_(wal), backlog_bytes_max_(wal_backlog_bytes_max), host_(host) {}

void Shell::step(NodeId from, const election::ElectionMessage& m) { replica_.step(from, m); }

// Log traffic appends, so it waits while the disk cannot keep up; dropping a
// message is always safe (the leader retransmits).
void Shell::step(NodeId from, const TxnMessage& m) {
    const bool log_traffic = !std::holds_alternative<ForwardRequest>(m) && !std::holds_alternative<ForwardReply>(m);
    if (log_traffic && overloaded()) {
        ++stats_.refused_overloaded;
        return;
    }
    replica_.step(from, m);
}

void Shell::advance_to(std::uint64_t ticks) {
    if (ticks <= ticks_) return;
    const std::uint64_t due = next_tick();
    while (ticks_ < ticks) {
        ++ticks_;
        if (replica_.tick() && ticks_ < due) ++stats_.early_ticks;
    }
}

std::uint64_t Shell::next_tick() const {
    const std::uint64_t in = replica_.ticks_until_due();
    const std::uint64_t due = in > UINT64_MAX - ticks_ ? UINT64_MAX : ticks_ + in;
    // Entries a leader left unsynced are synced on the next tick.
    return waiting_since_ ? std::min(due, std::max(*waiting_since_, ticks_) + 1) : due;
}

void Shell::submit(std::uint64_t handle, const ClientOp& op) {
    if (overloaded()) {
        ++stats_.refused_overloaded;
        host_.reply(handle, OpFailed{"unavailable", "this node's disk is failing; try another node", replica_.leader()});
        return;
    }
    replica_.submit(handle, op);
}

void Shell::forward_elsewhere(std::uint64_t handle, ShardId shard, const ClientOp& op) {
    replica_.forward_elsewhere(handle, shard, op);
}

void Shell::peer_unreachable(NodeId node) { replica_.peer_unreachable(node); }

void Shell::peer_refused(NodeId node) { replica_.peer_refused(node); }

std::vector<WalOp> Shell::unsynced() const {
    std::vector<WalOp> out = accepted_;
    out.insert(out.end(), backlog_.begin(), backlog_.end());
    return out;
}

void Shell::flush() {
    for (int round = 0; round < 4; ++round) {
        if (!flush_round()) return;
    }
}

// One round; false when it had nothing to do or the disk failed.
bool Shell::flush_round() {
    ReplicaOutput out = replica_.take_output();
    host_.report(out);
    // Persisting can commit (on a one-node shard, or the last copy a
    // majority waited for), and committing can answer or send more.
    const bool wrote = out.durable || out.truncate_after || out.install || !out.appended.empty() || out.compact;
    // What vouches for nothing on this disk leaves before the sync
    // (docs/design.md section 6.6): requests and answers between shards and
    // forwarded requests and answers (an answer reports applied, hence
    // committed, state); the answers to clients, for the same reason; and
    // a leader's AppendEntries, so its followers write the entries while it
    // does (the leader counts its own copy only once synced).
    // Answers first: a client or a waiting node is on the critical path.
    for (const auto& [handle, result] : out.replies) host_.reply(handle, result);
    const bool sent_early = send_early(out) || !out.replies.empty();
    enqueue_all(out);
    const bool sends = !out.election_messages.empty() || !out.txn_messages.empty();
    if (sends) held_.push_back({enqueued_, std::move(out.election_messages), std::move(out.txn_messages)});
    const std::uint64_t errors = stats_.wal_io_errors;
    const std::uint64_t durable = durable_;
    if (!syncing_) sync_now();
    return stats_.wal_io_errors == errors && (wrote || sent_early || sends || durable_ != durable);
}

// Persist before send (docs/design.md section 9, habit 1): a promise, an
// acknowledgement or a commit never leaves before what it vouches for is on
// disk.
void Shell::enqueue_all(ReplicaOutput& out) {
    if (out.durable) enqueue(*out.durable);
    if (out.truncate_after) enqueue(TruncateOp{*out.truncate_after});
    if (out.install) enqueue(InstallOp{std::move(*out.install)});
    for (auto& e : out.appended) enqueue(std::move(e));
    if (out.compact) enqueue(compact_op(std::move(*out.compact)));
}

// What the WAL keeps after the snapshot comes from the log in memory,
// which holds every entry since its own snapshot: the WAL then writes the
// new chain without reading the old one back. The WAL applies this op
// after every entry enqueued before it, so its log then ends where the
// replica's does now.
CompactOp Shell::compact_op(Snapshot snapshot) const {
    const ReplicatedLog& log = replica_.log();
    std::vector<LogEntry> kept;
    kept.reserve(log.last_index().value - snapshot.last_index.value);
    for (auto i = snapshot.last_index.value + 1; i <= log.last_index().value; ++i) kept.push_back(log.at(LogIndex{i}));
    return CompactOp{std::move(snapshot), std::move(kept)};
}

// Hands the backlog to the WAL and syncs it: at once, or in the background
// (then sync_done() finishes), or, for a leader whose followers suffice,
// on the next tick or the first turn that needs the disk.
void Shell::sync_now() {
    const bool wait = sync_may_wait();
    in_sync_ = enqueued_;
    try {
        while (!backlog_.empty()) {
            apply_to_wal(backlog_.front());
            accepted_bytes_ += approx_bytes(backlog_.front());
            accepted_.push_back(std::move(backlog_.front()));
            backlog_.pop_front();
        }
        if (wait) {
            if (!waiting_since_) waiting_since_ = ticks_;
            ++stats_.syncs_waited;
            return;
        }
        waiting_since_.reset();
        if (StorageFile* file = wal_.dirty() ? wal_.begin_sync() : nullptr) {
            const std::optional<std::error_code> result = host_.start_sync(*file);
            if (!result) {
                syncing_ = true;
                return;
            }
            wal_.finish_sync(*result);
        }
    } catch (const WalIoError& e) {
        sync_failed(e);
        return;
    }
    became_durable();
}

// A leader's copy counts toward a majority only once synced (section 6.1),
// so while enough followers keep up (Replica::own_sync_may_wait()) its sync
// is not on a commit's path: it costs the shard a third concurrent
// fdatasync and the leader a wake-up for each batch. Its new entries then
// wait in the WAL's buffer, never longer than until the next tick. Anything
// else a turn persists (an epoch, a truncation, a snapshot), a send that
// waits for the disk, or more than kUnsyncedBytesMax syncs at once, with
// all that waited. With fsync=never a sync is only a write, over at once:
// the leader's copy then costs nothing and may spare a commit the slower
// follower, so it never waits.
bool Shell::sync_may_wait() const {
    constexpr std::size_t kUnsyncedBytesMax = 1u << 20;
    const auto entry = [](const WalOp& op) { return std::holds_alternative<LogEntry>(op); };
    if (wal_.fsync_mode() == config::FsyncMode::never) return false;
    if (waiting_since_ && ticks_ > *waiting_since_) return false;
    if (!held_.empty() || backlog_bytes_ > kUnsyncedBytesMax) return false;
    if (!std::all_of(backlog_.begin(), backlog_.end(), entry) || !std::all_of(accepted_.begin(), accepted_.end(), entry))
        return false;
    return (!backlog_.empty() || !accepted_.empty()) && replica_.own_sync_may_wait();
}

void Shell::sync_done(std::error_code result) {
    require(syncing_, "Shell::sync_done: no sync in flight");
    syncing_ = false;
    try {
        wal_.finish_sync(result);
    } catch (const WalIoError& e) {
        sync_failed(e);
        return;
    }
    became_durable();
    flush();
}

// The sends that waited for this sync are dropped: what they vouch for may
// not be on disk (the leader retransmits). The WAL keeps what it accepted
// and the next turn writes it again.
void Shell::sync_failed(const WalIoError& e) {
    ++stats_.wal_io_errors;
    host_.wal_failed(e, stats_);
    while (!held_.empty() && held_.front().after_ops <= in_sync_) {
        stats_.dropped_sends += held_.front().election.size() + held_.front().txn.size();
        held_.pop_front();
    }
}

void Shell::became_durable() {
    durable_ = in_sync_;
    backlog_bytes_ -= accepted_bytes_;
    accepted_bytes_ = 0;
    host_.synced(std::exchange(accepted_, {}));
    if (const auto index = durable_index()) replica_.persisted(*index);
    while (!held_.empty() && held_.front().after_ops <= durable_) {
        HeldSends h = std::move(held_.front());
        held_.pop_front();
        for (const auto& m : h.election) host_.send(m.to, m.msg);
        for (const auto& m : h.txn) host_.send(m.to, m.msg);
    }
}

// The last entry of the replica's log that is on disk now. What waits in
// the backlog came after the sync: a truncation there means the entries
// past it on disk are not the replica's any more, and a snapshot install
// replaces them all.
std::optional<LogIndex> Shell::durable_index() const {
    LogIndex index = wal_.last_index();
    for (const WalOp& op : backlog_) {
        if (std::holds_alternative<InstallOp>(op)) return std::nullopt;
        if (const auto* t = std::get_if<TruncateOp>(&op)) index = std::min(index, t->after);
    }
    return index;
}

bool Shell::send_early(ReplicaOutput& out) {
    // While a new epoch waits to be synced (this turn's, or one a failing
    // disk still holds back), nothing that carries an epoch leaves before
    // the sync: every message's epoch is on the sender's disk (the epoch of
    // an answer between shards is only a hint).
    const auto is_durable = [](const WalOp& op) { return std::holds_alternative<election::Durable>(op); };
    const bool epoch_saved = out.durable.has_value() || std::any_of(backlog_.begin(), backlog_.end(), is_durable) ||
                             std::any_of(accepted_.begin(), accepted_.end(), is_durable);
    const auto early = [&](const LogEnvelope& m) {
        return std::visit(Overload{
                              [](const ShardRequest&) { return true; },
                              [](const ShardReply&) { return true; },
                              [&](const ForwardRequest&) { return !epoch_saved; },
                              [&](const ForwardReply&) { return !epoch_saved; },
                              [&](const AppendEntries&) { return !epoch_saved; },
                              [](const auto&) { return false; },
                          },
                          m.msg);
    };
    const auto first = std::stable_partition(out.txn_messages.begin(), out.txn_messages.end(),
                                             [&](const LogEnvelope& m) { return !early(m); });
    // Between shards first: the other shard's whole round waits on them.
    std::stable_partition(first, out.txn_messages.end(), [](const LogEnvelope& m) {
        return std::holds_alternative<ShardRequest>(m.msg) || std::holds_alternative<ShardReply>(m.msg);
    });
    for (auto it = first; it != out.txn_messages.end(); ++it) host_.send(it->to, it->msg);
    const bool any = first != out.txn_messages.end();
    out.txn_messages.erase(first, out.txn_messages.end());
    return any;
}

// Only the newest durable epoch matters: while the disk fails, a later save
// replaces one still waiting, so elections cannot grow the backlog.
void Shell::enqueue(WalOp op) {
    ++enqueued_;
    if (!backlog_.empty() && std::holds_alternative<election::Durable>(op) &&
        std::holds_alternative<election::Durable>(backlog_.back())) {
        backlog_.back() = std::move(op);
        return;
    }
    backlog_bytes_ += approx_bytes(op);
    backlog_.push_back(std::move(op));
}

void Shell::apply_to_wal(const WalOp& op) {
    std::visit(Overload{
                   [&](const election::Durable& d) { wal_.save_durable(d); },
                   [&](const TruncateOp& t) { wal_.truncate_after(t.after); },
                   [&](const InstallOp& i) { wal_.install_snapshot(i.snapshot); },
                   [&](const LogEntry& e) { wal_.append(e); },
                   [&](const CompactOp& c) { wal_.compact(c.snapshot, c.kept); },
               },
               op);
}

std::size_t Shell::approx_bytes(const WalOp& op) {
    return std::visit(Overload{
                          [](const LogEntry& e) { return entry_bytes(e); },
                          [](const InstallOp& i) { return kEntryBytes + i.snapshot.state.size(); },
                          [](const CompactOp& c) {
                              std::size_t bytes = kEntryBytes + c.snapshot.state.size();
                              for (const LogEntry& e : c.kept) bytes += entry_bytes(e);
                              return bytes;
                          },
                          [](const auto&) { return kEntryBytes; },
                      },
                      op);
}

}  // namespace rl::txn
