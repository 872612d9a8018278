// The deterministic state machine of one shard (docs/design.md section 6):
// the balances of the shard's items and the table of client sessions that
// makes transfers exactly-once, changed only by apply() in log order.
//
// Replicated state is a function of the log alone (docs/design.md section
// 9, habit 11): the state starts empty and is created by the first Genesis
// entry, which fixes the items, the initial balance and the session limits
// for every replica; no node's INI changes what applying an entry does.
// Every replica that applies the same entries holds byte-identical state
// (snapshot() compares them), so nothing here reads a clock, a random source
// or hash-table order.
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
#include <variant>
#include <vector>

namespace rl::txn {

// What a client is told about its transfer; the same answer for every retry.
struct ApplyResult {
    Outcome outcome = Outcome::aborted;
    AbortReason reason = AbortReason::none;  // none iff committed
    TxnId txid;                              // the transfer's id

    bool operator==(const ApplyResult&) const = default;
};

// An OpenSession entry applied: the new session's id.
struct SessionOpened {
    std::uint64_t session = 0;

    bool operator==(const SessionOpened&) const = default;
};

// What applying one entry produced: nothing (Noop, Genesis), a transfer's
// result, or a new session.
using Applied = std::variant<std::monostate, ApplyResult, SessionOpened>;

// A request refused at the edge, before it is logged; the node answers it as
// docs/design.md section 4's error reply.
enum class EdgeErrorCode : std::uint8_t { bad_request, unknown_item, unavailable };
const char* to_string(EdgeErrorCode c);

struct EdgeError {
    EdgeErrorCode code;
    std::string message;  // one line naming the offending item, amount or session
};

class ShardState {
public:
    // An empty state of `shard`: no items until a Genesis entry applies.
    explicit ShardState(ShardId shard);

    // The Genesis entry a leader proposes for `shard` from its INI.
    static Genesis genesis_of(const config::ShardConfig& shard, const config::ClusterConfig& cluster);

    // Rebuilds the state snapshot() wrote for `shard`. Throws
    // std::runtime_error naming the problem when the bytes are truncated,
    // corrupt, or of another shard or format. It allocates at most a small
    // multiple of bytes.size(), whatever sizes the bytes claim.
    static ShardState restore(ShardId shard, std::span<const std::uint8_t> bytes);

    bool created() const { return genesis_.has_value(); }
    // The values the shard was created with; nullopt before its Genesis.
    const std::optional<Genesis>& genesis() const { return genesis_; }

    // The edge checks: the shard exists, a positive amount, two distinct
    // items, both in this shard (cross-shard transfers will come with 2PC),
    // a session of this shard. nullopt when valid.
    std::optional<EdgeError> validate(const Transfer& t) const;
    // `item` is one of this shard's items (and the shard exists).
    std::optional<EdgeError> check_item(ItemId item) const;

    // Applies the next log entry; `entry.index` must be applied_index() + 1
    // and its epoch no lower than applied_epoch() (asserted: the log hands
    // entries over in order). Never fails on the command's content.
    Applied apply(const LogEntry& entry);

    // The result the table holds for `txid`, so the node can answer a retry
    // without logging it again: the first result if applied and still in
    // its session's window, `expired` below the window, nullopt otherwise
    // (never applied, or its session is unknown: apply() decides those).
    std::optional<ApplyResult> lookup(TxnId txid) const;

    // Precondition (asserted): `item` is in this shard.
    std::int64_t balance(ItemId item) const;
    // The sum over the shard's items; every apply conserves it. Throws
    // std::overflow_error if it does not fit in int64.
    std::int64_t total() const;
    LogIndex applied_index() const { return applied_index_; }
    Epoch applied_epoch() const { return applied_epoch_; }
    std::size_t sessions() const { return sessions_.size(); }

    // Canonical cereal PortableBinary bytes of the whole replicated state:
    // equal states give equal bytes, and restore() then snapshot() gives the
    // same bytes back.
    std::vector<std::uint8_t> snapshot() const;

private:
    // The balances of one range, item `range.first + i` at [i].
    struct RangeBalances {
        config::ItemRange range;
        std::vector<std::int64_t> balances;
    };

    // One remembered result.
    struct SeqResult {
        std::uint64_t seq = 0;
        Outcome outcome = Outcome::aborted;
        AbortReason reason = AbortReason::none;
    };

    // The dedup state of one session.
    struct SessionWindow {
        LogIndex last_used;               // index of its latest entry; orders eviction
        std::uint64_t floor_seq = 0;      // every seq below this is expired
        std::vector<SeqResult> results;   // sorted by seq, at most dedup_window, all >= floor_seq
    };

    // What is wrong with a transfer, in the order the edge reports it.
    enum class Defect { none, not_created, bad_amount, same_item, from_unknown, to_unknown, foreign_session };

    Defect defect(const Transfer& t) const;
    const std::int64_t* find(ItemId item) const;
    std::int64_t* find(ItemId item);
    void create(const Genesis& g);
    ApplyResult apply_transfer(const Transfer& t, LogIndex index);
    SessionOpened open_session(LogIndex index);
    AbortReason execute(const Transfer& t);
    void record(const ApplyResult& result, SessionWindow& w);
    void touch(std::uint64_t session, SessionWindow& w, LogIndex index);

    template <class Archive>
    void write_snapshot(Archive& ar) const;
    template <class Archive>
    void read_balances(Archive& ar);
    template <class Archive>
    void read_sessions(Archive& ar);
    void add_restored_session(std::uint64_t session, SessionWindow window);

    ShardId shard_;
    std::optional<Genesis> genesis_;
    std::vector<RangeBalances> ranges_;  // sorted and disjoint, as Genesis requires
    LogIndex applied_index_;
    Epoch applied_epoch_;
    std::map<std::uint64_t, SessionWindow> sessions_;         // by id; ordered so snapshots are canonical
    std::map<LogIndex, std::uint64_t> sessions_by_last_used_;  // derived index for eviction; not in snapshots
};

// True when `g` can create a shard: ranges sorted, disjoint and non-empty,
// a non-negative balance, limits of at least 1. Its first problem, if any.
std::optional<std::string> genesis_problem(const Genesis& g);

}  // namespace rl::txn
