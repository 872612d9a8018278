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

using ClientOp = std::variant<TransferOp, BalanceOp, LeaderOp, SessionOp>;

struct TransferDone {
    Outcome outcome = Outcome::aborted;
    std::string reason;         // empty when committed
    TxnId txid;

    template <class Archive>
    void serialize(Archive& ar) { ar(outcome, reason, txid); }
};

struct BalanceDone {
    ItemId item;
    std::int64_t balance = 0;
    bool local = false;        // true: this node's applied state, maybe stale
    LogIndex applied_index;    // the state's position

    template <class Archive>
    void serialize(Archive& ar) { ar(item, balance, local, applied_index); }
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

using OpResult = std::variant<TransferDone, BalanceDone, LeaderDone, OpFailed, SessionDone>;

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

using TxnMessage = std::variant<AppendEntries, AppendReply, FetchLog, FetchReply, InstallSnapshot, ForwardRequest,
                                ForwardReply>;

}  // namespace rl::txn
