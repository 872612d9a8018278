// What the bank workload records (tools/bank): every operation a client
// ran, with its times and what the client learned of it, and what the
// cluster held once it was quiet. The checker (check.hpp) reads only these
// plain values, so it is tested without a cluster.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rl::bank {

// What the client learned of a transfer. `unknown`: it never got a
// TransferReply that settles the txid (every attempt timed out or lost its
// connection, or a retry was told the shard can no longer tell), so the
// transfer may or may not have been applied.
enum class Outcome : std::uint8_t { committed, aborted, unknown };

const char* outcome_name(Outcome outcome);

struct Transfer {
    std::string txid;        // "SESSION:SEQ", the same on every attempt
    std::uint64_t from = 0;  // debited item
    std::uint64_t to = 0;    // credited item
    std::int64_t amount = 0;
    bool cross = false;      // FROM and TO in different shards (two-phase commit)
    Outcome outcome = Outcome::unknown;
    std::string reason;      // abort reason, or why the outcome is unknown
    std::int64_t start_ms = 0;  // since the run's start
    std::int64_t end_ms = 0;
    std::uint32_t attempts = 0;  // requests sent with this txid
};

// A linearizable `balance ITEM` through the item's shard leader.
struct Read {
    std::uint64_t item = 0;
    bool ok = false;         // false: no answer before the operation's deadline
    std::int64_t balance = 0;  // posted
    std::int64_t held = 0;     // held by undecided cross-shard debits
    std::int64_t pending = 0;  // undecided cross-shard credits
    std::int64_t start_ms = 0;
    std::int64_t end_ms = 0;
    std::string error;       // when !ok
};

// One item as one replica's applied state holds it (`balance --local`).
struct ItemState {
    std::int64_t balance = 0;
    std::int64_t held = 0;
    std::int64_t pending = 0;
    bool operator==(const ItemState&) const = default;
};

// One node's applied state at quiescence: every item of its shard.
struct Replica {
    std::uint64_t node = 0;
    std::uint64_t applied_index = 0;
    std::map<std::uint64_t, ItemState> items;
};

struct ShardReplicas {
    std::uint64_t shard = 0;
    std::vector<Replica> replicas;  // every node of the shard, or the ones that answered
    std::uint64_t members = 0;      // nodes the shard has
};

// `rlcat --config F audit` run at quiescence.
struct AuditRun {
    bool ran = false;
    int exit_code = -1;
    std::string output;
};

struct History {
    std::map<std::uint64_t, std::int64_t> initial;  // every item's balance at the start
    std::vector<Transfer> transfers;
    std::vector<Read> reads;
    std::vector<ShardReplicas> shards;  // quiescent replicas, one entry per shard
    AuditRun audit;
};

}  // namespace rl::bank
