#include "tools/audit.hpp"
#include "tools/commands.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace rl::tools {
namespace {

using json = nlohmann::ordered_json;

constexpr std::uint8_t kSideDebit = 1;   // txn::Side::debit
constexpr std::uint8_t kSideCredit = 2;  // txn::Side::credit
constexpr std::uint8_t kUndecided = 0;   // txn::Fate
constexpr std::uint8_t kCommitted = 1;
constexpr std::uint8_t kAborted = 2;

// Sums that must not wrap: a wrapped total would balance by accident.
class Checked {
public:
    std::int64_t add(std::int64_t a, std::int64_t b) {
        std::int64_t r = 0;
        overflow_ = overflow_ || __builtin_add_overflow(a, b, &r);
        return r;
    }
    std::int64_t sub(std::int64_t a, std::int64_t b) {
        std::int64_t r = 0;
        overflow_ = overflow_ || __builtin_sub_overflow(a, b, &r);
        return r;
    }
    std::int64_t mul(std::uint64_t a, std::int64_t b) {
        std::int64_t r = 0;
        overflow_ = overflow_ || a > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                    __builtin_mul_overflow(static_cast<std::int64_t>(a), b, &r);
        return r;
    }
    bool overflow() const { return overflow_; }

private:
    bool overflow_ = false;
};

// a - b as text, which a wild answer must not make wrap.
std::string difference(std::int64_t a, std::int64_t b) {
    std::int64_t d = 0;
    return __builtin_sub_overflow(a, b, &d) ? std::string("more than 64 bits") : std::to_string(d);
}

// The two records of one txid, by side, across every shard read.
struct Pair {
    std::optional<std::pair<ShardId, txn::AuditTxn>> debit;
    std::optional<std::pair<ShardId, txn::AuditTxn>> credit;
};

AuditSide side_of(const std::optional<std::pair<ShardId, txn::AuditTxn>>& rec, ShardId named_by_other) {
    if (!rec) return AuditSide{named_by_other};
    const auto& t = rec->second;
    return AuditSide{rec->first, true, t.fate, t.voted_yes, t.reason, t.age_ms};
}

// Per shard: its line, and holds and pending credits re-added from its
// undecided records (the node derives both from them, section 6.7).
AuditShard shard_line(const txn::AuditDone& a, Checked& sum, std::vector<std::string>& problems) {
    AuditShard s{a.shard, a.applied_index, a.items, a.initial_balance, sum.mul(a.items, a.initial_balance),
                 a.total, a.held, a.pending, sum.sub(a.total, a.held), 0, a.negatives};
    std::int64_t held = 0;
    std::int64_t pending = 0;
    for (const auto& t : a.txns) {
        if (t.fate != kUndecided) continue;
        ++s.undecided;
        if (!t.voted_yes) continue;
        if (t.side == kSideDebit) held = sum.add(held, t.amount);
        if (t.side == kSideCredit) pending = sum.add(pending, t.amount);
    }
    const std::string name = "shard " + std::to_string(a.shard.value);
    if (held != a.held) {
        problems.push_back(name + " holds " + std::to_string(a.held) + " but its undecided debits hold " +
                           std::to_string(held));
    }
    if (pending != a.pending) {
        problems.push_back(name + " has " + std::to_string(a.pending) + " pending but its undecided credits are " +
                           std::to_string(pending));
    }
    for (const auto& [item, balance] : a.negatives) {
        problems.push_back(name + " item " + std::to_string(item.value) +
                           " has a posted or available balance below zero (posted " + std::to_string(balance) + ")");
    }
    return s;
}

std::map<txn::TxnId, Pair> pair_records(const std::vector<txn::AuditDone>& shards,
                                        std::vector<std::string>& problems) {
    std::map<txn::TxnId, Pair> pairs;
    for (const auto& a : shards) {
        for (const auto& t : a.txns) {
            if (t.side != kSideDebit && t.side != kSideCredit) {
                problems.push_back("shard " + std::to_string(a.shard.value) + " records " + txid_text(t.txid) +
                                   " with an unknown side " + std::to_string(t.side));
                continue;
            }
            if (t.amount < 0) {
                problems.push_back("shard " + std::to_string(a.shard.value) + " records " + txid_text(t.txid) +
                                   " with a negative amount " + std::to_string(t.amount));
                continue;
            }
            auto& slot = t.side == kSideDebit ? pairs[t.txid].debit : pairs[t.txid].credit;
            if (slot) {
                problems.push_back(txid_text(t.txid) + " is recorded as the " +
                                   (t.side == kSideDebit ? "debit" : "credit") + " side by shards " +
                                   std::to_string(slot->first.value) + " and " + std::to_string(a.shard.value));
            } else {
                slot.emplace(a.shard, t);
            }
        }
    }
    return pairs;
}

// One txid: a problem if its sides were decided differently; its line if it
// is in flight. `forgotten` gets what it counts when a committed side whose
// other side is missing is taken as decided and forgotten there.
std::optional<AuditInFlight> in_flight(const txn::TxnId& txid, const Pair& p, std::int64_t& forgotten,
                                       Checked& sum, std::vector<std::string>& problems) {
    const auto& rec = p.debit ? p.debit->second : p.credit->second;
    AuditInFlight f{txid, rec.from, rec.to, rec.amount};
    f.debit = side_of(p.debit, p.credit ? p.credit->second.other : ShardId{});
    f.credit = side_of(p.credit, p.debit ? p.debit->second.other : ShardId{});
    const bool dc = f.debit.committed();
    const bool cc = f.credit.committed();
    if ((dc && f.credit.present && f.credit.fate == kAborted) || (cc && f.debit.present && f.debit.fate == kAborted)) {
        problems.push_back(txid_text(txid) + " is " + f.debit.state() + " on its debit side (shard " +
                           std::to_string(f.debit.shard.value) + ") but " + f.credit.state() +
                           " on its credit side (shard " + std::to_string(f.credit.shard.value) + ")");
    }
    const bool undecided = (f.debit.present && f.debit.fate == kUndecided) ||
                           (f.credit.present && f.credit.fate == kUndecided);
    if (!undecided && dc == cc) return std::nullopt;
    if (dc && !cc) f.counts = p.debit->second.amount;
    if (cc && !dc) f.counts = -p.credit->second.amount;
    if (f.debit.present && f.credit.present) forgotten = sum.add(forgotten, f.counts);
    f.age_ms = std::max(f.debit.present ? f.debit.age_ms : 0, f.credit.present ? f.credit.age_ms : 0);
    return f;
}

// The rule of docs/design.md section 6.7: balances sum to items x
// initial_balance, counting one-sided transactions as in flight, and
// nothing is in flight at quiescence.
void balance(AuditReport& r, std::int64_t forgotten, Checked& sum, std::vector<std::string>& problems) {
    AuditTotal& t = r.total;
    const std::int64_t explained = sum.add(t.posted, sum.sub(t.debited_not_credited, t.credited_not_debited));
    const std::int64_t explained_forgotten = sum.add(t.posted, forgotten);
    if (sum.overflow()) {
        problems.push_back("the totals do not fit in 64 bits; the books cannot be checked");
        return;
    }
    if (t.undecided == 0) {
        if (t.posted == t.expected) {
            t.balanced_by = "books";
            return;
        }
        problems.push_back("nothing is in flight, but the posted total " + std::to_string(t.posted) +
                           " differs from items x initial_balance " + std::to_string(t.expected) + " by " +
                           difference(t.posted, t.expected));
    } else if (explained == t.expected) {
        t.balanced_by = "in_flight";
        return;
    } else if (explained_forgotten == t.expected) {
        t.balanced_by = "forgotten_sides";
        return;
    } else {
        problems.push_back("the posted total " + std::to_string(t.posted) + " plus debited_not_credited " +
                           std::to_string(t.debited_not_credited) + " minus credited_not_debited " +
                           std::to_string(t.credited_not_debited) + " is " + std::to_string(explained) +
                           ", not items x initial_balance " + std::to_string(t.expected) + " (off by " +
                           difference(explained, t.expected) + ")");
    }
    r.may_be_skew = r.problems.empty() && r.shards.size() > 1;
}

}  // namespace

const char* AuditSide::state() const {
    if (!present) return "missing";
    switch (fate) {
        case kUndecided: return "undecided";
        case kCommitted: return "committed";
        case kAborted: return "aborted";
    }
    return "unknown";
}

AuditReport audit_books(const std::vector<txn::AuditDone>& shards) {
    AuditReport r;
    Checked sum;
    std::set<ShardId> seen;
    for (const auto& a : shards) {
        if (!seen.insert(a.shard).second) {
            r.problems.push_back("shard " + std::to_string(a.shard.value) + " answered twice");
        }
        r.shards.push_back(shard_line(a, sum, r.problems));
        const AuditShard& s = r.shards.back();
        r.total.items += s.items;
        r.total.expected = sum.add(r.total.expected, s.expected);
        r.total.posted = sum.add(r.total.posted, s.posted);
        r.total.held = sum.add(r.total.held, s.held);
        r.total.pending = sum.add(r.total.pending, s.pending);
        r.total.undecided += s.undecided;
        r.total.negatives += s.negatives.size();
    }
    r.total.available = sum.sub(r.total.posted, r.total.held);
    std::int64_t forgotten = 0;
    for (const auto& [txid, p] : pair_records(shards, r.problems)) {
        auto f = in_flight(txid, p, forgotten, sum, r.problems);
        // Nothing undecided anywhere: nothing is in flight (section 6.7); a
        // committed side alone is one whose other side decided and forgot it.
        if (!f || r.total.undecided == 0) continue;
        if (f->counts > 0) r.total.debited_not_credited = sum.add(r.total.debited_not_credited, f->counts);
        if (f->counts < 0) r.total.credited_not_debited = sum.add(r.total.credited_not_debited, -f->counts);
        r.in_flight.push_back(std::move(*f));
    }
    std::vector<std::string> balance_problems;
    balance(r, forgotten, sum, balance_problems);
    r.problems.insert(r.problems.end(), balance_problems.begin(), balance_problems.end());
    r.ok = r.problems.empty();
    return r;
}

namespace {

json side_json(const AuditSide& s) {
    json j = {{"shard", s.shard.value}, {"state", s.state()}};
    if (!s.present) return j;
    j["voted_yes"] = s.voted_yes;
    j["reason"] = s.reason;
    j["age_ms"] = s.age_ms;
    return j;
}

std::string side_text(const AuditSide& s) {
    std::string out = std::to_string(s.shard.value) + ":" + s.state();
    if (s.present && s.fate == kUndecided) out += s.voted_yes ? ":yes" : ":no";
    if (s.present && !s.reason.empty()) out += ":" + s.reason;
    return out;
}

std::string negatives_text(const std::vector<std::pair<ItemId, std::int64_t>>& negatives) {
    std::string out;
    for (const auto& [item, balance] : negatives) {
        if (!out.empty()) out += ',';
        out += std::to_string(item.value) + ":" + std::to_string(balance);
    }
    return out.empty() ? "none" : out;
}

}  // namespace

nlohmann::ordered_json audit_json(const AuditReport& r, std::uint32_t reads) {
    json shards = json::array();
    for (const auto& s : r.shards) {
        json negatives = json::array();
        for (const auto& [item, balance] : s.negatives) {
            negatives.push_back({{"item", item.value}, {"balance", balance}});
        }
        shards.push_back({{"shard", s.shard.value}, {"applied_index", s.applied_index.value}, {"items", s.items},
                          {"initial_balance", s.initial_balance}, {"expected", s.expected}, {"posted", s.posted},
                          {"held", s.held}, {"pending", s.pending}, {"available", s.available},
                          {"undecided", s.undecided}, {"negatives", negatives}});
    }
    const AuditTotal& t = r.total;
    const json total = {{"items", t.items}, {"expected", t.expected}, {"posted", t.posted}, {"held", t.held},
                        {"pending", t.pending}, {"available", t.available}, {"undecided", t.undecided},
                        {"negatives", t.negatives}, {"debited_not_credited", t.debited_not_credited},
                        {"credited_not_debited", t.credited_not_debited},
                        {"balanced_by", t.balanced_by.empty() ? json(nullptr) : json(t.balanced_by)}};
    json flights = json::array();
    for (const auto& f : r.in_flight) {
        flights.push_back({{"txid", txid_text(f.txid)}, {"from", f.from.value}, {"to", f.to.value},
                           {"amount", f.amount}, {"age_ms", f.age_ms}, {"counts", f.counts},
                           {"debit", side_json(f.debit)}, {"credit", side_json(f.credit)}});
    }
    return {{"ok", r.ok}, {"shards", shards}, {"total", total}, {"in_flight", flights}, {"problems", r.problems},
            {"reads", reads}};
}

std::vector<std::string> audit_text(const AuditReport& r, std::uint32_t reads) {
    std::vector<std::string> lines;
    for (const auto& s : r.shards) {
        lines.push_back("shard=" + std::to_string(s.shard.value) + " applied_index=" +
                        std::to_string(s.applied_index.value) + " items=" + std::to_string(s.items) +
                        " initial_balance=" + std::to_string(s.initial_balance) + " expected=" +
                        std::to_string(s.expected) + " posted=" + std::to_string(s.posted) + " held=" +
                        std::to_string(s.held) + " pending=" + std::to_string(s.pending) + " available=" +
                        std::to_string(s.available) + " undecided=" + std::to_string(s.undecided) +
                        " negatives=" + negatives_text(s.negatives));
    }
    const AuditTotal& t = r.total;
    lines.push_back("total items=" + std::to_string(t.items) + " expected=" + std::to_string(t.expected) +
                    " posted=" + std::to_string(t.posted) + " held=" + std::to_string(t.held) + " pending=" +
                    std::to_string(t.pending) + " available=" + std::to_string(t.available) +
                    " undecided=" + std::to_string(t.undecided) + " negatives=" + std::to_string(t.negatives) +
                    " debited_not_credited=" + std::to_string(t.debited_not_credited) + " credited_not_debited=" +
                    std::to_string(t.credited_not_debited) + " balanced_by=" +
                    (t.balanced_by.empty() ? "none" : t.balanced_by) + " reads=" + std::to_string(reads));
    for (const auto& f : r.in_flight) {
        lines.push_back("in_flight txid=" + txid_text(f.txid) + " from=" + std::to_string(f.from.value) + " to=" +
                        std::to_string(f.to.value) + " amount=" + std::to_string(f.amount) + " age_ms=" +
                        std::to_string(f.age_ms) + " counts=" + std::to_string(f.counts) + " debit=" +
                        side_text(f.debit) + " credit=" + side_text(f.credit));
    }
    if (r.ok) lines.emplace_back("ok");
    for (const auto& p : r.problems) lines.push_back("problem: " + p);
    return lines;
}

}  // namespace rl::tools
