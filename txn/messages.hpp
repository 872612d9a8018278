// Peer messages of the replicated shard log and of request forwarding.
// Plain structs with cereal serialize(); transport/messages.hpp gathers them
// into the wire variant. txn owns wire types 60..99.
//
// Every message carries the sender's epoch first: the receiver fences a
// lower one before looking at anything else (docs/design.md section 9, habit 3).
#pragma once

#include "config/types.hpp"
#include "txn/log_entry.hpp"
#include "txn/snapshot.hpp"

#include <cereal/types/optional.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rl::txn {

// Leader -> follower: Raft's AppendEntries under our epochs. Empty `entries`
// doubles as the log heartbeat that carries the commit index and the read
// round.
struct AppendEntries {
    static constexpr std::uint8_t kWireType = 60;
    Epoch epoch;                  // the leader's epoch
    LogIndex prev_index;          // index of the entry just before `entries`
    Epoch prev_epoch;             // its epoch: the follower must hold the same (log matching)
    std::vector<LogEntry> entries;// consecutive entries from prev_index + 1
    LogIndex commit_index;        // the leader's commit index
    std::uint64_t round = 0;      // read-confirmation round, echoed in the reply

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, prev_index, prev_epoch, entries, commit_index, round); }
};

// Follower -> leader. A success is sent only once the entries are on disk.
struct AppendReply {
    static constexpr std::uint8_t kWireType = 61;
    Epoch epoch;              // the follower's epoch; higher than the leader's deposes it
    bool success = false;     // the prev entry matched and the entries are durable
    LogIndex match_index;     // success: the follower's log matches the leader's through here
    LogIndex hint;            // failure: resend from here (prev_index = hint - 1)
    std::uint64_t round = 0;  // stamp of the AppendEntries answered (pipeline and read rounds)
    LogIndex last_index;      // the follower's last index: below what it acknowledged, it lost entries

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, success, match_index, hint, round, last_index); }
};

// New leader -> the promiser holding the most up-to-date log: "send me your
// entries from `from_index`", so the leader adopts the best log of its
// promise quorum before it appends (docs/design.md section 5).
struct FetchLog {
    static constexpr std::uint8_t kWireType = 62;
    Epoch epoch;          // the new leader's epoch
    LogIndex from_index;  // first index wanted
    std::uint32_t max_entries = 0;  // batch bound

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, from_index, max_entries); }
};

struct FetchReply {
    static constexpr std::uint8_t kWireType = 63;
    Epoch epoch;                       // the holder's epoch
    LogIndex from_index;               // echoed
    std::vector<LogEntry> entries;     // from from_index on, at most max_entries
    LogIndex last_index;               // the holder's last index (more to fetch if beyond entries)
    std::optional<Snapshot> snapshot;  // when from_index is already compacted away on the holder

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, from_index, entries, last_index, snapshot); }
};

// Leader -> a follower whose next entry the leader has compacted away.
struct InstallSnapshot {
    static constexpr std::uint8_t kWireType = 64;
    Epoch epoch;        // the leader's epoch
    Snapshot snapshot;  // the leader's latest snapshot
    LogIndex commit_index;

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, snapshot, commit_index); }
};

// ---- client operations as they travel between nodes ----

struct TransferOp {
    TxnId txid;
    ItemId from;
    ItemId to;
    std::int64_t amount = 0;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, from, to, amount); }
};

struct BalanceOp {
    ItemId item;
    bool local = false;  // read this node's applied state, not through the leader

    template <class Archive>
    void serialize(Archive& ar) { ar(item, local); }
};

// "Who leads your shard?" Any member answers from its own view.
struct LeaderOp {
    template <class Archive>
    void serialize(Archive&) {}
};

// Open a client session with the shard that holds `item`.
struct SessionOp {
    ItemId item;

    template <class Archive>
    void serialize(Archive& ar) { ar(item); }
};

// Read the shard's books (one linearizable read, served by its leader).
struct AuditOp {
    template <class Archive>
    void serialize(Archive&) {}
};

// Put the shard's balances back to their Genesis value: a Reset entry
// proposed by its leader (docs/design.md section 6.8); only where the
// node's INI has fault_injection = true.
struct ResetOp {
    template <class Archive>
    void serialize(Archive&) {}
};

// Transfers of one client batch whose FROM items all live in the shard it
// is sent to, in the client's order (docs/design.md section 6.9). They share
// one session, the shard's; the node that received the batch split it by
// FROM shard.
struct BatchOp {
    std::vector<TransferOp> transfers;

    template <class Archive>
    void serialize(Archive& ar) { ar(transfers); }
};

using ClientOp = std::variant<TransferOp, BalanceOp, LeaderOp, SessionOp, AuditOp, ResetOp, BatchOp>;

struct TransferDone {
    Outcome outcome = Outcome::aborted;
    std::string reason;         // empty when committed
    TxnId txid;

    template <class Archive>
    void serialize(Archive& ar) { ar(outcome, reason, txid); }
};

struct BalanceDone {
    ItemId item;
    std::int64_t balance = 0;  // posted
    bool local = false;        // true: this node's applied state, maybe stale
    LogIndex applied_index;    // the state's position
    std::int64_t held = 0;     // held by undecided cross-shard debits; available = balance - held
    std::int64_t pending = 0;  // undecided cross-shard credits

    template <class Archive>
    void serialize(Archive& ar) { ar(item, balance, local, applied_index, held, pending); }
};

// One cross-shard transaction a shard still records, as an audit shows it.
struct AuditTxn {
    TxnId txid;
    std::uint8_t side = 0;      // Side: 1 debit (this shard is the sender), 2 credit
    ItemId from;
    ItemId to;
    ShardId other;              // the other shard
    std::int64_t amount = 0;
    bool voted_yes = false;
    std::uint8_t fate = 0;      // Fate: 0 undecided, 1 committed, 2 aborted
    std::string reason;         // vote or abort reason; empty when none
    std::uint64_t age_ms = 0;   // since the answering leader first saw it

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, side, from, to, other, amount, voted_yes, fate, reason, age_ms); }
};

// One shard's books, read linearizably through its leader.
struct AuditDone {
    ShardId shard;
    LogIndex applied_index;
    std::uint64_t items = 0;
    std::int64_t initial_balance = 0;  // of every item, from the shard's Genesis
    std::int64_t total = 0;            // sum of posted balances
    std::int64_t held = 0;             // sum of holds
    std::int64_t pending = 0;          // sum of pending credits
    std::vector<std::pair<ItemId, std::int64_t>> negatives;  // items whose posted or available balance is below 0
    std::vector<AuditTxn> txns;        // every cross-shard record, decided or not

    template <class Archive>
    void serialize(Archive& ar) { ar(shard, applied_index, items, initial_balance, total, held, pending, negatives, txns); }
};

struct OpFailed {
    std::string code;     // unavailable, bad_request, unknown_item, timeout, ...
    std::string message;  // one line
    NodeId leader_hint;   // best known leader of the item's shard

    template <class Archive>
    void serialize(Archive& ar) { ar(code, message, leader_hint); }
};

struct LeaderDone {
    ShardId shard;
    NodeId leader;  // kNoNode if the answering node knows none
    Epoch epoch;    // the answering node's epoch

    template <class Archive>
    void serialize(Archive& ar) { ar(shard, leader, epoch); }
};

struct SessionDone {
    ShardId shard;               // the shard whose log opened it
    std::uint64_t session = 0;   // session_id() of its OpenSession entry

    template <class Archive>
    void serialize(Archive& ar) { ar(shard, session); }
};

// A Reset entry applied with its balances back at the Genesis value.
struct ResetDone {
    ShardId shard;        // the shard that was reset
    LogIndex applied_at;  // the Reset entry's index

    template <class Archive>
    void serialize(Archive& ar) { ar(shard, applied_at); }
};

// What one transfer of a batch came to (docs/design.md section 6.9).
enum class BatchStatus : std::uint8_t {
    committed = 1,
    aborted = 2,  // `reason` names why, as for a single transfer
    // No outcome is known (`reason` is the error code: timeout,
    // unavailable, bad_request, ...): retry it with the same txid.
    failed = 3,
};

struct TransferOutcome {
    TxnId txid;
    BatchStatus status = BatchStatus::failed;
    std::string reason;  // empty when committed

    bool operator==(const TransferOutcome&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(txid, status, reason); }
};

// The outcomes of a BatchOp's transfers, in its order.
struct BatchDone {
    std::vector<TransferOutcome> each;

    template <class Archive>
    void serialize(Archive& ar) { ar(each); }
};

using OpResult =
    std::variant<TransferDone, BalanceDone, LeaderDone, OpFailed, SessionDone, AuditDone, ResetDone, BatchDone>;

// Writes what `result` says of some transfers of a batch into `each` at
// `positions` (the result answers those transfers in that order): a
// BatchDone item by item, a TransferDone for its one transfer, a failure for
// every one of them. False when the result does not fit the positions.
bool place_outcomes(std::vector<TransferOutcome>& each, const std::vector<std::uint32_t>& positions,
                    const OpResult& result);

// A node that cannot serve a client operation passes it to the leader it
// knows; the reply retraces the hop to the origin.
struct ForwardRequest {
    static constexpr std::uint8_t kWireType = 70;
    Epoch epoch;                // the sender's epoch (0 across shards)
    std::uint64_t forward_id = 0;  // the origin's handle, echoed in the reply
    std::uint8_t hops = 0;      // nodes passed so far; bounded by kForwardHopsMax
    ClientOp op;

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, forward_id, hops, op); }
};

struct ForwardReply {
    static constexpr std::uint8_t kWireType = 71;
    Epoch epoch;                   // the sender's epoch
    std::uint64_t forward_id = 0;  // from the request
    OpResult result;
    NodeId leader_hint;            // the leader as the answering node knows it

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, forward_id, result, leader_hint); }
};

inline constexpr std::uint8_t kForwardHopsMax = 3;

// ---- two-phase commit between shard leaders (docs/design.md section 6.7) ----
//
// A leader asks the other shard's leader with a ShardRequest; a follower
// that receives one passes it to its own leader and tells the asker who
// that is. Every reply names the answering shard, its epoch and its leader,
// so the asker's leader cache learns from it. Requests carry no epoch: what
// they ask for is a fact of the asker's committed log (a Decide is sent only
// once the asker's own Decide is applied), or is settled by the receiver's
// log order (a Prepare, a Query).

// The content both Prepares of one transaction must agree on.
struct TxnContent {
    TxnId txid;
    ItemId from;
    ItemId to;
    std::int64_t amount = 0;

    bool operator==(const TxnContent&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(txid, from, to, amount); }
};

struct PrepareAsk {
    TxnContent txn;
    template <class Archive>
    void serialize(Archive& ar) { ar(txn); }
};
struct QueryAsk {
    TxnId txid;
    template <class Archive>
    void serialize(Archive& ar) { ar(txid); }
};
struct DecideAsk {
    TxnId txid;
    Fate fate = Fate::aborted;
    std::uint8_t reason = 0;  // AbortReason
    // The receiver's record the decision rests on: its prepared_at, as the
    // receiver's StateTell reported it; 0 when this leader does not know.
    // A record made later (a late duplicate Prepare) is not decided by it.
    LogIndex prepared_at;
    template <class Archive>
    void serialize(Archive& ar) { ar(txid, fate, reason, prepared_at); }
};
struct ForgetAsk {
    std::vector<TxnId> txids;
    template <class Archive>
    void serialize(Archive& ar) { ar(txids); }
};
using ShardAsk = std::variant<PrepareAsk, QueryAsk, DecideAsk, ForgetAsk>;

// Asks or tells in one frame, at most.
inline constexpr std::size_t kBetweenShardsPerFrame = 1024;

// What one turn of a leader asks of one node of another shard, in one frame
// (or several, kBetweenShardsPerFrame asks each).
struct ShardRequest {
    static constexpr std::uint8_t kWireType = 72;
    ShardId from_shard;      // the asking shard
    NodeId reply_to;         // the asking leader
    std::uint8_t hops = 0;   // passed on by followers so far; bounded by kForwardHopsMax
    std::vector<ShardAsk> asks;

    template <class Archive>
    void serialize(Archive& ar) { ar(from_shard, reply_to, hops, asks); }
};

// A shard's state of one transaction, as its applied log holds it: the
// answer to a Prepare (once applied) or a Query (once its entry is applied).
struct StateTell {
    TxnContent txn;          // as recorded here (zero items for a fence)
    std::uint8_t state = 0;  // QueryState
    std::uint8_t reason = 0; // AbortReason for voted_no and aborted
    LogIndex prepared_at;    // the record's prepared_at; 0 without a record
    template <class Archive>
    void serialize(Archive& ar) { ar(txn, state, reason, prepared_at); }
};
struct AckTell {
    TxnId txid;  // its Decide is applied here
    template <class Archive>
    void serialize(Archive& ar) { ar(txid); }
};
struct HintTell {
    template <class Archive>
    void serialize(Archive&) {}
};
using ShardTell = std::variant<HintTell, StateTell, AckTell>;

// What one turn of a node tells one node of another shard, in one frame.
struct ShardReply {
    static constexpr std::uint8_t kWireType = 73;
    ShardId shard;   // the answering shard
    Epoch epoch;     // the answering node's epoch
    NodeId leader;   // the leader it knows (itself when it answers); kNoNode if none
    std::vector<ShardTell> tells;

    template <class Archive>
    void serialize(Archive& ar) { ar(shard, epoch, leader, tells); }
};

using TxnMessage = std::variant<AppendEntries, AppendReply, FetchLog, FetchReply, InstallSnapshot, ForwardRequest,
                                ForwardReply, ShardRequest, ShardReply>;

}  // namespace rl::txn
