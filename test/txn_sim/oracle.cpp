#include "oracle.hpp"

#include "failure.hpp"

#include <algorithm>
#include <numeric>
#include <string>

namespace rl::txn::sim {

std::int64_t Oracle::total() const {
    const auto& b = balances_.back();
    return std::accumulate(b.begin(), b.end(), std::int64_t{0});
}

void Oracle::append(const LogEntry& e) {
    if (e.index.value != log_.size() + 1) throw SimFailure("oracle: committed entries out of order");
    std::vector<std::int64_t> next = balances_.back();
    if (const auto* g = std::get_if<Genesis>(&e.command); g && !genesis_) {
        // The simulated shard holds items 1..N in one range.
        genesis_ = *g;
        next.assign(g->items.back().last.value, g->initial_balance);
    } else if (std::holds_alternative<OpenSession>(e.command) && genesis_) {
        open_session(e.index);
    } else if (const auto* t = std::get_if<Transfer>(&e.command); t && genesis_) {
        transfer(*t, e.index, next);
    }
    log_.push_back(e);
    balances_.push_back(std::move(next));
}

void Oracle::open_session(LogIndex index) {
    if (sessions_.size() >= genesis_->sessions_max) {
        auto lru = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
            return a.second.last_used < b.second.last_used;
        });
        sessions_.erase(lru);
        ++evicted_;
    }
    const std::uint64_t id = session_id(genesis_->shard, index);
    sessions_[id] = Session{index, 0, {}};
    opened_[index] = id;
}

Oracle::Result Oracle::transfer(const Transfer& t, LogIndex index, std::vector<std::int64_t>& balances) {
    auto s = sessions_.find(t.txid.session);
    if (s == sessions_.end()) {
        ++session_expired_;
        return {index, Outcome::aborted, AbortReason::session_expired};
    }
    Session& session = s->second;
    session.last_used = index;
    if (t.txid.seq < session.floor) return {index, Outcome::aborted, AbortReason::expired};
    if (auto known = session.results.find(t.txid.seq); known != session.results.end()) return known->second;
    Result r{index, Outcome::committed, AbortReason::none};
    auto& from = balances.at(t.from.value - 1);
    if (from < t.amount) {
        r = Result{index, Outcome::aborted, AbortReason::insufficient_funds};
    } else {
        if (!moved_.insert(t.txid).second) {
            throw SimFailure("the session rule applies txid " + std::to_string(t.txid.session) + "/" +
                             std::to_string(t.txid.seq) + " a second time at index " + std::to_string(index.value));
        }
        from -= t.amount;
        balances.at(t.to.value - 1) += t.amount;
    }
    first_.try_emplace(t.txid, r);
    session.results[t.txid.seq] = r;
    if (session.results.size() > genesis_->dedup_window) {
        // The lowest seq leaves the window and can never apply again.
        session.floor = session.results.begin()->first + 1;
        session.results.erase(session.results.begin());
    }
    return r;
}

const Oracle::Result* Oracle::result(TxnId txid) const {
    auto it = first_.find(txid);
    return it == first_.end() ? nullptr : &it->second;
}

std::optional<std::uint64_t> Oracle::session_opened_at(LogIndex index) const {
    auto it = opened_.find(index);
    if (it == opened_.end()) return std::nullopt;
    return it->second;
}

}  // namespace rl::txn::sim
