// What the replicated shard log holds. Every write of a shard is one entry;
// entries are applied in index order by every replica. These structs are
// both the WAL's record payload and the replication messages' content.
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"

#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <variant>
#include <vector>

namespace rl::txn {

// A transfer's id: (session, seq). The session is opened by an OpenSession
// entry of the shard that applies the transfer; the client numbers its
// transfers within it. Retries reuse the id, so the replicated session table
// answers a retry with the first result (docs/design.md section 6).
struct TxnId {
    std::uint64_t session = 0;  // session_id() of an OpenSession entry
    std::uint64_t seq = 0;      // increases per new transfer of that session

    auto operator<=>(const TxnId&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(session, seq); }
};

// For the hash maps a leader looks a transaction up in several times per
// step of its protocol (docs/design.md section 6.7).
struct TxnIdHash {
    std::size_t operator()(const TxnId& t) const noexcept {
        return std::hash<std::uint64_t>{}(t.session * 0x9E3779B97F4A7C15ull ^ t.seq);
    }
};

// A session id names its shard (high 16 bits) and the index of the entry
// that opened it (low 48 bits): unique for ever, and a node can tell at
// once whether a session belongs to its shard.
inline constexpr std::uint64_t kSessionIndexBits = 48;
inline constexpr std::uint64_t kShardIdMax = (std::uint64_t{1} << (64 - kSessionIndexBits)) - 1;
constexpr std::uint64_t session_id(ShardId shard, LogIndex opened_at) {
    return (shard.value << kSessionIndexBits) | opened_at.value;
}
constexpr ShardId session_shard(std::uint64_t session) { return ShardId{session >> kSessionIndexBits}; }

// Appended by a new leader in its epoch before it serves (commits the
// previous epochs' entries under Raft's current-epoch rule).
struct Noop {
    template <class Archive>
    void serialize(Archive&) {}
};

// The entry that creates a shard's state: everything that changes what
// applying later entries does, fixed once for every replica (docs/design.md
// section 6). The first leader of an empty shard proposes it from its own
// INI; later Genesis entries apply as no-ops, so the first one wins.
struct Genesis {
    ShardId shard;
    std::vector<config::ItemRange> items;  // sorted, disjoint
    std::int64_t initial_balance = 0;      // of every item
    std::uint32_t dedup_window = 0;        // transfer results kept per session
    std::uint32_t sessions_max = 0;        // sessions kept; the least recently used goes first

    bool operator==(const Genesis&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(shard, items, initial_balance, dedup_window, sessions_max); }
};

// Opens a client session; its id is session_id(shard, this entry's index).
struct OpenSession {
    template <class Archive>
    void serialize(Archive&) {}
};

// A transfer inside one shard; validated at the edge, applied in log order.
struct Transfer {
    TxnId txid;     // dedup key
    ItemId from;    // debited
    ItemId to;      // credited
    std::int64_t amount = 0;  // > 0

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, from, to, amount); }
};

// One transfer of a TransferBatch: its txid is (the batch's session, seq).
struct BatchTransfer {
    std::uint64_t seq = 0;
    ItemId from;    // debited
    ItemId to;      // credited
    std::int64_t amount = 0;  // > 0

    template <class Archive>
    void serialize(Archive& ar) { ar(seq, from, to, amount); }
};

// Intra-shard transfers of one client batch, one session, as one entry
// (docs/design.md section 6.9): applied in order, each exactly as a Transfer
// entry of its own would be, with its own exactly-once result.
struct TransferBatch {
    std::uint64_t session = 0;         // session_id() of an OpenSession entry of this shard
    std::vector<BatchTransfer> each;   // in the client's order

    template <class Archive>
    void serialize(Archive& ar) { ar(session, each); }
};

// ---- two-phase commit across shards (docs/design.md section 6.7) ----
//
// A cross-shard transfer is four to six entries: a Prepare in each of the
// two shards (run in parallel), a Decide in each, and, batched, a Forget in
// each once the other shard has committed its Decide. Query entries let a
// leader learn a transaction's fate from the other shard's log; applied
// where no Prepare of it exists, a Query fences it, so a later Prepare
// votes no.

// In the sender's shard (the one whose session numbers the txid): checks
// the session and the available balance of `from` and places a hold.
struct PrepareDebit {
    TxnId txid;
    ItemId from;        // this shard's item, debited at commit
    ItemId to;          // the receiver's item
    ShardId to_shard;   // the receiver's shard, as the coordinator routed it
    std::int64_t amount = 0;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, from, to, to_shard, amount); }
};

// In the receiver's shard: checks `to` and records a pending credit.
struct PrepareCredit {
    TxnId txid;         // its session names the sender's shard
    ItemId from;        // the sender's item
    ItemId to;          // this shard's item, credited at commit
    std::int64_t amount = 0;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, from, to, amount); }
};

// A transaction's fate at one shard. `final_elsewhere`: the other shard has
// committed its own decision (its Decide, or the fence that aborted it), so
// this shard may forget the transaction once the other shard asks it to.
enum class Fate : std::uint8_t { undecided = 0, committed = 1, aborted = 2 };

struct Decide {
    TxnId txid;
    Fate fate = Fate::aborted;  // committed or aborted
    std::uint8_t reason = 0;    // AbortReason when aborted
    bool final_elsewhere = false;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid, fate, reason, final_elsewhere); }
};

// Decide entries batched: a leader proposes the decisions of one turn as
// one entry (docs/design.md section 6.7), applied in order.
struct Decisions {
    std::vector<Decide> each;

    template <class Archive>
    void serialize(Archive& ar) { ar(each); }
};

// "What is this transaction's state here?", asked by the other shard's
// leader; answered from the state once this entry is applied.
struct Query {
    TxnId txid;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid); }
};

// Drops an undecided receiver's record that the coordinator's shard says
// can never commit (it finished the transaction long ago, so this record
// came from a late duplicate Prepare, or its session is gone): releases the
// pending credit without deciding anything, so a transaction is never
// decided both ways in one log.
struct Release {
    TxnId txid;

    template <class Archive>
    void serialize(Archive& ar) { ar(txid); }
};

// Drops decided transactions whose other shard committed its own decision.
struct Forget {
    std::vector<TxnId> txids;

    template <class Archive>
    void serialize(Archive& ar) { ar(txids); }
};

// Puts every posted balance back to the shard's Genesis balance, for test
// sets run with `fault_injection = true` (docs/design.md section 6.8).
// Applied only while the shard records no cross-shard transaction, so no
// hold, pending credit or undecided vote outlives it; otherwise it changes
// nothing and the client is told to retry. Sessions stay: a retry of a
// transfer from before the reset still gets its first result.
struct Reset {
    template <class Archive>
    void serialize(Archive&) {}
};

using Command =
    std::variant<Noop, Transfer, Genesis, OpenSession, PrepareDebit, PrepareCredit, Decide, Query, Forget, Decisions,
                 Release, Reset, TransferBatch>;

struct LogEntry {
    LogIndex index;   // position in the shard log, from 1
    Epoch epoch;      // epoch of the leader that appended it
    Command command;  // what to apply

    template <class Archive>
    void serialize(Archive& ar) { ar(index, epoch, command); }
};

// How many ordinary entries an entry weighs on the wire, where a message
// carries at most LogLimits::append_entries_max of them (sized so that many
// ordinary entries fit a frame): a TransferBatch weighs one more per four
// transfers, 32 bytes each (docs/design.md section 6.9).
inline std::size_t entry_weight(const LogEntry& e) {
    if (const auto* b = std::get_if<TransferBatch>(&e.command)) return 1 + b->each.size() / 4;
    return 1;
}

// A log entry's bytes in a batch, a message or memory, generously: a
// transfer encodes to well under this, a TransferBatch to under it per
// weight; a Genesis adds 16 bytes per item range.
inline constexpr std::size_t kEntryBytes = 128;

inline std::size_t entry_bytes(const LogEntry& e) {
    const auto* g = std::get_if<Genesis>(&e.command);
    return kEntryBytes * entry_weight(e) + (g != nullptr ? 16 * g->items.size() : 0);
}

// What a transfer came to. The names are the `reason` strings of
// docs/design.md section 4.
enum class Outcome : std::uint8_t { committed = 1, aborted = 2 };

// Why a transfer aborted; `none` for a commit.
enum class AbortReason : std::uint8_t {
    none = 0,
    insufficient_funds = 1,  // FROM's available balance (posted minus held) is below the amount
    overflow = 2,            // TO's balance with its pending credits would exceed int64
    bad_request = 3,         // the entry fails the edge checks (it should never have been logged)
    // The seq is below its session's window: this entry did not apply, and
    // whether an earlier attempt with this txid did is no longer known.
    expired = 4,
    // The session is not in the table (evicted, or never opened here):
    // nothing was applied, and the fate of earlier attempts is not known.
    session_expired = 5,
    // A cross-shard transfer whose fate was asked for before its Prepare
    // reached one of the shards: the Query fenced it, nothing moved.
    timeout = 6,
    // A cross-shard transfer whose two shards recorded different contents
    // for one txid (a client reused it): nothing moved.
    mismatch = 7,
};

const char* to_string(Outcome o);
const char* to_string(AbortReason r);

}  // namespace rl::txn
