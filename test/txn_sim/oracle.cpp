#include "oracle.hpp"

#include "failure.hpp"

#include <string>

namespace rl::txn::sim {

Oracle::Oracle(std::uint64_t items, std::int64_t initial_balance)
    : balances_{std::vector<std::int64_t>(items, initial_balance)},
      total_(static_cast<std::int64_t>(items) * initial_balance) {}

void Oracle::append(const LogEntry& e) {
    if (e.index.value != log_.size() + 1) throw SimFailure("oracle: committed entries out of order");
    std::vector<std::int64_t> next = balances_.back();
    if (const auto* t = std::get_if<Transfer>(&e.command); t && !results_.contains(t->txid)) {
        auto& from = next.at(t->from.value - 1);
        auto& to = next.at(t->to.value - 1);
        Result r{e.index, Outcome::committed, AbortReason::none};
        if (from < t->amount) {
            r = Result{e.index, Outcome::aborted, AbortReason::insufficient_funds};
        } else {
            from -= t->amount;
            to += t->amount;
            ++moved_;
        }
        results_.emplace(t->txid, r);
    }
    log_.push_back(e);
    balances_.push_back(std::move(next));
}

const Oracle::Result* Oracle::result(TxnId txid) const {
    auto it = results_.find(txid);
    return it == results_.end() ? nullptr : &it->second;
}

}  // namespace rl::txn::sim
