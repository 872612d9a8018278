#include "txn/pending.hpp"

#include "config/overload.hpp"

#include <algorithm>
#include <utility>

namespace rl::txn {

bool answers(const ClientOp& op, const OpResult& result) {
    if (std::holds_alternative<OpFailed>(result)) return true;
    return std::visit(Overload{
                          [&](const TransferOp& t) {
                              const auto* d = std::get_if<TransferDone>(&result);
                              return d != nullptr && d->txid == t.txid;
                          },
                          [&](const BalanceOp& b) {
                              const auto* d = std::get_if<BalanceDone>(&result);
                              return d != nullptr && d->item == b.item;
                          },
                          [&](const LeaderOp&) { return std::holds_alternative<LeaderDone>(result); },
                          [&](const SessionOp&) { return std::holds_alternative<SessionDone>(result); },
                      },
                      op);
}

PendingOps::PendingOps(PendingLimits limits, std::uint64_t forward_id_base)
    : limits_(limits), next_forward_id_(forward_id_base) {}

void PendingOps::wait_transfer(TxnId txid, Waiter w) {
    transfers_[txid].push_back({std::move(w), deadline()});
    ++waiters_;
}

void PendingOps::wait_entry(LogIndex index, Waiter w) {
    entries_[index].push_back({std::move(w), deadline()});
    ++waiters_;
}

template <class Key>
std::vector<Waiter> PendingOps::take_keyed(std::map<Key, std::vector<Timed<Waiter>>>& waits, const Key& key) {
    std::vector<Waiter> out;
    auto it = waits.find(key);
    if (it == waits.end()) return out;
    for (auto& t : it->second) out.push_back(std::move(t.item));
    waiters_ -= out.size();
    waits.erase(it);
    return out;
}

std::vector<Waiter> PendingOps::take_transfer(TxnId txid) { return take_keyed(transfers_, txid); }

std::vector<Waiter> PendingOps::take_entry(LogIndex index) { return take_keyed(entries_, index); }

void PendingOps::wait_read(Read r) {
    reads_.push_back({std::move(r), deadline()});
    ++waiters_;
}

std::vector<PendingOps::Read> PendingOps::take_reads(const std::function<bool(const Read&)>& ready) {
    std::vector<Read> out;
    std::erase_if(reads_, [&](Timed<Read>& r) {
        if (!ready(r.item)) return false;
        out.push_back(std::move(r.item));
        return true;
    });
    waiters_ -= out.size();
    return out;
}

void PendingOps::park(Parked p) {
    parked_.push_back({std::move(p), deadline()});
    ++waiters_;
}

std::vector<PendingOps::Parked> PendingOps::take_parked() {
    std::vector<Parked> out;
    for (auto& p : parked_) out.push_back(std::move(p.item));
    parked_.clear();
    waiters_ -= out.size();
    return out;
}

std::uint64_t PendingOps::forward(Waiter w, NodeId to, ClientOp op) {
    const std::uint64_t id = next_forward_id_++;
    forwarded_.emplace(id, Timed<Forwarded>{{std::move(w), to, std::move(op)}, deadline()});
    ++waiters_;
    return id;
}

std::optional<Waiter> PendingOps::take_forward_reply(std::uint64_t id, NodeId from, const OpResult& result) {
    auto it = forwarded_.find(id);
    if (it == forwarded_.end() || it->second.item.to != from || !answers(it->second.item.op, result)) {
        return std::nullopt;
    }
    Waiter w = std::move(it->second.item.waiter);
    forwarded_.erase(it);
    --waiters_;
    return w;
}

std::vector<Waiter> PendingOps::take_forwards_if(const std::function<bool(NodeId to)>& stale) {
    std::vector<Waiter> out;
    std::erase_if(forwarded_, [&](auto& f) {
        if (!stale(f.second.item.to)) return false;
        out.push_back(std::move(f.second.item.waiter));
        return true;
    });
    waiters_ -= out.size();
    return out;
}

std::vector<Waiter> PendingOps::take_leader_waits() {
    std::vector<Waiter> out;
    const auto drain = [&](auto& waits) {
        for (auto& [key, ws] : waits) {
            for (auto& t : ws) out.push_back(std::move(t.item));
        }
        waits.clear();
    };
    drain(transfers_);
    drain(entries_);
    for (auto& r : reads_) out.push_back(std::move(r.item.waiter));
    reads_.clear();
    waiters_ -= out.size();
    return out;
}

std::vector<GivenUp> PendingOps::tick(const std::string& late, const std::string& leaderless) {
    ++now_;
    std::vector<GivenUp> out;
    const auto expired = [&](const auto& timed) { return timed.deadline <= now_; };
    const auto expire_keyed = [&](auto& waits) {
        for (auto it = waits.begin(); it != waits.end();) {
            std::erase_if(it->second, [&](auto& t) {
                if (!expired(t)) return false;
                out.push_back({std::move(t.item), "timeout", late});
                return true;
            });
            it = it->second.empty() ? waits.erase(it) : std::next(it);
        }
    };
    expire_keyed(transfers_);
    expire_keyed(entries_);
    std::erase_if(reads_, [&](auto& r) {
        if (!expired(r)) return false;
        out.push_back({std::move(r.item.waiter), "timeout", late});
        return true;
    });
    std::erase_if(parked_, [&](auto& p) {
        if (!expired(p)) return false;
        out.push_back({std::move(p.item.waiter), "unavailable", leaderless});
        return true;
    });
    std::erase_if(forwarded_, [&](auto& f) {
        if (!expired(f.second)) return false;
        out.push_back({std::move(f.second.item.waiter), "timeout", late});
        return true;
    });
    waiters_ -= out.size();
    return out;
}

}  // namespace rl::txn
