// The search behind the bank checker's accounting (check.hpp): which of the
// unknown-outcome transfers, applied, explain what is left of every item's
// balance once the acknowledged commits are counted. Pure.
#pragma once

#include "tools/bank/history.hpp"

#include <cstdint>
#include <map>
#include <vector>

namespace rl::bank {

enum class ComponentStatus : std::uint8_t { explained, impossible, bound_hit };

struct Component {
    std::vector<std::uint64_t> items;      // ascending
    std::vector<std::size_t> transfers;    // indices into the transfer list
    ComponentStatus status = ComponentStatus::impossible;
    std::uint64_t steps = 0;
};

struct Explanation {
    std::vector<Component> components;
    // Items with a residual that no unknown transfer touches.
    std::vector<std::uint64_t> untouched;
    std::vector<std::size_t> applied;  // unknown transfers the explanation applies
    std::uint64_t steps = 0;
};

// `residual`: per item, final - initial - effects of acknowledged commits
// (items absent are 0). `transfers[i]` with outcome unknown are the
// candidates. At most `steps_max` search nodes in all; components are
// searched smallest first, each with an equal share of what is left.
Explanation explain(const std::vector<Transfer>& transfers, const std::map<std::uint64_t, std::int64_t>& residual,
                    std::uint64_t steps_max);

}  // namespace rl::bank
