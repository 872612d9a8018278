// Quorum arithmetic as pure functions, shared by the promise round, the
// check-quorum rule and the ring's "more than N/2 ids collected".
#pragma once

#include <cstddef>

namespace rl::election {

// The smallest count that is more than half of `members`.
constexpr std::size_t majority(std::size_t members) { return members / 2 + 1; }

// True when `count` of `members` form a majority.
constexpr bool is_majority(std::size_t count, std::size_t members) { return count >= majority(members); }

// True when `refused` of `members` leave too few to ever reach a majority.
constexpr bool majority_lost(std::size_t refused, std::size_t members) {
    return refused > members - majority(members);
}

}  // namespace rl::election
