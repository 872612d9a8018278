#include "tools/bank/explain.hpp"

#include <algorithm>
#include <numeric>
#include <set>

namespace rl::bank {
namespace {

// Union-find over item indices.
class Sets {
public:
    explicit Sets(std::size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
    std::size_t find(std::size_t x) {
        while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
        return x;
    }
    void join(std::size_t a, std::size_t b) { parent_[find(a)] = find(b); }

private:
    std::vector<std::size_t> parent_;
};

// Depth-first search over one component: each transfer (edge) applied or
// not. Per item it keeps what is left to explain and the range the
// undecided transfers can still reach; a branch dies as soon as one of its
// two items falls out of range (a closed item must be at exactly zero).
class Search {
public:
    Search(const std::vector<Transfer>& all, const Component& c, const std::map<std::uint64_t, std::int64_t>& residual) {
        for (std::size_t k = 0; k < c.items.size(); ++k) {
            index_[c.items[k]] = k;
            const auto it = residual.find(c.items[k]);
            left_.push_back(it == residual.end() ? 0 : it->second);
        }
        lo_.assign(c.items.size(), 0);
        hi_.assign(c.items.size(), 0);
        for (std::size_t t : c.transfers) {
            const Transfer& x = all[t];
            edges_.push_back({t, index_.at(x.from), index_.at(x.to), x.amount});
            lo_[edges_.back().from] -= x.amount;
            hi_[edges_.back().to] += x.amount;
        }
        order_edges(c.items.size());
    }

    // explained: `applied` holds the chosen transfers.
    ComponentStatus run(std::uint64_t steps_max, std::vector<std::size_t>& applied) {
        steps_max_ = steps_max;
        for (std::size_t k = 0; k < left_.size(); ++k) {
            if (!in_range(k)) return ComponentStatus::impossible;
        }
        const auto status = dfs(0);
        if (status == ComponentStatus::explained) {
            for (std::size_t e = 0; e < edges_.size(); ++e) {
                if (chosen_[e]) applied.push_back(edges_[order_[e]].transfer);
            }
        }
        return status;
    }
    std::uint64_t steps() const { return steps_; }

private:
    struct Edge {
        std::size_t transfer;
        std::size_t from, to;  // item indices
        std::int64_t amount;
    };

    // Greedy elimination order: take the item with the fewest undecided
    // edges, queue its edges, repeat; items then close early and prune.
    void order_edges(std::size_t items) {
        std::vector<std::vector<std::size_t>> by_item(items);
        for (std::size_t e = 0; e < edges_.size(); ++e) {
            by_item[edges_[e].from].push_back(e);
            by_item[edges_[e].to].push_back(e);
        }
        std::vector<bool> queued(edges_.size(), false);
        std::vector<std::size_t> open(items, 0);
        for (std::size_t k = 0; k < items; ++k) open[k] = by_item[k].size();
        while (order_.size() < edges_.size()) {
            std::size_t best = items;
            for (std::size_t k = 0; k < items; ++k) {
                if (open[k] > 0 && (best == items || open[k] < open[best])) best = k;
            }
            for (std::size_t e : by_item[best]) {
                if (queued[e]) continue;
                queued[e] = true;
                order_.push_back(e);
                --open[edges_[e].from];
                --open[edges_[e].to];
            }
        }
        chosen_.assign(edges_.size(), false);
    }

    bool in_range(std::size_t k) const { return lo_[k] <= left_[k] && left_[k] <= hi_[k]; }

    // Decides edge `e` (apply = true: the transfer happened) or undoes it.
    void decide(const Edge& e, bool apply, bool undo) {
        const std::int64_t sign = undo ? -1 : 1;
        lo_[e.from] += sign * e.amount;
        hi_[e.to] -= sign * e.amount;
        if (apply) {
            left_[e.from] += sign * e.amount;
            left_[e.to] -= sign * e.amount;
        }
    }

    ComponentStatus dfs(std::size_t depth) {
        if (depth == order_.size()) return ComponentStatus::explained;
        const Edge& e = edges_[order_[depth]];
        for (bool apply : {false, true}) {
            if (++steps_ > steps_max_) return ComponentStatus::bound_hit;
            decide(e, apply, false);
            ComponentStatus status = ComponentStatus::impossible;
            if (in_range(e.from) && in_range(e.to)) status = dfs(depth + 1);
            decide(e, apply, true);
            if (status == ComponentStatus::explained) chosen_[depth] = apply;
            if (status != ComponentStatus::impossible) return status;
        }
        return ComponentStatus::impossible;
    }

    std::map<std::uint64_t, std::size_t> index_;
    std::vector<std::int64_t> left_;  // residual still to explain
    std::vector<std::int64_t> lo_;    // sum of the undecided debits (<= 0)
    std::vector<std::int64_t> hi_;    // sum of the undecided credits (>= 0)
    std::vector<Edge> edges_;
    std::vector<std::size_t> order_;
    std::vector<bool> chosen_;        // by depth
    std::uint64_t steps_ = 0;
    std::uint64_t steps_max_ = 0;
};

// The components of the unknown transfers, smallest first.
std::vector<Component> components_of(const std::vector<Transfer>& transfers) {
    std::map<std::uint64_t, std::size_t> index;
    std::vector<std::uint64_t> items;
    std::vector<std::size_t> unknown;
    for (std::size_t t = 0; t < transfers.size(); ++t) {
        if (transfers[t].outcome != Outcome::unknown || transfers[t].from == transfers[t].to) continue;
        unknown.push_back(t);
        for (std::uint64_t item : {transfers[t].from, transfers[t].to}) {
            if (index.emplace(item, items.size()).second) items.push_back(item);
        }
    }
    Sets sets(items.size());
    for (std::size_t t : unknown) sets.join(index.at(transfers[t].from), index.at(transfers[t].to));
    std::map<std::size_t, Component> by_root;
    for (std::size_t k = 0; k < items.size(); ++k) by_root[sets.find(k)].items.push_back(items[k]);
    for (std::size_t t : unknown) by_root[sets.find(index.at(transfers[t].from))].transfers.push_back(t);
    std::vector<Component> out;
    for (auto& [root, c] : by_root) {
        std::sort(c.items.begin(), c.items.end());
        out.push_back(std::move(c));
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Component& a, const Component& b) { return a.transfers.size() < b.transfers.size(); });
    return out;
}

}  // namespace

Explanation explain(const std::vector<Transfer>& transfers, const std::map<std::uint64_t, std::int64_t>& residual,
                    std::uint64_t steps_max) {
    Explanation out;
    out.components = components_of(transfers);
    std::set<std::uint64_t> touched;
    for (const Component& c : out.components) touched.insert(c.items.begin(), c.items.end());
    for (const auto& [item, r] : residual) {
        if (r != 0 && !touched.count(item)) out.untouched.push_back(item);
    }
    for (std::size_t i = 0; i < out.components.size(); ++i) {
        Component& c = out.components[i];
        const std::uint64_t left = steps_max > out.steps ? steps_max - out.steps : 0;
        Search search(transfers, c, residual);
        c.status = search.run(left / (out.components.size() - i), out.applied);
        c.steps = search.steps();
        out.steps += c.steps;
    }
    std::sort(out.applied.begin(), out.applied.end());
    return out;
}

}  // namespace rl::bank
