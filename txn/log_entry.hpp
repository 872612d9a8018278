// What the replicated shard log holds. Every write of a shard is one entry;
// entries are applied in index order by every replica. These structs are
// both the WAL's record payload and the replication messages' content.
#pragma once

#include "config/types.hpp"

#include <cereal/types/variant.hpp>

#include <compare>
#include <cstdint>
#include <variant>

namespace rl::txn {

// A client's transaction id: (client_id, seq). Retries reuse it, so the
// replicated dedup table can answer a retry with the first result.
struct TxnId {
    std::uint64_t client_id = 0;  // random per client process (or given)
    std::uint64_t seq = 0;        // increases per new request of that client

    auto operator<=>(const TxnId&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(client_id, seq); }
};

// Appended by a new leader in its epoch before it serves (commits the
// previous epochs' entries under Raft's current-epoch rule).
struct Noop {
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

using Command = std::variant<Noop, Transfer>;

struct LogEntry {
    LogIndex index;   // position in the shard log, from 1
    Epoch epoch;      // epoch of the leader that appended it
    Command command;  // what to apply

    template <class Archive>
    void serialize(Archive& ar) { ar(index, epoch, command); }
};

}  // namespace rl::txn
