// The bank checker: a pure function of a History (history.hpp), no I/O.
//
// It proves, from what the clients saw and what the replicas hold at
// quiescence:
// - no read and no final balance is negative (posted or available);
// - the replicas of every shard hold the same applied index and the same
//   balances, holds and pending credits, and nothing is in flight;
// - the audit balanced (rlcat exit code 0);
// - per item: final = initial + effects of the acknowledged commits +
//   effects of some subset of the unknown-outcome transfers. An
//   acknowledged commit lost or applied twice, or an acknowledged abort
//   applied, leaves a residual no such subset explains. The subset is
//   searched per connected component of the unknown transfers (items are
//   the vertices, transfers the edges), depth first, always branching on
//   the transfer of the item with the fewest undecided transfers left, and
//   pruned when an item's residual is out of reach of what is left. The
//   search is bounded: when the bound is hit, the result says so.
#pragma once

#include "tools/bank/history.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace rl::bank {

struct CheckLimits {
    std::uint64_t search_steps_max = 20'000'000;  // search nodes over all components
    std::size_t failures_listed_max = 20;          // lines per kind of failure
};

struct CheckResult {
    bool ok = false;
    // One line per violation, each naming the item, txid or node.
    std::vector<std::string> failures;
    // The subset search stopped at its bound in some component, so that
    // component is neither explained nor refuted (counted as a failure).
    bool search_bound_hit = false;
    std::uint64_t search_steps = 0;
    std::uint64_t components = 0;       // connected components of unknown transfers
    std::uint64_t largest_component = 0;  // transfers in the largest
    // Indices into History::transfers of the unknown-outcome transfers the
    // explanation found counts as applied (one explanation; others may exist).
    std::vector<std::size_t> unknown_applied;
    std::uint64_t unknown = 0;
};

CheckResult check(const History& history, const CheckLimits& limits = {});

}  // namespace rl::bank
