// The committed history of one simulated shard and an independent model of
// what it must produce: the log entries known committed, in order, and the
// books (posted balances, holds, pending credits) after every prefix,
// computed here without txn::ShardState so a bug there cannot hide itself.
// The model follows the log alone, as every replica must: the first Genesis
// creates the shard with its values, and client sessions live in a table of
// at most sessions_max, the least recently used forgotten first, each
// remembering its last dedup_window results.
//
// Cross-shard transactions (docs/design.md section 6.7) are modelled from
// their entries: a PrepareDebit or PrepareCredit votes and reserves (a hold
// on the debited item, a pending credit on the credited one), a Decide
// posts or releases, a Query fences, a Forget drops decided records. On top
// of these rules the model checks the properties they exist for: no txid
// ever moves money twice on a side, however old its retry; no record is
// decided one way and then the other; no hold or pending credit is released
// twice. Every decision it makes is handed to the simulator, which matches
// the two shards of each transaction.
#pragma once

#include "txn/log_entry.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace rl::txn::sim {

class Oracle {
public:
    explicit Oracle(ShardId shard = ShardId{1}) : shard_(shard) {}

    // The next committed entry (index size() + 1); throws SimFailure for any
    // other, or when the rules would break one of the properties above.
    void append(const LogEntry& e);

    ShardId shard() const { return shard_; }
    LogIndex size() const { return LogIndex{log_.size()}; }
    const LogEntry& at(LogIndex index) const { return log_.at(index.value - 1); }
    bool created() const { return genesis_.has_value(); }
    const std::optional<Genesis>& genesis() const { return genesis_; }
    // The shard holds `item` (false before the Genesis).
    bool holds(ItemId item) const;

    // What the first `prefix` committed entries leave, item first_item() at
    // [0]; empty before the Genesis.
    struct Books {
        std::vector<std::int64_t> posted;
        std::vector<std::int64_t> held;     // by undecided debits with a yes vote
        std::vector<std::int64_t> pending;  // by undecided credits with a yes vote
    };
    const Books& books(LogIndex prefix) const { return books_.at(prefix.value); }
    // Of one item of this shard after `prefix` entries (the shard created by then).
    std::int64_t posted(LogIndex prefix, ItemId item) const { return books(prefix).posted.at(slot(item)); }
    std::int64_t held(LogIndex prefix, ItemId item) const { return books(prefix).held.at(slot(item)); }
    std::int64_t pending(LogIndex prefix, ItemId item) const { return books(prefix).pending.at(slot(item)); }
    // Sum of posted balances after `prefix` entries; 0 before the Genesis.
    std::int64_t total(LogIndex prefix) const { return totals_.at(prefix.value); }
    std::int64_t total() const { return totals_.back(); }
    // What cross-shard postings through `prefix` moved out of this shard:
    // + amount per committed debit, - amount per committed credit.
    std::int64_t sent_away(LogIndex prefix) const { return sent_away_.at(prefix.value); }

    struct Result {
        LogIndex index;  // the entry that decided it
        Outcome outcome;
        AbortReason reason;
    };
    // The result of the first entry of `txid` that was executed (an
    // intra-shard transfer committed or aborted, a cross-shard transfer's
    // no vote or Decide, or the Query that fenced it): the only answer a
    // client may get besides `expired` and `session_expired`.
    const Result* result(TxnId txid) const;
    // The session the OpenSession entry at `index` opened, if it did.
    std::optional<std::uint64_t> session_opened_at(LogIndex index) const;
    bool session_known(std::uint64_t session) const { return sessions_.contains(session); }
    std::uint64_t transfers_moved() const { return moved_.size(); }
    std::uint64_t sessions_evicted() const { return evicted_; }
    std::uint64_t session_expired_answers() const { return session_expired_; }

    // ---- cross-shard transactions

    struct Record {
        Side side = Side::debit;
        TxnId txid;
        ItemId from;
        ItemId to;
        ShardId other;
        std::int64_t amount = 0;
        bool voted_yes = false;
        AbortReason vote_reason = AbortReason::none;
        Fate fate = Fate::undecided;
        AbortReason fate_reason = AbortReason::none;
        bool final_elsewhere = false;
        LogIndex prepared_at;
    };
    // The records the shard keeps now (after size() entries).
    const std::map<TxnId, Record>& records() const { return records_; }
    const Record* record(TxnId txid) const;

    // A fate this shard's log gave a transaction: a no vote, a Decide, a
    // fence (a Query that found nothing, on either side).
    struct Decision {
        LogIndex index;
        TxnId txid;
        Side side = Side::debit;
        Fate fate = Fate::aborted;
        AbortReason reason = AbortReason::none;
        ItemId from;
        ItemId to;
        std::int64_t amount = 0;
        bool fence = false;
    };
    // The decisions of the entries appended since the last call.
    std::vector<Decision> take_decisions() { return std::exchange(decisions_, {}); }

    std::uint64_t cross_prepared() const { return prepared_; }
    std::uint64_t cross_committed() const { return committed_; }
    std::uint64_t cross_fences() const { return fences_; }
    std::uint64_t cross_forgotten() const { return forgotten_; }

private:
    struct Session {
        LogIndex last_used;
        std::uint64_t floor = 0;                  // seqs below are expired
        std::map<std::uint64_t, Result> results;  // at most dedup_window, the highest seqs
    };

    std::size_t slot(ItemId item) const { return item.value - first_item_.value; }
    Result transfer(const Transfer& t, LogIndex index, Books& b);
    void open_session(LogIndex index);
    Session* touch(TxnId txid, LogIndex index);
    std::optional<Result> known(const Session& s, TxnId txid, LogIndex index) const;
    void remember(Session& s, TxnId txid, const Result& r);
    void prepare_debit(const PrepareDebit& p, LogIndex index, Books& b);
    void prepare_credit(const PrepareCredit& p, LogIndex index, Books& b);
    void decide(const Decide& d, LogIndex index, Books& b);
    void query(const Query& q, LogIndex index);
    void forget(const Forget& f);
    void release(const Release& r, Books& b);
    void reset(Books& b);
    void reserve(const Record& r, Books& b, std::int64_t sign);
    void vote(Record& r, bool yes, AbortReason no_reason, LogIndex index, Books& b);
    void decided(const Record& r, LogIndex index, bool fence);
    [[noreturn]] void fail(const std::string& what, LogIndex index) const;

    ShardId shard_;
    ItemId first_item_;
    ItemId last_item_;
    std::vector<LogEntry> log_;
    std::optional<Genesis> genesis_;
    std::vector<Books> books_{Books{}};               // [k]: after k entries
    std::vector<std::int64_t> totals_{0};             // [k]: sum of posted after k entries
    std::vector<std::int64_t> sent_away_{0};          // [k]: cross-shard postings through k
    std::map<std::uint64_t, Session> sessions_;
    std::map<LogIndex, std::uint64_t> opened_;  // OpenSession index -> session
    std::map<TxnId, Result> first_;              // first executed result per txid
    std::set<TxnId> moved_;                      // intra-shard txids that moved money
    std::set<TxnId> posted_;                     // cross-shard txids this shard posted (its side)
    std::map<TxnId, Record> records_;
    std::vector<Decision> decisions_;
    std::uint64_t evicted_ = 0;
    std::uint64_t session_expired_ = 0;
    std::uint64_t prepared_ = 0;
    std::uint64_t committed_ = 0;
    std::uint64_t fences_ = 0;
    std::uint64_t forgotten_ = 0;
};

// "session:seq"
std::string txid_str(TxnId t);

}  // namespace rl::txn::sim
