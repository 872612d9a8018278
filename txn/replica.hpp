// One node's member of its shard, sans-I/O: the election core, the
// replicated log and the shard state machine wired together, plus the
// client operations waiting on them (docs/design.md sections 5 and 6). rlnode
// drives it from its io_context; the simulator drives the same class.
//
// Inputs: step() for peer messages, tick() once per tick_ms, submit() for a
// client operation, persisted() after each WAL sync. Output, in order:
// persist (durable epoch, log changes, snapshot), then send, then reply.
#pragma once

#include "config/config.hpp"
#include "election/core.hpp"
#include "txn/log.hpp"
#include "txn/messages.hpp"
#include "txn/snapshot.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rl::txn {

struct ReplicaParams {
    election::Params election;
    LogLimits log;
    DedupLimits dedup;
    std::uint64_t snapshot_after_entries = 50000;  // applied entries kept in memory and WAL before a snapshot
    std::uint64_t op_timeout_ticks = 500;         // a client operation waits at most this long here
    std::size_t pending_ops_max = 100000;         // client operations waiting at this node
    // First forward id of this incarnation. Ids must not repeat across a
    // restart, or a late reply to a request forwarded before a crash would
    // answer a new one: the shell passes a random value per start.
    std::uint64_t forward_id_base = 1;
};

// What the WAL recovered at start.
struct RecoveredState {
    election::Durable durable;
    std::optional<Snapshot> snapshot;
    std::vector<LogEntry> entries;
};

// Who is waiting for an operation's result: a local client session (the
// shell's handle) or another node that forwarded it here.
struct LocalWaiter {
    std::uint64_t handle = 0;
};
struct RemoteWaiter {
    NodeId node;
    std::uint64_t forward_id = 0;
};
using Waiter = std::variant<LocalWaiter, RemoteWaiter>;

struct ElectionEnvelope {
    NodeId to;
    election::ElectionMessage msg;
};

struct ReplicaOutput {
    // 1. persist, then sync
    std::optional<election::Durable> durable;
    std::optional<LogIndex> truncate_after;
    std::optional<Snapshot> install;  // replaces the whole log
    std::vector<LogEntry> appended;
    std::optional<Snapshot> compact;  // the WAL may drop entries through it
    // 2. send
    std::vector<ElectionEnvelope> election_messages;
    std::vector<LogEnvelope> txn_messages;
    // 3. answer local clients
    std::vector<std::pair<std::uint64_t, OpResult>> replies;
    // and log
    std::vector<election::Event> election_events;
    std::vector<LogEvent> log_events;
    std::optional<election::LeaderChange> leader_change;
};

class Replica {
public:
    Replica(ReplicaParams params, const config::ShardConfig& shard, std::int64_t initial_balance,
            RecoveredState recovered);

    void step(NodeId from, const election::ElectionMessage& m);
    void step(NodeId from, const TxnMessage& m);
    void tick();
    // A client operation arriving at this node from a local session.
    void submit(std::uint64_t handle, const ClientOp& op);
    // A client operation for another shard: pass it to `target`, a node of
    // that shard, and relay the answer.
    void forward_elsewhere(std::uint64_t handle, NodeId target, const ClientOp& op);
    // The WAL holds everything through `index`.
    void persisted(LogIndex index);
    ReplicaOutput take_output();

    election::RoleKind role() const { return election_.role_kind(); }
    Epoch epoch() const { return election_.epoch(); }
    NodeId leader() const { return election_.leader(); }
    std::vector<election::PeerHealth> peers() const { return election_.peers(); }
    LogIndex commit_index() const { return log_.commit_index(); }
    LogIndex applied_index() const { return state_.applied_index(); }
    const ShardState& state() const { return state_; }
    const ReplicatedLog& log() const { return log_; }
    std::size_t pending_ops() const { return transfers_.size() + reads_.size() + parked_.size() + forwarded_.size(); }

private:
    struct PendingTransfer {
        LogIndex index;
        std::vector<std::pair<Waiter, std::uint64_t>> waiters;  // with their deadlines
    };
    struct PendingRead {
        Waiter waiter;
        ItemId item;
        LogIndex read_index;
        std::uint64_t round;
        std::uint64_t deadline;
    };
    struct Parked {
        Waiter waiter;
        ClientOp op;
        std::uint8_t hops;
        std::uint64_t deadline;
    };
    struct Forwarded {
        Waiter waiter;
        NodeId to;
        std::uint64_t deadline;
        ClientOp op;  // to check that a reply answers this operation
    };

    void submit_op(const Waiter& w, const ClientOp& op, std::uint8_t hops);
    void serve_transfer(const Waiter& w, const TransferOp& op);
    void serve_read(const Waiter& w, const BalanceOp& op);
    void forward(const Waiter& w, const ClientOp& op, std::uint8_t hops);
    void send_forward(const Waiter& w, NodeId to, const ClientOp& op, std::uint8_t hops);
    void reply(const Waiter& w, OpResult result);
    void fail(const Waiter& w, const std::string& code, const std::string& message);
    std::optional<OpFailed> edge_check(const ClientOp& op) const;

    void on_forward(NodeId from, const ForwardRequest& m);
    void on_forward_reply(NodeId from, const ForwardReply& m);

    void drain_election();
    void on_leader_change(const election::LeaderChange& change, const std::optional<election::Elected>& elected);
    void drain_log();
    void apply_committed();
    void maybe_compact();
    void complete_reads();
    void fail_leader_waiters(const std::string& why);
    void fail_stale_forwards(NodeId leader);
    void retry_parked();
    void expire_waiters();
    void sync_positions();
    bool admit_new_op(const Waiter& w);

    ReplicaParams params_;
    config::ShardConfig shard_;
    election::Core election_;
    ReplicatedLog log_;
    ShardState state_;
    std::uint64_t now_ = 0;  // ticks since start

    std::map<TxnId, PendingTransfer> transfers_;
    std::vector<PendingRead> reads_;
    std::vector<Parked> parked_;
    std::map<std::uint64_t, Forwarded> forwarded_;
    std::uint64_t next_forward_id_ = 1;

    ReplicaOutput out_;
};


}  // namespace rl::txn
