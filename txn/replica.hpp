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
#include "txn/pending.hpp"
#include "txn/router.hpp"
#include "txn/snapshot.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace rl::txn {

struct ReplicaParams {
    election::Params election;
    LogLimits log;
    PendingLimits pending;
    // What this node proposes if it is the first leader of an empty shard,
    // and what it compares the replicated values with (docs/design.md
    // section 6): from its own INI.
    Genesis genesis;
    std::uint64_t snapshot_after_entries = 50000;  // applied entries kept in memory and WAL before a snapshot
    std::uint64_t snapshot_after_bytes = 64ull << 20;  // or their entry_bytes(), whichever comes first
    std::uint64_t idle_compact_ticks = 100;  // nothing applied for this long: compact early (compact_when_idle)
    // First forward id of this incarnation; see PendingOps.
    std::uint64_t forward_id_base = 1;
    // Every shard's members and item ranges, from the config: where to
    // send what is meant for another shard (never who leads it).
    std::map<ShardId, std::vector<NodeId>> shards;
    std::vector<std::pair<config::ItemRange, ShardId>> routes;
    // Two-phase commit timing, in ticks (docs/design.md section 6.7): the
    // first resend of an unanswered request to another shard, its backoff
    // bound, and how long a record waits before this shard asks on its own.
    std::uint64_t cross_retry_ticks = 5;
    std::uint64_t cross_retry_ticks_max = 100;
    std::uint64_t cross_query_after_ticks = 100;
    std::uint32_t tick_ms = 10;  // for the ages an audit reports
    // Asks or tells to one node in one frame, at most (the simulator runs
    // some seeds with 2, so that a turn's requests take several frames).
    std::size_t between_shards_per_frame = kBetweenShardsPerFrame;
    // This node's INI allows the fault switches; a ResetOp is refused at
    // every node where it does not (docs/design.md section 6.8).
    bool fault_injection = false;
};

// What the WAL recovered at start.
struct RecoveredState {
    election::Durable durable;
    std::optional<Snapshot> snapshot;
    std::vector<LogEntry> entries;
};

// This node's INI disagrees with the shard's replicated value of `key`; the
// node follows the log.
struct ConfigDiffers {
    std::string key;
    std::string ini;
    std::string replicated;
};

// A peer's snapshot this node cannot take: refused, counted, and the node
// goes on (docs/design.md section 9, habit 6).
struct SnapshotRefused {
    NodeId from;
    std::string reason;
};

using ReplicaEvent = std::variant<ConfigDiffers, SnapshotRefused>;

struct ElectionEnvelope {
    NodeId to;
    election::ElectionMessage msg;
};

struct ReplicaOutput {
    // How many things it holds; grows with every one added.
    std::size_t count() const;

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
    std::vector<ReplicaEvent> events;
    std::optional<election::LeaderChange> leader_change;
};

// The answer a client gets for a transfer the state machine settled.
TransferDone transfer_done(const ApplyResult& r);
// The same as one outcome of a batch.
TransferOutcome transfer_outcome(const ApplyResult& r);

// The error every node gives for a fault switch (fail, recover, reset)
// while its INI leaves fault_injection off.
inline constexpr const char* kFaultInjectionDisabled =
    "fault injection is disabled: set fault_injection = true in [cluster]";

// Why a Reset was refused: the shard still records cross-shard transactions.
std::string reset_refusal(ShardId shard, std::uint64_t cross_records);

class Replica {
public:
    // The shard is params.genesis.shard. Throws std::runtime_error when the
    // recovered snapshot cannot be read (the node must not start).
    Replica(ReplicaParams params, RecoveredState recovered);

    void step(NodeId from, const election::ElectionMessage& m);
    void step(NodeId from, const TxnMessage& m);
    // One tick of logical time; true when it produced output (a message, an
    // answer, a log entry, an event).
    bool tick();
    // The coming tick (1: the next one) that may produce output, given no
    // input before it; the ticks before it only count time, so a host need
    // not wake for them (docs/design.md section 6.10).
    std::uint64_t ticks_until_due() const;
    // A client operation arriving at this node from a local session.
    void submit(std::uint64_t handle, const ClientOp& op);
    // A client operation for another shard: pass it to that shard's leader
    // as this node knows it (or a member), and relay the answer.
    void forward_elsewhere(std::uint64_t handle, ShardId shard, const ClientOp& op);
    // The host could not connect to `node`: what waits on it goes to the
    // next member now instead of waiting out its timeout.
    void peer_unreachable(NodeId node);
    // The host saw `node`'s connection drop and a reconnect refused: a member
    // of this shard is suspected at once (docs/design.md section 5, "Fast
    // crash detection"); for other nodes peer_unreachable already did all.
    void peer_refused(NodeId node);
    // The WAL holds everything through `index`.
    void persisted(LogIndex index);
    // A leader whose followers keep up may leave what it appends unsynced
    // until the next tick (docs/design.md section 6.11).
    bool own_sync_may_wait() const {
        return log_.followers_suffice([this](NodeId id) { return election_.suspects(id); });
    }
    ReplicaOutput take_output();

    election::RoleKind role() const { return election_.role_kind(); }
    Epoch epoch() const { return election_.epoch(); }
    NodeId leader() const { return election_.leader(); }
    ShardId shard() const { return params_.genesis.shard; }
    std::vector<election::PeerHealth> peers() const { return election_.peers(); }
    LogIndex commit_index() const { return log_.commit_index(); }
    LogIndex applied_index() const { return state_.applied_index(); }
    const ShardState& state() const { return state_; }
    const ReplicatedLog& log() const { return log_; }
    std::size_t pending_ops() const { return pending_.size(); }
    std::uint64_t snapshots_refused() const { return snapshots_refused_; }
    const Router& router() const { return router_; }
    // The shard that holds `item` by the config's ranges; ShardId{0} if none.
    ShardId shard_of_item(ItemId item) const;

private:
    void submit_op(const Waiter& w, const ClientOp& op, std::uint8_t hops);
    void serve_transfer(const Waiter& w, const TransferOp& op);
    void serve_batch(const Waiter& w, const BatchOp& op);
    void on_batch_part(const BatchWaiter& b, const OpResult& result);
    std::optional<OpFailed> transfer_check(const TransferOp& t) const;
    std::optional<OpFailed> edge_failure(const std::optional<EdgeError>& e) const;
    void serve_session(const Waiter& w);
    void serve_reset(const Waiter& w);
    void answer_entry(const Waiter& w, const LogEntry& entry, const Applied& applied);
    void serve_read(const Waiter& w, const ClientOp& op);
    void forward(const Waiter& w, const ClientOp& op, std::uint8_t hops);
    void send_forward(const Waiter& w, NodeId to, const ClientOp& op, std::uint8_t hops);
    void reply(const Waiter& w, OpResult result);
    void fail(const Waiter& w, const std::string& code, const std::string& message);
    std::optional<OpFailed> edge_check(const ClientOp& op) const;
    bool admit(const Waiter& w);

    bool member(NodeId id) const;
    void gate(NodeId from, Epoch theirs);
    bool snapshot_acceptable(NodeId from, const Snapshot& s);
    void on_forward(NodeId from, const ForwardRequest& m);
    void on_forward_reply(NodeId from, const ForwardReply& m);

    void drain_election();
    void on_leader_change(const election::LeaderChange& change, const std::optional<election::Elected>& elected);
    void drain_log();
    void apply_committed();
    void answer_applied(const LogEntry& entry, const Applied& applied);
    void maybe_propose_genesis();
    void compare_genesis();
    void maybe_compact();
    void compact_when_idle();
    std::uint64_t ticks_until_idle_compaction() const;
    bool worth_idle_compaction() const;
    void compact();
    std::size_t effects() const;
    void complete_reads();
    void fail_leader_waiters(const std::string& why);
    void move_stale_forwards(NodeId leader);
    void retry_parked();
    void sync_positions();
    AuditDone audit() const;

    // ---- two-phase commit (two_phase.cpp) ----
    // A request this leader sent to another shard and waits on.
    struct Asking {
        NodeId sent_to;
        std::uint64_t due = 0;  // tick at which to send (again)
        std::uint32_t attempts = 0;
    };
    // Debit side: this shard coordinates.
    struct Coordinating {
        bool prepared_here = false;     // this leadership sent the receiver its Prepare; else it asks
        std::optional<StateTell> there; // the receiver's vote or answer
        bool decide_proposed = false;
        bool acked = false;             // the receiver applied its Decide
        Asking ask;
    };
    // Credit side: the coordinator's shard asks this one.
    struct Participating {
        std::vector<NodeId> vote_to;  // coordinators waiting for this shard's vote
        bool prepare_proposed = false;
        std::vector<NodeId> ack_to;   // coordinators waiting for a Decide to apply
        bool decide_proposed = false;
        std::uint64_t first_seen = 0;
        Asking ask;                   // this shard's own Query to the sender's shard
    };
    void serve_cross(const Waiter& w, const TransferOp& op, ShardId to_shard);
    void coordinate(const TransferOp& op, ShardId to_shard);
    void on_shard_request(NodeId from, const ShardRequest& m);
    void on_shard_reply(NodeId from, const ShardReply& m);
    void on_shard_ask(NodeId reply_to, const ShardAsk& ask);
    void on_shard_tell(NodeId from, const ShardTell& tell);
    void flush_between_shards();
    void on_state_tell(const StateTell& tell);
    void answer_cross(const Applied& applied);
    void drive_cross(bool every_record = false);
    std::uint64_t ticks_until_cross_due() const;
    void drive(const CrossTxn& t);
    void arm(const TxnId& txid, std::uint64_t tick) { timers_.emplace(tick, txid); }
    void drive_debit(const CrossTxn& t, Coordinating& c);
    void drive_credit(const CrossTxn& t, Participating& p);
    void send_ask(ShardId shard, Asking& a, ShardAsk ask, std::optional<TxnId> timer = std::nullopt);
    void tell(NodeId to, ShardTell t);
    void reply_transfer(const ApplyResult& r);
    void reset_cross();
    void on_decided(const Decided& d);
    void propose_decide(Decide d);
    // Proposes work of this leader's, with the decisions waiting so far.
    LogIndex propose(Command c);
    void flush_decisions();
    void resend_now(NodeId node);
    void note_forgotten(const LogEntry& entry);

    ReplicaParams params_;
    election::Core election_;
    ReplicatedLog log_;
    ShardState state_;
    PendingOps pending_;
    Epoch genesis_proposed_in_;     // the epoch in which this node last proposed a Genesis
    bool genesis_compared_ = false; // the config_differs warnings were given
    std::uint64_t snapshots_refused_ = 0;
    std::optional<ShardState> incoming_;  // a peer's snapshot, read, until the log takes it
    std::uint64_t applied_bytes_ = 0;     // entry_bytes() of the entries applied since the last snapshot
    LogIndex idle_at_;                    // the applied index idle_ticks_ counts from
    std::uint64_t idle_ticks_ = 0;        // ticks without an entry applied

    Router router_;
    std::uint64_t now_ = 0;  // ticks since start
    // Two-phase commit bookkeeping of this node while it leads; a new
    // leader rebuilds it from the replicated records (docs/design.md 6.7).
    std::unordered_map<TxnId, Coordinating, TxnIdHash> coordinating_;
    std::unordered_map<TxnId, Participating, TxnIdHash> participating_;
    std::unordered_map<TxnId, std::vector<NodeId>, TxnIdHash> answer_to_;  // Query entries proposed for these askers
    std::set<TxnId> to_forget_;                       // debit side, acknowledged: a Forget entry drops them
    bool forget_proposed_ = false;
    std::map<ShardId, std::vector<TxnId>> tell_forget_;  // forgotten here: the receivers may forget too
    std::unordered_map<TxnId, std::uint64_t, TxnIdHash> first_seen_;  // tick each record was first applied here (audit ages)
    // When each record's next request or Query is due: a tick drives only
    // those; the walk over every record runs after a change of leadership
    // and at least every cross_retry_ticks_max. An entry whose record moved
    // on since is dropped when it comes up.
    std::multimap<std::uint64_t, TxnId> timers_;
    bool walk_all_ = true;
    std::uint64_t walked_at_ = 0;
    std::vector<Decide> decide_batch_;                   // this turn's decisions, proposed as one entry
    std::map<NodeId, std::vector<ShardAsk>> asks_out_;   // this turn's requests to other shards, a frame per node
    std::map<NodeId, std::vector<ShardTell>> tells_out_; // this turn's answers to other shards, a frame per node

    // Client batches this leader serves (docs/design.md section 6.9): each
    // part (a TransferBatch entry, or one cross-shard transfer) waits in
    // pending_ as a BatchWaiter; the origin hears once every part has.
    struct Assembly {
        Waiter origin;
        std::vector<TransferOutcome> each;               // in the batch's order
        std::vector<std::vector<std::uint32_t>> parts;   // the positions each part answers
        std::size_t missing = 0;                         // parts not answered yet
    };
    std::map<std::uint64_t, Assembly> batches_;
    std::uint64_t next_batch_ = 1;

    ReplicaOutput out_;
};

}  // namespace rl::txn
