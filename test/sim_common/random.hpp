// Draws from a simulator's one seeded PRNG. Every draw a run makes comes
// from here or from the PRNG directly, in a fixed order, so a seed replays
// the same run.
#pragma once

#include "config/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace rl::simcommon {

// True with probability p; draws nothing when p is 0, so adding a fault
// that is off does not shift the draws of a run.
bool chance(std::mt19937_64& r, double p);
// Uniform in [lo, hi].
std::uint64_t uniform(std::mt19937_64& r, std::uint64_t lo, std::uint64_t hi);

template <class T, std::size_t N>
T pick(std::mt19937_64& r, const T (&options)[N]) {
    return options[r() % N];
}

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids);

}  // namespace rl::simcommon
