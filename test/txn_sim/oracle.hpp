// The committed history of the simulated shard and an independent model of
// what it must produce: the log entries known committed, in order, and the
// balances after every prefix, computed here without txn::ShardState so a
// bug there cannot hide itself. The model follows the log alone, as every
// replica must: the first Genesis creates the shard with its values, and
// client sessions live in a table of at most sessions_max, the least
// recently used forgotten first, each remembering its last dedup_window
// results. On top of that rule the model checks the property the rule
// exists for: no txid ever moves money twice, however old its retry.
#pragma once

#include "txn/log_entry.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace rl::txn::sim {

class Oracle {
public:
    // The next committed entry (index size() + 1); throws SimFailure for any
    // other, or when the session rule would apply a txid a second time.
    void append(const LogEntry& e);

    LogIndex size() const { return LogIndex{log_.size()}; }
    const LogEntry& at(LogIndex index) const { return log_.at(index.value - 1); }
    bool created() const { return genesis_.has_value(); }
    const std::optional<Genesis>& genesis() const { return genesis_; }
    // Balances after the first `prefix` committed entries, item 1 at [0];
    // empty before the Genesis.
    const std::vector<std::int64_t>& balances(LogIndex prefix) const { return balances_.at(prefix.value); }
    std::int64_t total() const;

    struct Result {
        LogIndex index;  // the entry that decided it
        Outcome outcome;
        AbortReason reason;
    };
    // The result of the first entry of `txid` that was executed (committed
    // or aborted for its funds): the only answer a client may get besides
    // `expired` and `session_expired`.
    const Result* result(TxnId txid) const;
    // The session the OpenSession entry at `index` opened, if it did.
    std::optional<std::uint64_t> session_opened_at(LogIndex index) const;
    bool session_known(std::uint64_t session) const { return sessions_.contains(session); }
    std::uint64_t transfers_moved() const { return moved_.size(); }
    std::uint64_t sessions_evicted() const { return evicted_; }
    std::uint64_t session_expired_answers() const { return session_expired_; }

private:
    struct Session {
        LogIndex last_used;
        std::uint64_t floor = 0;                  // seqs below are expired
        std::map<std::uint64_t, Result> results;  // at most dedup_window, the highest seqs
    };

    Result transfer(const Transfer& t, LogIndex index, std::vector<std::int64_t>& balances);
    void open_session(LogIndex index);

    std::vector<LogEntry> log_;
    std::optional<Genesis> genesis_;
    std::vector<std::vector<std::int64_t>> balances_{{}};  // [k]: after k entries
    std::map<std::uint64_t, Session> sessions_;
    std::map<LogIndex, std::uint64_t> opened_;  // OpenSession index -> session
    std::map<TxnId, Result> first_;              // first executed result per txid
    std::set<TxnId> moved_;                      // txids that moved money
    std::uint64_t evicted_ = 0;
    std::uint64_t session_expired_ = 0;
};

}  // namespace rl::txn::sim
