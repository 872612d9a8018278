#include "oracle.hpp"

#include "failure.hpp"

#include "config/overload.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

namespace rl::txn::sim {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// The abort reasons a session table or a record may hold.
bool storable_abort(AbortReason r) {
    return r == AbortReason::insufficient_funds || r == AbortReason::overflow || r == AbortReason::bad_request ||
           r == AbortReason::timeout || r == AbortReason::mismatch;
}

}  // namespace

std::string txid_str(TxnId t) { return std::to_string(t.session) + ":" + std::to_string(t.seq); }

void Oracle::fail(const std::string& what, LogIndex index) const {
    throw SimFailure("oracle of shard " + std::to_string(shard_.value) + " at entry " + std::to_string(index.value) +
                     ": " + what);
}

bool Oracle::holds(ItemId item) const { return created() && first_item_ <= item && item <= last_item_; }

void Oracle::append(const LogEntry& e) {
    if (e.index.value != log_.size() + 1) throw SimFailure("oracle: committed entries out of order");
    Books next = books_.back();
    if (const auto* g = std::get_if<Genesis>(&e.command); g && !genesis_) {
        // The simulated shards hold one range each.
        if (g->shard != shard_ || g->items.size() != 1) fail("a Genesis of another shard or shape", e.index);
        genesis_ = *g;
        first_item_ = g->items.front().first;
        last_item_ = g->items.front().last;
        const std::size_t n = last_item_.value - first_item_.value + 1;
        next.posted.assign(n, g->initial_balance);
        next.held.assign(n, 0);
        next.pending.assign(n, 0);
    } else if (genesis_) {
        std::visit(Overload{
                       [&](const OpenSession&) { open_session(e.index); },
                       [&](const Transfer& t) { transfer(t, e.index, next); },
                       [&](const TransferBatch& b) {
                           // In order, each as a Transfer entry of its own (docs/design.md section 6.9).
                           for (const BatchTransfer& x : b.each) {
                               transfer(Transfer{TxnId{b.session, x.seq}, x.from, x.to, x.amount}, e.index, next);
                           }
                       },
                       [&](const PrepareDebit& p) { prepare_debit(p, e.index, next); },
                       [&](const PrepareCredit& p) { prepare_credit(p, e.index, next); },
                       [&](const Decide& d) { decide(d, e.index, next); },
                       [&](const Decisions& ds) {
                           for (const Decide& d : ds.each) decide(d, e.index, next);
                       },
                       [&](const Query& q) { query(q, e.index); },
                       [&](const Forget& f) { forget(f); },
                       [&](const Release& r) { release(r, next); },
                       [&](const Reset&) { reset(next); },
                       [](const auto&) {},
                   },
                   e.command);
    }
    for (std::size_t i = 0; i < next.posted.size(); ++i) {
        if (next.posted[i] < 0 || next.posted[i] - next.held[i] < 0 || next.held[i] < 0 || next.pending[i] < 0) {
            fail("item " + std::to_string(first_item_.value + i) + " left with posted " +
                     std::to_string(next.posted[i]) + ", held " + std::to_string(next.held[i]) + ", pending " +
                     std::to_string(next.pending[i]),
                 e.index);
        }
    }
    totals_.push_back(std::accumulate(next.posted.begin(), next.posted.end(), std::int64_t{0}));
    if (sent_away_.size() < totals_.size()) sent_away_.push_back(sent_away_.back());
    log_.push_back(e);
    books_.push_back(std::move(next));
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

// The session of `txid`, used by the entry at `index`; nullptr when the
// table does not hold it.
Oracle::Session* Oracle::touch(TxnId txid, LogIndex index) {
    auto s = sessions_.find(txid.session);
    if (s == sessions_.end()) return nullptr;
    s->second.last_used = index;
    return &s->second;
}

// What the session already says of `txid`: expired below its window, or
// the result it keeps.
std::optional<Oracle::Result> Oracle::known(const Session& s, TxnId txid, LogIndex index) const {
    if (txid.seq < s.floor) return Result{index, Outcome::aborted, AbortReason::expired};
    if (auto r = s.results.find(txid.seq); r != s.results.end()) return r->second;
    return std::nullopt;
}

void Oracle::remember(Session& s, TxnId txid, const Result& r) {
    s.results[txid.seq] = r;
    if (s.results.size() > genesis_->dedup_window) {
        // The lowest seq leaves the window and can never apply again.
        s.floor = s.results.begin()->first + 1;
        s.results.erase(s.results.begin());
    }
}

Oracle::Result Oracle::transfer(const Transfer& t, LogIndex index, Books& b) {
    Session* s = touch(t.txid, index);
    if (s == nullptr) {
        ++session_expired_;
        return {index, Outcome::aborted, AbortReason::session_expired};
    }
    if (auto k = known(*s, t.txid, index)) return *k;
    // A txid of a cross-shard transaction still recorded moves nothing
    // here (a client reused it); nothing is recorded either.
    if (records_.contains(t.txid)) return {index, Outcome::aborted, AbortReason::mismatch};
    Result r{index, Outcome::committed, AbortReason::none};
    if (!holds(t.from) || !holds(t.to) || t.from == t.to || t.amount <= 0 || session_shard(t.txid.session) != shard_) {
        r = Result{index, Outcome::aborted, AbortReason::bad_request};
    } else if (b.posted[slot(t.from)] - b.held[slot(t.from)] < t.amount) {
        r = Result{index, Outcome::aborted, AbortReason::insufficient_funds};
    } else if (b.posted[slot(t.to)] > kMax - t.amount - b.pending[slot(t.to)]) {
        r = Result{index, Outcome::aborted, AbortReason::overflow};
    } else {
        if (!moved_.insert(t.txid).second) fail("the session rule applies txid " + txid_str(t.txid) + " a second time", index);
        b.posted[slot(t.from)] -= t.amount;
        b.posted[slot(t.to)] += t.amount;
    }
    first_.try_emplace(t.txid, r);
    remember(*s, t.txid, r);
    return r;
}

// ---- cross-shard transactions ----

// An undecided record with a yes vote reserves its amount: a hold on the
// debited item, a pending credit on the credited one.
void Oracle::reserve(const Record& r, Books& b, std::int64_t sign) {
    if (r.side == Side::debit) {
        b.held.at(slot(r.from)) += sign * r.amount;
    } else {
        b.pending.at(slot(r.to)) += sign * r.amount;
    }
}

// A Prepare's vote: a yes reserves the amount; a no decides the record
// aborted at once.
void Oracle::vote(Record& r, bool yes, AbortReason no_reason, LogIndex index, Books& b) {
    if (yes) {
        r.voted_yes = true;
        reserve(r, b, +1);
        return;
    }
    r.vote_reason = no_reason;
    r.fate = Fate::aborted;
    r.fate_reason = no_reason;
    decided(r, index, false);
}

void Oracle::decided(const Record& r, LogIndex index, bool fence) {
    decisions_.push_back(Decision{index, r.txid, r.side, r.fate, r.fate_reason, r.from, r.to, r.amount, fence});
}

// The sender's Prepare: its session decides first, as for any transfer,
// then the available balance votes. A no vote decides at once.
void Oracle::prepare_debit(const PrepareDebit& p, LogIndex index, Books& b) {
    const auto existing = records_.find(p.txid);
    if (existing != records_.end() && existing->second.fate == Fate::undecided) return;
    Session* s = touch(p.txid, index);
    if (s == nullptr) {
        ++session_expired_;
        return;
    }
    if (known(*s, p.txid, index) || existing != records_.end()) return;
    Record r{Side::debit, p.txid, p.from, p.to, p.to_shard, p.amount};
    r.prepared_at = index;
    if (!holds(p.from) || p.amount <= 0 || p.to_shard == shard_ || p.to_shard.value == 0 ||
        session_shard(p.txid.session) != shard_) {
        // Refused without a record: the session keeps the abort.
        const Result result{index, Outcome::aborted, AbortReason::bad_request};
        first_.try_emplace(p.txid, result);
        remember(*s, p.txid, result);
        r.fate = Fate::aborted;
        r.fate_reason = AbortReason::bad_request;
        decided(r, index, false);
        return;
    }
    ++prepared_;
    vote(r, b.posted[slot(p.from)] - b.held[slot(p.from)] >= p.amount, AbortReason::insufficient_funds, index, b);
    if (!r.voted_yes) {
        const Result result{index, Outcome::aborted, r.vote_reason};
        first_.try_emplace(p.txid, result);
        remember(*s, p.txid, result);
    }
    records_.emplace(p.txid, r);
}

// The receiver's Prepare: the item must be here and the credit must fit
// beside every pending one.
void Oracle::prepare_credit(const PrepareCredit& p, LogIndex index, Books& b) {
    if (records_.contains(p.txid)) return;
    const ShardId sender = session_shard(p.txid.session);
    Record r{Side::credit, p.txid, p.from, p.to, sender, p.amount};
    r.prepared_at = index;
    if (!holds(p.to) || p.amount <= 0 || sender == shard_ || sender.value == 0) {
        // Refused without a record: a no vote all the same.
        r.vote_reason = AbortReason::bad_request;
        r.fate = Fate::aborted;
        r.fate_reason = AbortReason::bad_request;
        decided(r, index, false);
        return;
    }
    ++prepared_;
    vote(r, b.posted[slot(p.to)] <= kMax - p.amount - b.pending[slot(p.to)], AbortReason::overflow, index, b);
    records_.emplace(p.txid, r);
}

// The first decision stands; one the other way is a protocol bug.
void Oracle::decide(const Decide& d, LogIndex index, Books& b) {
    auto it = records_.find(d.txid);
    if (it == records_.end() || d.fate == Fate::undecided) return;
    Record& r = it->second;
    const bool impossible = d.fate == Fate::committed && !r.voted_yes;
    if (r.fate != Fate::undecided || impossible) {
        if (impossible || r.fate != d.fate) {
            fail("txid " + txid_str(d.txid) + " is decided " + (d.fate == Fate::committed ? "committed" : "aborted") +
                     " by a Decide entry, but its record here " +
                     (impossible ? std::string("voted no") : std::string("is already decided the other way")),
                 index);
        }
        if (d.final_elsewhere) r.final_elsewhere = true;
        return;
    }
    if (r.voted_yes) reserve(r, b, -1);
    if (d.fate == Fate::committed) {
        if (!posted_.insert(d.txid).second) {
            fail("txid " + txid_str(d.txid) + " posts its " + (r.side == Side::debit ? "debit" : "credit") +
                     " a second time",
                 index);
        }
        // One entry may decide several transactions: the entry's postings
        // add up in the one slot of its index.
        if (sent_away_.size() == totals_.size()) sent_away_.push_back(sent_away_.back());
        if (r.side == Side::debit) {
            b.posted[slot(r.from)] -= r.amount;
            sent_away_.back() += r.amount;
        } else {
            b.posted[slot(r.to)] += r.amount;
            sent_away_.back() -= r.amount;
        }
        ++committed_;
    }
    r.fate = d.fate;
    r.fate_reason = AbortReason::none;
    if (d.fate == Fate::aborted) {
        const auto reason = static_cast<AbortReason>(d.reason);
        r.fate_reason = storable_abort(reason) ? reason : AbortReason::bad_request;
    }
    r.final_elsewhere = r.final_elsewhere || d.final_elsewhere;
    if (r.side == Side::debit) {
        const Result result{index, d.fate == Fate::committed ? Outcome::committed : Outcome::aborted, r.fate_reason};
        if (auto s = sessions_.find(d.txid.session); s != sessions_.end() && !known(s->second, d.txid, index)) {
            remember(s->second, d.txid, result);
        }
        first_.try_emplace(d.txid, result);
    }
    decided(r, index, false);
}

// A Query that finds no record fences the transaction: on the sender's side
// its session records it aborted (its Prepare then finds it settled), on the
// receiver's side an undecided no-vote record stands in for the Prepare
// (a decision or a Release ends it).
void Oracle::query(const Query& q, LogIndex index) {
    if (records_.contains(q.txid)) return;
    if (session_shard(q.txid.session) == shard_) {
        Session* s = touch(q.txid, index);
        if (s == nullptr || known(*s, q.txid, index)) return;
        const Result result{index, Outcome::aborted, AbortReason::timeout};
        remember(*s, q.txid, result);
        first_.try_emplace(q.txid, result);
        ++fences_;
        Record fence{Side::debit, q.txid};
        fence.fate = Fate::aborted;
        fence.fate_reason = AbortReason::timeout;
        decided(fence, index, true);
        return;
    }
    if (session_shard(q.txid.session).value == 0) return;  // no shard's transaction: nothing to fence
    Record fence{Side::credit, q.txid, ItemId{}, ItemId{}, session_shard(q.txid.session), 0};
    fence.vote_reason = AbortReason::timeout;
    fence.prepared_at = index;
    records_.emplace(q.txid, fence);
    ++fences_;
}

// A receiver's undecided record the coordinator's shard had finished
// before: released without a decision.
void Oracle::release(const Release& r, Books& b) {
    auto it = records_.find(r.txid);
    if (it == records_.end() || it->second.side != Side::credit || it->second.fate != Fate::undecided) return;
    if (it->second.voted_yes) reserve(it->second, b, -1);
    records_.erase(it);
}

// A Reset puts every posted balance back to the Genesis balance, only
// while the shard keeps no cross-shard record (so nothing is held or
// pending); otherwise it changes nothing. Nothing was sent away since.
void Oracle::reset(Books& b) {
    if (!records_.empty()) return;
    b.posted.assign(b.posted.size(), genesis_->initial_balance);
    sent_away_.push_back(0);
}

void Oracle::forget(const Forget& f) {
    for (const TxnId& txid : f.txids) {
        auto it = records_.find(txid);
        if (it != records_.end() && it->second.fate != Fate::undecided) {
            records_.erase(it);
            ++forgotten_;
        }
    }
}

const Oracle::Record* Oracle::record(TxnId txid) const {
    auto it = records_.find(txid);
    return it == records_.end() ? nullptr : &it->second;
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
