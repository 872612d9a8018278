#include "txn/replica.hpp"

#include "config/overload.hpp"
#include "config/check.hpp"

#include <algorithm>
#include <utility>

namespace rl::txn {
namespace {

election::Core make_core(const ReplicaParams& p, const RecoveredState& r) { return election::Core(p.election, r.durable); }

ShardState make_state(const config::ShardConfig& shard, std::int64_t initial, const ReplicaParams& p,
                      const RecoveredState& r) {
    if (r.snapshot) return ShardState::restore(shard, r.snapshot->state, p.dedup);
    return ShardState(shard, initial, p.dedup);
}

// True when `result` can be the answer to `op` (a failure answers anything).
bool answers(const ClientOp& op, const OpResult& result) {
    return std::visit(Overload{
                          [&](const TransferOp& t) {
                              const auto* d = std::get_if<TransferDone>(&result);
                              return d == nullptr ? !std::holds_alternative<BalanceDone>(result) &&
                                                        !std::holds_alternative<LeaderDone>(result)
                                                  : d->txid == t.txid;
                          },
                          [&](const BalanceOp& b) {
                              const auto* d = std::get_if<BalanceDone>(&result);
                              return d == nullptr ? std::holds_alternative<OpFailed>(result) : d->item == b.item;
                          },
                          [&](const LeaderOp&) {
                              return std::holds_alternative<LeaderDone>(result) ||
                                     std::holds_alternative<OpFailed>(result);
                          },
                      },
                      op);
}

}  // namespace

Replica::Replica(ReplicaParams params, const config::ShardConfig& shard, std::int64_t initial_balance,
                 RecoveredState recovered)
    : params_(std::move(params)),
      shard_(shard),
      election_(make_core(params_, recovered)),
      log_(params_.election.self, params_.election.members, params_.log, recovered.snapshot,
           std::move(recovered.entries)),
      state_(make_state(shard, initial_balance, params_, recovered)),
      next_forward_id_(params_.forward_id_base) {
    log_.follow(election_.epoch(), kNoNode);
    sync_positions();
    drain_election();  // a one-node shard leads at once
    drain_log();
}

// ---- inputs ----

void Replica::step(NodeId from, const election::ElectionMessage& m) {
    sync_positions();
    election_.step(from, m);
    drain_election();
    drain_log();
}

void Replica::step(NodeId from, const TxnMessage& m) {
    std::visit(Overload{
                   [&](const ForwardRequest& f) { on_forward(from, f); },
                   [&](const ForwardReply& f) { on_forward_reply(from, f); },
                   [&](const auto& msg) { log_.step(from, msg); },
               },
               m);
    drain_log();
}

void Replica::tick() {
    ++now_;
    sync_positions();
    election_.tick();
    drain_election();
    log_.tick();
    drain_log();
    expire_waiters();
    retry_parked();
}

void Replica::persisted(LogIndex index) {
    log_.persisted(index);
    drain_log();
}

void Replica::submit(std::uint64_t handle, const ClientOp& op) { submit_op(LocalWaiter{handle}, op, 0); }

ReplicaOutput Replica::take_output() {
    drain_log();
    auto lo = log_.take_output();
    if (lo.truncate_after) out_.truncate_after = lo.truncate_after;
    if (lo.install) out_.install = std::move(lo.install);
    for (auto& e : lo.appended) out_.appended.push_back(std::move(e));
    // A snapshot installed this turn supersedes an earlier compaction below
    // it: the WAL restarts from the installed snapshot, and compacting
    // behind it afterwards would be out of order.
    if (out_.install && out_.compact && out_.compact->last_index <= out_.install->last_index) out_.compact.reset();
    for (auto& m : lo.messages) out_.txn_messages.push_back(std::move(m));
    for (auto& e : lo.events) out_.log_events.push_back(e);
    return std::exchange(out_, ReplicaOutput{});
}

// The election carries the log position in promises and the commit index in
// heartbeats; keep them current before it speaks.
void Replica::sync_positions() {
    election_.set_log_position(log_.position());
    election_.set_commit_index(log_.commit_index());
}

// ---- election -> log ----

void Replica::drain_election() {
    auto eo = election_.take_output();
    if (eo.persist) out_.durable = eo.persist;
    for (auto& m : eo.messages) out_.election_messages.push_back({m.to, std::move(m.msg)});
    for (auto& e : eo.events) out_.election_events.push_back(e);
    if (eo.leader_change) {
        out_.leader_change = eo.leader_change;
        on_leader_change(*eo.leader_change, eo.elected);
    }
}

void Replica::on_leader_change(const election::LeaderChange& change, const std::optional<election::Elected>& elected) {
    const bool was_leading = log_.leading();
    if (change.role == election::RoleKind::leader && elected) {
        log_.lead(*elected);
    } else if (change.role != election::RoleKind::leader) {
        if (was_leading || change.epoch != log_.epoch() || change.leader != log_.leader()) {
            log_.follow(change.epoch, change.leader);
        }
    }
    if (was_leading && !log_.leading()) fail_leader_waiters("leadership ended before the operation finished; retry");
    fail_stale_forwards(change.leader);
    if (change.leader != kNoNode) retry_parked();
}

// Everything the log produced that the replica must react to: a higher
// epoch seen, a failed adoption, a snapshot installed, committed entries.
void Replica::drain_log() {
    if (auto higher = log_.take_higher_epoch()) {
        sync_positions();
        election_.observe(higher->first, higher->second);
        drain_election();
    }
    if (log_.take_resign()) {
        election_.resign("adoption_failed");
        drain_election();
    }
    if (log_.snapshot_index() > state_.applied_index()) {
        // The leader sent its snapshot: the state restarts from it.
        state_ = ShardState::restore(shard_, log_.snapshot()->state, params_.dedup);
    }
    apply_committed();
    complete_reads();
    maybe_compact();
}

// Every replica applies the committed prefix in order; the leader also
// answers whoever waits for a transfer it proposed.
void Replica::apply_committed() {
    while (state_.applied_index() < log_.commit_index() && state_.applied_index() < log_.last_index()) {
        const LogEntry& entry = log_.at(state_.applied_index().next());
        const auto result = state_.apply(entry);
        if (!result) continue;
        auto it = transfers_.find(result->txid);
        if (it == transfers_.end()) continue;
        for (const auto& [w, deadline] : it->second.waiters) {
            reply(w, TransferDone{static_cast<std::uint8_t>(result->outcome), result->outcome == Outcome::committed
                                                                                  ? std::string()
                                                                                  : to_string(result->reason),
                                  result->txid});
        }
        transfers_.erase(it);
    }
}

// Keeps the WAL and the in-memory log bounded: once enough entries are
// applied, the state itself stands in for them.
void Replica::maybe_compact() {
    const LogIndex applied = state_.applied_index();
    if (applied.value < log_.snapshot_index().value + params_.snapshot_after_entries) return;
    Snapshot s{applied, *log_.epoch_at(applied), state_.snapshot()};
    log_.compact(s);
    out_.compact = std::move(s);
}

// ---- client operations ----

std::optional<OpFailed> Replica::edge_check(const ClientOp& op) const {
    return std::visit(Overload{
                          [&](const TransferOp& t) -> std::optional<OpFailed> {
                              const auto err = state_.validate(Transfer{t.txid, t.from, t.to, t.amount});
                              if (!err) return std::nullopt;
                              return OpFailed{to_string(err->code), err->message, leader()};
                          },
                          [&](const LeaderOp&) -> std::optional<OpFailed> { return std::nullopt; },
                          [&](const BalanceOp& b) -> std::optional<OpFailed> {
                              for (const auto& r : shard_.items) {
                                  if (r.contains(b.item)) return std::nullopt;
                              }
                              return OpFailed{"unknown_item",
                                              "item " + std::to_string(b.item.value) + " is not in shard " +
                                                  std::to_string(shard_.id.value),
                                              leader()};
                          },
                      },
                      op);
}

bool Replica::admit_new_op(const Waiter& w) {
    if (pending_ops() < params_.pending_ops_max) return true;
    fail(w, "unavailable", "too many operations in progress at this node");
    return false;
}

void Replica::submit_op(const Waiter& w, const ClientOp& op, std::uint8_t hops) {
    if (auto err = edge_check(op)) return reply(w, *err);
    if (std::holds_alternative<LeaderOp>(op)) return reply(w, LeaderDone{shard_.id, leader(), epoch()});
    if (const auto* b = std::get_if<BalanceOp>(&op); b && b->local) {
        return reply(w, BalanceDone{b->item, state_.balance(b->item), true, state_.applied_index()});
    }
    if (log_.ready()) {
        if (const auto* t = std::get_if<TransferOp>(&op)) return serve_transfer(w, *t);
        return serve_read(w, std::get<BalanceOp>(op));
    }
    forward(w, op, hops);
}

void Replica::serve_transfer(const Waiter& w, const TransferOp& op) {
    // Exactly-once: a txid already applied gets its first result; one in
    // the log but not yet applied gets the same wait.
    if (auto done = state_.lookup(op.txid)) {
        return reply(w, TransferDone{static_cast<std::uint8_t>(done->outcome),
                                     done->outcome == Outcome::committed ? std::string() : to_string(done->reason),
                                     op.txid});
    }
    const std::uint64_t deadline = now_ + params_.op_timeout_ticks;
    if (auto it = transfers_.find(op.txid); it != transfers_.end()) {
        it->second.waiters.push_back({w, deadline});
        return;
    }
    if (!admit_new_op(w)) return;
    const auto index = log_.propose(Transfer{op.txid, op.from, op.to, op.amount});
    transfers_[op.txid] = PendingTransfer{*index, {{w, deadline}}};
}

// Linearizable read (Raft's ReadIndex): the answer reflects everything
// committed before the read arrived, once a majority has confirmed in a new
// round that this node still leads.
void Replica::serve_read(const Waiter& w, const BalanceOp& op) {
    if (!admit_new_op(w)) return;
    const LogIndex read_index = std::max(log_.commit_index(), log_.epoch_start());
    reads_.push_back(PendingRead{w, op.item, read_index, log_.start_read_round(), now_ + params_.op_timeout_ticks});
    complete_reads();
}

void Replica::complete_reads() {
    if (reads_.empty()) return;
    const std::uint64_t confirmed = log_.confirmed_round();
    std::erase_if(reads_, [&](const PendingRead& r) {
        if (!log_.ready() || confirmed < r.round || state_.applied_index() < r.read_index) return false;
        reply(r.waiter, BalanceDone{r.item, state_.balance(r.item), false, state_.applied_index()});
        return true;
    });
}

// Not the leader: pass the operation to the one we know, or hold it until
// one is known (or its time is up).
void Replica::forward(const Waiter& w, const ClientOp& op, std::uint8_t hops) {
    const NodeId leader = election_.leader();
    const std::uint64_t deadline = now_ + params_.op_timeout_ticks;
    if (leader == kNoNode || leader == params_.election.self) {
        if (!admit_new_op(w)) return;
        parked_.push_back(Parked{w, op, hops, deadline});
        return;
    }
    send_forward(w, leader, op, hops);
}

void Replica::forward_elsewhere(std::uint64_t handle, NodeId target, const ClientOp& op) {
    send_forward(LocalWaiter{handle}, target, op, 0);
}

void Replica::send_forward(const Waiter& w, NodeId to, const ClientOp& op, std::uint8_t hops) {
    if (hops >= kForwardHopsMax) return fail(w, "unavailable", "too many forwarding hops; leader unsettled");
    if (!admit_new_op(w)) return;
    const std::uint64_t id = next_forward_id_++;
    forwarded_[id] = Forwarded{w, to, now_ + params_.op_timeout_ticks, op};
    out_.txn_messages.push_back({to, ForwardRequest{epoch(), id, static_cast<std::uint8_t>(hops + 1), op}});
}

void Replica::retry_parked() {
    if (parked_.empty() || (election_.leader() == kNoNode && !log_.ready())) return;
    auto parked = std::exchange(parked_, {});
    for (auto& p : parked) submit_op(p.waiter, p.op, p.hops);
}

void Replica::on_forward(NodeId from, const ForwardRequest& m) {
    submit_op(RemoteWaiter{from, m.forward_id}, m.op, m.hops);
}

void Replica::on_forward_reply(NodeId from, const ForwardReply& m) {
    auto it = forwarded_.find(m.forward_id);
    if (it == forwarded_.end()) return;  // already timed out here
    if (it->second.to != from || !answers(it->second.op, m.result)) {
        // Not the answer to what we forwarded under this id (a reply from
        // before a restart of ours): it must not reach this client.
        return;
    }
    const Waiter w = it->second.waiter;
    forwarded_.erase(it);
    reply(w, m.result);
}

void Replica::reply(const Waiter& w, OpResult result) {
    std::visit(Overload{
                   [&](const LocalWaiter& l) { out_.replies.emplace_back(l.handle, std::move(result)); },
                   [&](const RemoteWaiter& r) {
                       out_.txn_messages.push_back(
                           {r.node, ForwardReply{epoch(), r.forward_id, std::move(result), leader()}});
                   },
               },
               w);
}

void Replica::fail(const Waiter& w, const std::string& code, const std::string& message) {
    reply(w, OpFailed{code, message, leader()});
}

// A deposed leader cannot tell whether its proposals will commit: the
// clients retry with the same txid, and the dedup table answers truly.
void Replica::fail_leader_waiters(const std::string& why) {
    for (auto& [txid, p] : transfers_) {
        for (const auto& [w, deadline] : p.waiters) fail(w, "unavailable", why);
    }
    transfers_.clear();
    for (const auto& r : reads_) fail(r.waiter, "unavailable", why);
    reads_.clear();
}

// Operations passed to a leader this node no longer believes in may never
// be answered: tell their clients to retry (the txid keeps it exactly-once).
void Replica::fail_stale_forwards(NodeId leader) {
    for (auto it = forwarded_.begin(); it != forwarded_.end();) {
        const bool same_shard = std::find(params_.election.members.begin(), params_.election.members.end(),
                                          it->second.to) != params_.election.members.end();
        if (!same_shard || it->second.to == leader) {
            ++it;
            continue;
        }
        fail(it->second.waiter, "unavailable", "the leader changed while the operation was forwarded; retry");
        it = forwarded_.erase(it);
    }
}

void Replica::expire_waiters() {
    const std::string late = "no answer in time at node " + std::to_string(params_.election.self.value);
    for (auto it = transfers_.begin(); it != transfers_.end();) {
        auto& ws = it->second.waiters;
        std::erase_if(ws, [&](const auto& wd) {
            if (wd.second > now_) return false;
            fail(wd.first, "timeout", late);
            return true;
        });
        it = ws.empty() ? transfers_.erase(it) : std::next(it);
    }
    std::erase_if(reads_, [&](const PendingRead& r) {
        if (r.deadline > now_) return false;
        fail(r.waiter, "timeout", late);
        return true;
    });
    std::erase_if(parked_, [&](const Parked& p) {
        if (p.deadline > now_) return false;
        fail(p.waiter, "unavailable", "no leader known for shard " + std::to_string(shard_.id.value));
        return true;
    });
    for (auto it = forwarded_.begin(); it != forwarded_.end();) {
        if (it->second.deadline > now_) {
            ++it;
            continue;
        }
        fail(it->second.waiter, "timeout", late);
        it = forwarded_.erase(it);
    }
}

}  // namespace rl::txn
