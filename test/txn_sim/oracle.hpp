// The committed history of the simulated shard and an independent model of
// what it must produce: the log entries known committed, in order, and the
// balances after every prefix, computed here without txn::ShardState so a
// bug there cannot hide itself. Exactly-once is the model's rule: the first
// entry of a txid decides its result, a later one changes nothing.
#pragma once

#include "txn/log_entry.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <map>
#include <vector>

namespace rl::txn::sim {

class Oracle {
public:
    Oracle(std::uint64_t items, std::int64_t initial_balance);

    // The next committed entry (index size() + 1); throws SimFailure for any other.
    void append(const LogEntry& e);

    LogIndex size() const { return LogIndex{log_.size()}; }
    const LogEntry& at(LogIndex index) const { return log_.at(index.value - 1); }
    // Balances after the first `prefix` committed entries, item 1 at [0].
    const std::vector<std::int64_t>& balances(LogIndex prefix) const { return balances_.at(prefix.value); }
    std::int64_t total() const { return total_; }  // every prefix's sum

    struct Result {
        LogIndex index;          // the first entry of the txid
        Outcome outcome;
        AbortReason reason;
    };
    // The txid's result if a committed entry carried it.
    const Result* result(TxnId txid) const;
    std::uint64_t transfers_moved() const { return moved_; }

private:
    std::vector<LogEntry> log_;
    std::vector<std::vector<std::int64_t>> balances_;  // [k]: after k entries
    std::map<TxnId, Result> results_;
    std::int64_t total_;
    std::uint64_t moved_ = 0;
};

}  // namespace rl::txn::sim
