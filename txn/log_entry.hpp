// What the replicated shard log holds. Every write of a shard is one entry;
// entries are applied in index order by every replica. These structs are
// both the WAL's record payload and the replication messages' content.
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"

#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <compare>
#include <cstdint>
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

using Command = std::variant<Noop, Transfer, Genesis, OpenSession>;

struct LogEntry {
    LogIndex index;   // position in the shard log, from 1
    Epoch epoch;      // epoch of the leader that appended it
    Command command;  // what to apply

    template <class Archive>
    void serialize(Archive& ar) { ar(index, epoch, command); }
};

// What a transfer came to. The names are the `reason` strings of
// docs/design.md section 4.
enum class Outcome : std::uint8_t { committed = 1, aborted = 2 };

// Why a transfer aborted; `none` for a commit.
enum class AbortReason : std::uint8_t {
    none = 0,
    insufficient_funds = 1,  // FROM held less than the amount
    overflow = 2,            // TO's balance would exceed int64
    bad_request = 3,         // the entry fails the edge checks (it should never have been logged)
    // The seq is below its session's window: this entry did not apply, and
    // whether an earlier attempt with this txid did is no longer known.
    expired = 4,
    // The session is not in the table (evicted, or never opened here):
    // nothing was applied, and the fate of earlier attempts is not known.
    session_expired = 5,
};

const char* to_string(Outcome o);
const char* to_string(AbortReason r);

}  // namespace rl::txn
