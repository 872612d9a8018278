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
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
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

// A cross-shard transaction as one of its two shards records it
// (docs/design.md section 6.7): replicated state, from its Prepare until a
// Forget entry drops it once both shards have decided.
enum class Side : std::uint8_t { debit = 1, credit = 2 };

struct CrossTxn {
    Side side = Side::debit;
    TxnId txid;
    ItemId from;          // the sender's item
    ItemId to;            // the receiver's item
    ShardId other;        // the other shard
    std::int64_t amount = 0;
    bool voted_yes = false;                     // this shard's Prepare placed its hold or pending credit
    AbortReason vote_reason = AbortReason::none;  // why it voted no
    Fate fate = Fate::undecided;
    AbortReason fate_reason = AbortReason::none;  // when aborted
    bool final_elsewhere = false;  // credit side: the coordinator's shard has committed its decision
    LogIndex prepared_at;          // the Prepare entry's index

    bool operator==(const CrossTxn&) const = default;
};

// A Prepare entry applied: the record as it stands (a duplicate Prepare
// changes nothing and reports the existing record).
struct Prepared {
    CrossTxn txn;
    bool created = false;  // this entry created the record
    // Debit side, a no vote: the client's answer, as the session table now holds it.
    std::optional<ApplyResult> result;

    bool operator==(const Prepared&) const = default;
};

// A Decide entry applied. `known`: a record was there; `result`: the debit
// side's answer for the client, as the session table now holds it.
struct Decided {
    TxnId txid;
    bool known = false;
    CrossTxn txn;                       // when known, after the decision
    std::optional<ApplyResult> result;  // debit side
    bool conflicting = false;           // the record was already decided the other way (a protocol bug)

    bool operator==(const Decided&) const = default;
};

// A Decisions entry applied: one Decided per Decide, in order.
struct DecidedMany {
    std::vector<Decided> each;

    bool operator==(const DecidedMany&) const = default;
};

// What a Query entry found, for the shard that asked.
enum class QueryState : std::uint8_t {
    absent = 0,     // no record: this Query fenced the transaction here
    voted_yes = 1,  // prepared with a yes vote, undecided
    voted_no = 2,   // prepared with a no vote (or fenced by a Query), undecided
    committed = 3,  // decided here
    aborted = 4,
    // No record, and settled before this Query: the sender's session table
    // holds its result (the reason: none for committed), or can no longer
    // tell (expired, session_expired). A receiver's undecided record of it
    // is a late duplicate and is released, not decided.
    finished = 5,
};
const char* to_string(QueryState s);

struct Answered {
    TxnId txid;
    QueryState state = QueryState::absent;
    AbortReason reason = AbortReason::none;  // voted_no or aborted
    std::optional<CrossTxn> txn;             // the record, when there is one
    // The debit side's fence, or the session table's answer, when there is
    // no record: the client's result for this txid, if the table holds one.
    std::optional<ApplyResult> result;
    bool fenced = false;  // this Query wrote the fence (state absent)

    bool operator==(const Answered&) const = default;
};

// A Reset entry applied: `done` when the balances went back to the Genesis
// balance; otherwise nothing changed, because the shard still recorded
// `cross_records` cross-shard transactions (or was not created yet).
struct ResetApplied {
    bool done = false;
    std::uint64_t cross_records = 0;

    bool operator==(const ResetApplied&) const = default;
};

// A TransferBatch entry applied: one result per transfer, in order.
struct BatchApplied {
    std::vector<ApplyResult> each;

    bool operator==(const BatchApplied&) const = default;
};

// What applying one entry produced: nothing (Noop, Genesis, Forget), a
// transfer's result, a new session, a step of a cross-shard transaction, or
// a reset.
// A PrepareDebit that the session table settles at once (the txid is known,
// expired, or its session is) yields an ApplyResult and creates no record.
using Applied =
    std::variant<std::monostate, ApplyResult, SessionOpened, Prepared, Decided, Answered, DecidedMany, ResetApplied,
                 BatchApplied>;

// The fate the two votes of a cross-shard transaction make: committed
// exactly when both Prepares voted yes (docs/design.md section 6.7).
// `here` is this shard's record, `there` what the other shard answered
// after applying a Query (so `there` can no longer change to a yes).
Fate fate_from(const CrossTxn& here, QueryState there);

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
    // items, both in this shard, a session of this shard. nullopt when valid.
    std::optional<EdgeError> validate(const Transfer& t) const;
    // The same for a cross-shard transfer at the coordinator: `from` here,
    // `to` (of another shard) only checked to differ from it.
    std::optional<EdgeError> validate(const PrepareDebit& p) const;
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
    std::int64_t balance(ItemId item) const;  // posted
    std::int64_t held(ItemId item) const;     // by undecided debits; available = balance - held
    std::int64_t pending(ItemId item) const;  // undecided credits
    // The sum of posted balances over the shard's items; intra-shard
    // transfers conserve it, cross-shard commits move it between shards.
    // Throws std::overflow_error if it does not fit in int64.
    std::int64_t total() const;
    std::int64_t held_total() const;
    std::int64_t pending_total() const;

    // Cross-shard transactions this shard still records, by txid.
    // In no particular order; cross_txns_by_id() for an order that is the
    // same on every replica (snapshots, audits).
    const std::unordered_map<TxnId, CrossTxn, TxnIdHash>& cross_txns() const { return cross_; }
    std::vector<const CrossTxn*> cross_txns_by_id() const;
    const CrossTxn* cross_txn(TxnId txid) const;
    LogIndex applied_index() const { return applied_index_; }
    Epoch applied_epoch() const { return applied_epoch_; }
    std::size_t sessions() const { return sessions_.size(); }
    bool has_session(std::uint64_t session) const { return sessions_.contains(session); }

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
        std::deque<SeqResult> results;    // sorted by seq, at most dedup_window, all >= floor_seq
    };

    // What is wrong with a transfer, in the order the edge reports it.
    enum class Defect { none, not_created, bad_amount, same_item, from_unknown, to_unknown, foreign_session };

    Defect defect(const Transfer& t) const;
    static EdgeError amount_error(std::int64_t amount);
    EdgeError session_error(TxnId txid, ItemId from) const;
    const std::int64_t* find(ItemId item) const;
    std::int64_t* find(ItemId item);
    void create(const Genesis& g);
    ApplyResult apply_transfer(const Transfer& t, LogIndex index);
    BatchApplied apply_batch(const TransferBatch& b, LogIndex index);
    ApplyResult settle_transfer(const Transfer& t, SessionWindow& w);
    SessionOpened open_session(LogIndex index);
    AbortReason execute(const Transfer& t);
    void record(const ApplyResult& result, SessionWindow& w);
    void touch(std::uint64_t session, SessionWindow& w, LogIndex index);
    static std::optional<ApplyResult> known(const SessionWindow& w, TxnId txid);
    void evict_least_recently_used();
    std::vector<std::pair<std::uint64_t, const SessionWindow*>> sessions_by_id() const;
    Applied prepare_debit(const PrepareDebit& p, LogIndex index);
    Applied prepare_credit(const PrepareCredit& p, LogIndex index);
    Decided decide(const Decide& d);
    Answered query(const Query& q, LogIndex index);
    void forget(const Forget& f);
    void release(const Release& r);
    ResetApplied reset();
    static bool settle_no_vote(CrossTxn& t);
    void hold(const CrossTxn& t, std::int64_t sign);
    SessionWindow* session_of(TxnId txid);
    void add_restored_cross(CrossTxn t, const std::optional<TxnId>& previous);

    template <class Archive>
    void write_snapshot(Archive& ar) const;
    template <class Archive>
    void read_balances(Archive& ar);
    template <class Archive>
    void read_sessions(Archive& ar);
    template <class Archive>
    void read_cross(Archive& ar);
    void add_restored_session(std::uint64_t session, SessionWindow window, const std::optional<std::uint64_t>& previous);

    ShardId shard_;
    std::optional<Genesis> genesis_;
    std::vector<RangeBalances> ranges_;  // sorted and disjoint, as Genesis requires
    LogIndex applied_index_;
    Epoch applied_epoch_;
    std::unordered_map<std::uint64_t, SessionWindow> sessions_;  // by id; snapshots write them sorted
    // Every use of a session, (index, id), in log order: the eviction order.
    // A use whose index is no longer its session's last_used is stale and
    // skipped. Derived, so rebuilt, not stored.
    std::deque<std::pair<LogIndex, std::uint64_t>> uses_;
    std::unordered_map<TxnId, CrossTxn, TxnIdHash> cross_;  // cross-shard transactions, both sides
    // Per item: held by undecided debits, pending from undecided credits.
    // Derived from cross_, so rebuilt, not stored.
    struct Reserved {
        std::int64_t held = 0;
        std::int64_t pending = 0;
    };
    std::map<ItemId, Reserved> reserved_;
};

// True when `g` can create a shard: ranges sorted, disjoint and non-empty,
// a non-negative balance, limits of at least 1. Its first problem, if any.
std::optional<std::string> genesis_problem(const Genesis& g);

}  // namespace rl::txn
