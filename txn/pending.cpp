#include "txn/pending.hpp"

#include "config/overload.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace rl::txn {
namespace {

// Removes, in order, the elements `pred` selects and hands each to `take`.
template <class T, class Pred, class Take>
void extract_if(std::vector<T>& v, Pred pred, Take take) {
    const auto kept = std::stable_partition(v.begin(), v.end(), [&](const T& x) { return !pred(x); });
    for (auto it = kept; it != v.end(); ++it) take(std::move(*it));
    v.erase(kept, v.end());
}

// The same for a map.
template <class K, class V, class Pred, class Take>
void extract_if(std::map<K, V>& m, Pred pred, Take take) {
    for (auto it = m.begin(); it != m.end();) {
        if (!pred(*it)) {
            ++it;
            continue;
        }
        take(std::move(it->second));
        it = m.erase(it);
    }
}

}  // namespace

bool answers(const ClientOp& op, const OpResult& result) {
    if (std::holds_alternative<OpFailed>(result)) return true;
    return std::visit(Overload{
                          [&](const TransferOp& t) {
                              const auto* d = std::get_if<TransferDone>(&result);
                              return d != nullptr && d->txid == t.txid;
                          },
                          [&](const BalanceOp& b) {
                              const auto* d = std::get_if<BalanceDone>(&result);
                              return d != nullptr && d->item == b.item && d->local == b.local;
                          },
                          [&](const LeaderOp&) { return std::holds_alternative<LeaderDone>(result); },
                          [&](const SessionOp&) { return std::holds_alternative<SessionDone>(result); },
                          [&](const AuditOp&) { return std::holds_alternative<AuditDone>(result); },
                          [&](const ResetOp&) { return std::holds_alternative<ResetDone>(result); },
                          [&](const BatchOp& b) {
                              const auto* d = std::get_if<BatchDone>(&result);
                              if (d == nullptr || d->each.size() != b.transfers.size()) return false;
                              for (std::size_t i = 0; i < b.transfers.size(); ++i) {
                                  if (d->each[i].txid != b.transfers[i].txid) return false;
                              }
                              return true;
                          },
                      },
                      op);
}

bool place_outcomes(std::vector<TransferOutcome>& each, const std::vector<std::uint32_t>& positions,
                    const OpResult& result) {
    const auto put = [&](std::uint32_t at, BatchStatus status, const std::string& reason) {
        if (at >= each.size()) return false;
        each[at].status = status;
        each[at].reason = reason;
        return true;
    };
    if (const auto* d = std::get_if<BatchDone>(&result)) {
        if (d->each.size() != positions.size()) return false;
        for (std::size_t k = 0; k < positions.size(); ++k) {
            if (positions[k] >= each.size() || each[positions[k]].txid != d->each[k].txid) return false;
        }
        for (std::size_t k = 0; k < positions.size(); ++k) each[positions[k]] = d->each[k];
        return true;
    }
    if (const auto* t = std::get_if<TransferDone>(&result)) {
        if (positions.size() != 1) return false;
        return put(positions[0], t->outcome == Outcome::committed ? BatchStatus::committed : BatchStatus::aborted,
                   t->reason);
    }
    if (const auto* f = std::get_if<OpFailed>(&result)) {
        for (std::uint32_t at : positions) put(at, BatchStatus::failed, f->code);
        return true;
    }
    return false;
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
    extract_if(reads_, [&](const Timed<Read>& r) { return ready(r.item); },
               [&](Timed<Read>&& r) { out.push_back(std::move(r.item)); });
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

std::uint64_t PendingOps::forward(Waiter w, NodeId to, ClientOp op, std::uint8_t hops) {
    const std::uint64_t id = next_forward_id_++;
    forwarded_.emplace(id, Timed<Forwarded>{{std::move(w), to, std::move(op), hops}, deadline()});
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

const ClientOp* PendingOps::forwarded_op(std::uint64_t id) const {
    auto it = forwarded_.find(id);
    return it == forwarded_.end() ? nullptr : &it->second.item.op;
}

std::vector<std::pair<Waiter, ClientOp>> PendingOps::take_forwards_to(NodeId to) {
    std::vector<std::pair<Waiter, ClientOp>> out;
    extract_if(forwarded_, [&](const auto& f) { return f.second.item.to == to; },
               [&](Timed<Forwarded>&& f) { out.emplace_back(std::move(f.item.waiter), std::move(f.item.op)); });
    waiters_ -= out.size();
    return out;
}

std::vector<PendingOps::Parked> PendingOps::take_forwards_if(const std::function<bool(NodeId to)>& stale) {
    std::vector<Parked> out;
    extract_if(forwarded_, [&](const auto& f) { return stale(f.second.item.to); },
               [&](Timed<Forwarded>&& f) {
                   out.push_back(Parked{std::move(f.item.waiter), std::move(f.item.op), f.item.hops});
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
    // A waiter by itself, or the one inside a read, parked or forwarded operation.
    const auto waiter_of = [](auto& item) -> Waiter& {
        if constexpr (std::is_same_v<std::decay_t<decltype(item)>, Waiter>) {
            return item;
        } else {
            return item.waiter;
        }
    };
    const auto give_up = [&](const char* code, const std::string& why) {
        return [&, code](auto&& timed) { out.push_back({std::move(waiter_of(timed.item)), code, why}); };
    };
    const auto expire_keyed = [&](auto& waits) {
        for (auto it = waits.begin(); it != waits.end();) {
            extract_if(it->second, expired, give_up("timeout", late));
            it = it->second.empty() ? waits.erase(it) : std::next(it);
        }
    };
    expire_keyed(transfers_);
    expire_keyed(entries_);
    extract_if(reads_, expired, give_up("timeout", late));
    extract_if(parked_, expired, give_up("unavailable", leaderless));
    extract_if(forwarded_, [&](const auto& f) { return expired(f.second); }, give_up("timeout", late));
    waiters_ -= out.size();
    return out;
}

}  // namespace rl::txn
