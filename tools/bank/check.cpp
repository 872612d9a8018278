#include "tools/bank/check.hpp"

#include "tools/bank/explain.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace rl::bank {

const char* outcome_name(Outcome outcome) {
    switch (outcome) {
        case Outcome::committed: return "committed";
        case Outcome::aborted: return "aborted";
        case Outcome::unknown: return "unknown";
    }
    return "?";
}

namespace {

using Balances = std::map<std::uint64_t, std::int64_t>;

std::string signed_text(std::int64_t v) { return (v > 0 ? "+" : "") + std::to_string(v); }

std::string describe(const Transfer& t) {
    return "txid " + (t.txid.empty() ? std::string("(none)") : t.txid) + " (" + outcome_name(t.outcome) +
           (t.reason.empty() ? "" : " " + t.reason) + ", " + std::to_string(t.from) + " -> " + std::to_string(t.to) +
           " amount " + std::to_string(t.amount) + ", t=" + std::to_string(t.start_ms) + ".." +
           std::to_string(t.end_ms) + " ms)";
}

// Collects failures, at most `max` listed per kind, the rest counted.
class Failures {
public:
    explicit Failures(std::size_t max) : max_(max) {}
    void add(const std::string& kind, const std::string& line) {
        if (++count_[kind] <= max_) lines_.push_back(line);
    }
    std::vector<std::string> take() {
        for (const auto& [kind, n] : count_) {
            if (n > max_) lines_.push_back("... and " + std::to_string(n - max_) + " more: " + kind);
        }
        return std::move(lines_);
    }

private:
    std::size_t max_;
    std::map<std::string, std::size_t> count_;
    std::vector<std::string> lines_;
};

void check_reads(const History& h, Failures& f) {
    for (const Read& r : h.reads) {
        if (!r.ok) continue;
        if (r.balance < 0 || r.balance - r.held < 0) {
            f.add("negative reads", "negative balance read: item " + std::to_string(r.item) + " balance " +
                                        std::to_string(r.balance) + " held " + std::to_string(r.held) + " at t=" +
                                        std::to_string(r.start_ms) + ".." + std::to_string(r.end_ms) + " ms");
        }
    }
}

// Compares every replica of a shard with its first one and returns the
// final state of every item (the first replica's, which names any
// disagreement's other side in the failure lines).
std::map<std::uint64_t, ItemState> check_replicas(const History& h, Failures& f) {
    std::map<std::uint64_t, ItemState> final_items;
    for (const ShardReplicas& s : h.shards) {
        const std::string shard = "shard " + std::to_string(s.shard);
        if (s.replicas.size() < s.members || s.replicas.empty()) {
            f.add("replicas missing", shard + ": " + std::to_string(s.replicas.size()) + " of " +
                                          std::to_string(s.members) + " replicas answered at quiescence");
        }
        if (s.replicas.empty()) continue;
        const Replica& first = s.replicas.front();
        for (const auto& [item, state] : first.items) final_items[item] = state;
        for (const Replica& r : s.replicas) {
            if (r.applied_index != first.applied_index) {
                f.add("replicas disagree", shard + ": node " + std::to_string(r.node) + " applied index " +
                                               std::to_string(r.applied_index) + ", node " +
                                               std::to_string(first.node) + " " +
                                               std::to_string(first.applied_index));
            }
            for (const auto& [item, state] : first.items) {
                const auto it = r.items.find(item);
                if (it != r.items.end() && it->second == state) continue;
                const std::string theirs = it == r.items.end() ? std::string("nothing")
                                                                : "balance " + std::to_string(it->second.balance) +
                                                                      " held " + std::to_string(it->second.held) +
                                                                      " pending " + std::to_string(it->second.pending);
                f.add("replicas disagree", shard + ": item " + std::to_string(item) + " node " +
                                               std::to_string(first.node) + " balance " +
                                               std::to_string(state.balance) + " held " + std::to_string(state.held) +
                                               " pending " + std::to_string(state.pending) + ", node " +
                                               std::to_string(r.node) + " " + theirs);
            }
        }
    }
    return final_items;
}

void check_final(const History& h, const std::map<std::uint64_t, ItemState>& final_items, Failures& f) {
    for (const auto& [item, initial] : h.initial) {
        const auto it = final_items.find(item);
        if (it == final_items.end()) {
            f.add("items missing", "item " + std::to_string(item) + ": no replica reported its final balance");
            continue;
        }
        const ItemState& s = it->second;
        const std::string name = "item " + std::to_string(item);
        if (s.balance < 0 || s.balance - s.held < 0) {
            f.add("negative final balances", "negative final balance: " + name + " balance " +
                                                 std::to_string(s.balance) + " held " + std::to_string(s.held));
        }
        if (s.held != 0 || s.pending != 0) {
            f.add("in flight at quiescence", name + " still has held " + std::to_string(s.held) + " pending " +
                                                 std::to_string(s.pending) + " at quiescence");
        }
    }
}

void check_audit(const History& h, Failures& f) {
    if (!h.audit.ran) {
        f.add("audit", "the audit did not run: " + h.audit.output);
    } else if (h.audit.exit_code != 0) {
        f.add("audit", "rlcat audit exited " + std::to_string(h.audit.exit_code) + ": " + h.audit.output);
    }
}

// Every txid names one operation, and every transfer names known items.
void check_transfers(const History& h, Failures& f) {
    std::map<std::string, std::size_t> seen;
    for (const Transfer& t : h.transfers) {
        if (!h.initial.count(t.from) || !h.initial.count(t.to)) {
            f.add("unknown items", "a transfer names an item the ledger does not hold: " + describe(t));
        }
        if (!t.txid.empty() && ++seen[t.txid] == 2) {
            f.add("txids reused", "txid " + t.txid + " names more than one operation of the history");
        }
    }
}

// Per item: final - initial - effects of the acknowledged commits.
Balances residuals(const History& h, const std::map<std::uint64_t, ItemState>& final_items) {
    Balances r;
    for (const auto& [item, initial] : h.initial) {
        const auto it = final_items.find(item);
        if (it != final_items.end()) r[item] = it->second.balance - initial;
    }
    for (const Transfer& t : h.transfers) {
        if (t.outcome != Outcome::committed || !r.count(t.from) || !r.count(t.to)) continue;
        r[t.from] += t.amount;
        r[t.to] -= t.amount;
    }
    return r;
}

std::int64_t value(const Balances& r, std::uint64_t item) {
    const auto it = r.find(item);
    return it == r.end() ? 0 : it->second;
}

std::string residual_list(const std::vector<std::uint64_t>& items, const Balances& r) {
    std::string out;
    for (std::uint64_t item : items) {
        if (value(r, item) == 0) continue;
        out += (out.empty() ? "" : ", ") + std::string("item ") + std::to_string(item) + " " +
               signed_text(value(r, item));
    }
    return out;
}

// Acknowledged transfers whose own effect matches what is unexplained on
// both of their items: the likely culprits, named in the failure lines.
void diagnose(const History& h, const std::set<std::uint64_t>& suspect, const Balances& r, Failures& f) {
    for (const Transfer& t : h.transfers) {
        if (t.outcome == Outcome::unknown || !suspect.count(t.from) || !suspect.count(t.to)) continue;
        const std::int64_t from = value(r, t.from);
        const std::int64_t to = value(r, t.to);
        if (t.outcome == Outcome::committed && from == t.amount && to == -t.amount) {
            f.add("culprits", "acknowledged commit not applied: " + describe(t));
        } else if (t.outcome == Outcome::committed && from == -t.amount && to == t.amount) {
            f.add("culprits", "acknowledged commit applied twice: " + describe(t));
        } else if (t.outcome == Outcome::aborted && from == -t.amount && to == t.amount) {
            f.add("culprits", "acknowledged abort applied: " + describe(t));
        }
    }
}

void check_accounting(const History& h, const std::map<std::uint64_t, ItemState>& final_items,
                      const CheckLimits& limits, Failures& f, CheckResult& out) {
    const Balances r = residuals(h, final_items);
    const Explanation e = explain(h.transfers, r, limits.search_steps_max);
    std::set<std::uint64_t> suspect(e.untouched.begin(), e.untouched.end());
    for (std::uint64_t item : e.untouched) {
        f.add("unexplained balances",
              "item " + std::to_string(item) + ": final balance " + std::to_string(final_items.at(item).balance) +
                  ", initial " + std::to_string(h.initial.at(item)) + " plus the acknowledged commits leave " +
                  signed_text(r.at(item)) +
                  " unexplained, and no transfer of unknown outcome touches it (an acknowledged commit lost or "
                  "applied twice, or an acknowledged abort applied)");
    }
    for (const Component& c : e.components) {
        out.largest_component = std::max<std::uint64_t>(out.largest_component, c.transfers.size());
        if (c.status == ComponentStatus::explained) continue;
        const std::string what = std::to_string(c.transfers.size()) + " unknown-outcome transfers over " +
                                 std::to_string(c.items.size()) + " items (" + residual_list(c.items, r) + ")";
        if (c.status == ComponentStatus::bound_hit) {
            out.search_bound_hit = true;
            f.add("search bound hit", "search bound hit after " + std::to_string(c.steps) +
                                          " steps: neither explained nor refuted: " + what);
        } else {
            f.add("unexplained balances", "no subset of " + what + " explains the final balances");
        }
        suspect.insert(c.items.begin(), c.items.end());
    }
    diagnose(h, suspect, r, f);
    out.search_steps = e.steps;
    out.components = e.components.size();
    out.unknown_applied = e.applied;
}

}  // namespace

CheckResult check(const History& history, const CheckLimits& limits) {
    CheckResult out;
    Failures f(limits.failures_listed_max);
    check_reads(history, f);
    const auto final_items = check_replicas(history, f);
    check_final(history, final_items, f);
    check_audit(history, f);
    check_transfers(history, f);
    for (const Transfer& t : history.transfers) out.unknown += t.outcome == Outcome::unknown ? 1 : 0;
    bool complete = true;
    for (const auto& [item, initial] : history.initial) complete = complete && final_items.count(item) > 0;
    if (complete) check_accounting(history, final_items, limits, f, out);
    out.failures = f.take();
    out.ok = out.failures.empty();
    return out;
}

}  // namespace rl::bank
