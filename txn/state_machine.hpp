// The deterministic state machine of one shard (docs/design.md section 6): the
// balances of the shard's items and the exactly-once dedup table, changed
// only by apply() in log order. Every replica that applies the same entries
// from the same start holds byte-identical state (snapshot() compares them),
// so nothing here reads a clock, a random source or hash-table order.
//
// validate() is the edge check the node runs before logging a request;
// apply() repeats it defensively, because whatever sits in the log must be
// applied without ever stopping the process (docs/design.md section 9, habit 6).
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"
#include "txn/log_entry.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace rl::txn {

enum class Outcome : std::uint8_t { committed = 1, aborted = 2 };

// Why a transfer aborted; `none` for a commit. The names are the `reason`
// strings of docs/design.md section 4.
enum class AbortReason : std::uint8_t {
    none = 0,
    insufficient_funds = 1,  // FROM held less than the amount
    overflow = 2,            // TO's balance would exceed int64
    bad_request = 3,         // the entry fails the edge checks (it should never have been logged)
    // The seq is below its client's dedup window: this entry did not apply,
    // and whether an earlier attempt with this txid did is no longer known.
    expired = 4,
};

const char* to_string(Outcome o);
const char* to_string(AbortReason r);

// What a client is told about its transfer; the same answer for every retry.
struct ApplyResult {
    Outcome outcome = Outcome::aborted;
    AbortReason reason = AbortReason::none;  // none iff committed
    TxnId txid;                              // the transfer's id

    bool operator==(const ApplyResult&) const = default;
};

// A request refused at the edge, before it is logged; the node answers it as
// docs/design.md section 4's error reply.
enum class EdgeErrorCode : std::uint8_t { bad_request, unknown_item };
const char* to_string(EdgeErrorCode c);

struct EdgeError {
    EdgeErrorCode code;
    std::string message;  // one line naming the offending item or amount
};

// Bounds of the dedup table (docs/design.md section 9, habit 7). Every replica of a shard must
// use the same values, because eviction is part of the replicated state.
// An evicted client is forgotten: a retry of its txids would apply as new.
// Evicting the least recently applied client first makes that need
// dedup_clients_max other clients to apply after its last request.
struct DedupLimits {
    std::size_t dedup_window = 64;          // results kept per client (its highest seqs)
    std::size_t dedup_clients_max = 4000;   // clients kept; the least recently applied one goes first
};

class ShardState {
public:
    // Every item of `shard` starts at `initial_balance`. Throws
    // std::invalid_argument for a negative balance or a zero limit.
    ShardState(const config::ShardConfig& shard, std::int64_t initial_balance, DedupLimits limits = {});

    // Rebuilds the state snapshot() wrote for the same shard. Throws
    // std::runtime_error naming the problem when the bytes are truncated,
    // corrupt, for other items, or exceed `limits`. Beyond the balances the
    // config sizes, it allocates at most a small multiple of bytes.size(),
    // whatever sizes the bytes claim.
    static ShardState restore(const config::ShardConfig& shard, std::span<const std::uint8_t> bytes,
                              DedupLimits limits = {});

    // The edge checks: a positive amount, two distinct items, both in this
    // shard (cross-shard transfers will come with 2PC). nullopt when valid.
    std::optional<EdgeError> validate(const Transfer& t) const;

    // Applies the next log entry; `entry.index` must be applied_index() + 1
    // and its epoch no lower than applied_epoch() (asserted: the log hands
    // entries over in order). Returns the transfer's result, nullopt for a
    // Noop. Never fails on the command's content.
    std::optional<ApplyResult> apply(const LogEntry& entry);

    // The recorded result of `txid`, so the node can answer a retry without
    // logging it again: the first result if applied and still in its
    // client's window, `expired` if below the window, nullopt if never
    // applied (or its client was evicted).
    std::optional<ApplyResult> lookup(TxnId txid) const;

    // Precondition (asserted): `item` is in this shard.
    std::int64_t balance(ItemId item) const;
    // The sum over the shard's items; every apply conserves it. Throws
    // std::overflow_error if it does not fit in int64 (only possible when
    // the configured balances are near the int64 limit).
    std::int64_t total() const;
    LogIndex applied_index() const { return applied_index_; }
    Epoch applied_epoch() const { return applied_epoch_; }

    // Canonical cereal PortableBinary bytes of the whole replicated state:
    // equal states give equal bytes, and restore() then snapshot() gives the
    // same bytes back.
    std::vector<std::uint8_t> snapshot() const;

private:
    // The balances of one configured range, item `range.first + i` at [i].
    struct RangeBalances {
        config::ItemRange range;
        std::vector<std::int64_t> balances;
    };

    // One remembered result; the txid's client is the key of its window.
    struct SeqResult {
        std::uint64_t seq = 0;
        Outcome outcome = Outcome::aborted;
        AbortReason reason = AbortReason::none;
    };

    // The dedup state of one client.
    struct ClientWindow {
        LogIndex last_applied;            // index of its latest recorded result; orders eviction
        std::uint64_t floor_seq = 0;      // every seq below this is expired
        std::vector<SeqResult> results;   // sorted by seq, 1..dedup_window entries, all >= floor_seq
    };

    // What is wrong with a transfer, in the order the edge reports it.
    enum class Defect { none, bad_amount, same_item, from_unknown, to_unknown };

    Defect defect(const Transfer& t) const;
    const std::int64_t* find(ItemId item) const;
    std::int64_t* find(ItemId item);
    ApplyResult apply_transfer(const Transfer& t, LogIndex index);
    AbortReason execute(const Transfer& t);
    void record(const ApplyResult& result, LogIndex index);
    void evict_least_recent_client();

    template <class Archive>
    void write_snapshot(Archive& ar) const;
    template <class Archive>
    void read_balances(Archive& ar);
    template <class Archive>
    void read_clients(Archive& ar);
    void add_restored_client(std::uint64_t client_id, ClientWindow window);

    ShardId shard_;
    DedupLimits limits_;
    std::vector<RangeBalances> ranges_;  // sorted and disjoint, as the config guarantees
    LogIndex applied_index_;
    Epoch applied_epoch_;
    std::map<std::uint64_t, ClientWindow> clients_;          // by client_id; ordered so snapshots are canonical
    std::map<LogIndex, std::uint64_t> clients_by_last_applied_;  // derived index for eviction; not in snapshots
};

}  // namespace rl::txn
